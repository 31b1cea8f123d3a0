package fsm

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

// reconcile applies a batch of a reconciliation run. Each move was planned
// by the leader against the copy at (epoch, version); a case that changed
// since (a retry of a batch that did commit, a user's action in between)
// is skipped and planned again by the next pass, so no case is ever moved
// twice. A move's action is the ordinary workflow action (transfer up,
// dispatch, reassign, deny return, refer to review), checked and routed
// like one from a user; a refused one is skipped. The run records what it
// did per case (its report is built from those records).
func reconcile(tx *store.Tx, cmd *pb.Command, rc *pb.ReconcileCases, fv *fedView) (*Result, error) {
	if !validRunID(rc.GetRunId()) {
		return &Result{Err: fmt.Errorf("%w: reconcile batch needs a run id", ErrBadCommand)}, nil
	}
	res := &Result{}
	for _, m := range rc.Moves {
		ok, err := reconcileMove(tx, cmd, rc.RunId, m, fv)
		if err != nil {
			return nil, err
		}
		if ok {
			res.Applied++
		} else {
			res.Skipped++
		}
	}
	return res, nil
}

func reconcileMove(tx *store.Tx, cmd *pb.Command, run string, m *pb.ReconcileMove, fv *fedView) (bool, error) {
	if m.GetRecord() == nil || !validIDPart(m.GetCaseId()) {
		return false, nil
	}
	old, err := tx.GetCase(m.CaseId)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	if old.HolderEpoch != m.ExpectedEpoch || old.Version != m.ExpectedVersion || fv.checkHolder(old) != nil {
		return false, nil
	}
	if m.Action != nil {
		a := proto.Clone(m.Action).(*pb.CaseAction)
		a.CaseId = m.CaseId
		_, refused, err := applyAction(tx, cmd, old, a, fv)
		if err != nil {
			return false, err
		}
		if refused != nil {
			return false, nil
		}
	}
	rec := proto.Clone(m.Record).(*pb.ReconcileRecord)
	rec.CaseId = m.CaseId
	return true, tx.PutReconcileRecord(run, rec)
}

// reconcileRun starts or finishes a reconciliation run.
func reconcileRun(tx *store.Tx, m *pb.ReconcileRunMark) (*Result, error) {
	if !validRunID(m.GetRun().GetRunId()) {
		return &Result{Err: fmt.Errorf("%w: reconcile run without a valid id", ErrBadCommand)}, nil
	}
	return &Result{}, tx.PutReconcileRun(m.Run)
}

// validRunID accepts 1-64 letters, digits, '-', '_' and '.' (a run id is
// part of a store key).
func validRunID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return false
		}
	}
	return true
}
