package fsm

import (
	"fmt"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

// reconcile applies a batch of a reconciliation run (not yet built).
func reconcile(_ *store.Tx, _ *pb.Command, _ *pb.ReconcileCases, _ *fedView) (*Result, error) {
	return &Result{Err: fmt.Errorf("%w: reconcile is not implemented yet", ErrBadCommand)}, nil
}

// reconcileRun starts or finishes a reconciliation run.
func reconcileRun(tx *store.Tx, m *pb.ReconcileRunMark) (*Result, error) {
	if m.GetRun().GetRunId() == "" {
		return &Result{Err: fmt.Errorf("%w: reconcile run without an id", ErrBadCommand)}, nil
	}
	return &Result{}, tx.PutReconcileRun(m.Run)
}
