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
// dispatch, reassign, hand down, deny return, refer to review), checked
// and routed like one from a user. A move the state machine refuses is
// never dropped: it is recorded as FAILED with the refusal (the same on
// every replica: the refusal depends only on the command and the state).
// The run records what it did per case (its report is built from those
// records).
func reconcile(tx *store.Tx, cmd *pb.Command, rc *pb.ReconcileCases, fv *fedView) (*Result, error) {
	if !validRunID(rc.GetRunId()) {
		return &Result{Err: fmt.Errorf("%w: reconcile batch needs a run id", ErrBadCommand)}, nil
	}
	res := &Result{}
	for _, m := range rc.Moves {
		out, err := reconcileMove(tx, cmd, rc.RunId, m, fv)
		if err != nil {
			return nil, err
		}
		switch out {
		case moveApplied:
			res.Applied++
		case moveFailed:
			res.Failed++
		default:
			res.Skipped++
		}
	}
	return res, nil
}

type moveResult int

const (
	moveSkipped moveResult = iota // the case changed since it was planned (or is gone): plan it again
	moveApplied                   // done and recorded
	moveFailed                    // refused by the state machine, recorded as FAILED with the reason
)

func reconcileMove(tx *store.Tx, cmd *pb.Command, run string, m *pb.ReconcileMove, fv *fedView) (moveResult, error) {
	if m.GetRecord() == nil || !validIDPart(m.GetCaseId()) {
		return moveSkipped, nil
	}
	old, err := tx.GetCase(m.CaseId)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return moveSkipped, nil
	case err != nil:
		return moveSkipped, err
	}
	rec := proto.Clone(m.Record).(*pb.ReconcileRecord)
	rec.CaseId = m.CaseId
	if m.Outcome == pb.ReconcileOutcome_RECONCILE_OUTCOME_FAILED && m.Action == nil {
		// Record only: a case the run could not pin down (it kept
		// changing); nothing is done to it, whatever its version.
		rec.Outcome = pb.ReconcileOutcome_RECONCILE_OUTCOME_FAILED
		return moveFailed, tx.PutReconcileRecord(run, rec)
	}
	if old.HolderEpoch != m.ExpectedEpoch || old.Version != m.ExpectedVersion || fv.checkHolder(old) != nil {
		return moveSkipped, nil
	}
	if m.Action != nil {
		a := proto.Clone(m.Action).(*pb.CaseAction)
		a.CaseId = m.CaseId
		_, refused, err := applyAction(tx, cmd, old, a, fv)
		if err != nil {
			return moveSkipped, err
		}
		if refused != nil {
			rec.Outcome = pb.ReconcileOutcome_RECONCILE_OUTCOME_FAILED
			rec.Reason = fmt.Sprintf("%s refused: %v (planned: %s)", a.Action, refused, m.Record.GetReason())
			return moveFailed, tx.PutReconcileRecord(run, rec)
		}
	}
	return moveApplied, tx.PutReconcileRecord(run, rec)
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
