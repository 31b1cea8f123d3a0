package deadline

import (
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// stageAfter is the stage an action leads to, when it starts a new one with
// a deadline of its own (dispatch and rework carry the handling deadline).
var stageAfter = map[pb.Action]Stage{
	pb.Action_ACTION_VERIFY:         StageFile,
	pb.Action_ACTION_FILE:           StageDispatch,
	pb.Action_ACTION_APPROVE_RETURN: StageDispatch,
	pb.Action_ACTION_TRANSFER_UP:    StageDispatch,
	pb.Action_ACTION_REFER_REVIEW:   StageDispatch,
	pb.Action_ACTION_HANDLE:         StageCheck,
	pb.Action_ACTION_CHECK_PASS:     StageClose,
}

// Stamp writes the deadlines of cmd, computed at now from the policy, into
// it: the first stage's deadline of a report; the deadline of the stage an
// action leads to; a dispatch's handling deadline (from its time limit in
// working minutes, or from the policy by class and urgency); and, for an
// approved extension or a resume, the moved handling deadline with the
// value it was computed from. read gives the case an action applies to as
// the leader's store holds it (the state machine refuses a stamp computed
// from a stale copy).
func (p *Policy) Stamp(now time.Time, cmd *pb.Command, read func(id string) (*pb.Case, error)) {
	switch b := cmd.Body.(type) {
	case *pb.Command_Report:
		b.Report.StageDeadlineUnixMs = p.Deadline(StageVerify, b.Report.GetCase(), now).UnixMilli()
	case *pb.Command_Act:
		p.stampAct(now, b.Act, read)
	case *pb.Command_Reconcile:
		for _, m := range b.Reconcile.GetMoves() {
			if m.GetAction() != nil {
				p.stampAct(now, m.Action, read)
			}
		}
	}
}

func (p *Policy) stampAct(now time.Time, a *pb.CaseAction, read func(id string) (*pb.Case, error)) {
	c, err := read(a.CaseId)
	if err != nil || c == nil {
		c = &pb.Case{} // unknown here: the state machine will refuse the action anyway
	}
	if st, ok := stageAfter[a.Action]; ok {
		a.StageDeadlineUnixMs = p.Deadline(st, c, now).UnixMilli()
	}
	switch a.Action {
	case pb.Action_ACTION_DISPATCH, pb.Action_ACTION_REASSIGN, pb.Action_ACTION_DECIDE_OWNER, pb.Action_ACTION_CHECK_FAIL:
		switch {
		case a.TimeLimitMinutes > 0:
			a.DeadlineUnixMs = p.Calendar.Add(now, time.Duration(a.TimeLimitMinutes)*time.Minute).UnixMilli()
		case a.DeadlineUnixMs == 0 && a.Action != pb.Action_ACTION_CHECK_FAIL:
			a.DeadlineUnixMs = p.Deadline(StageHandle, c, now).UnixMilli()
		}
	case pb.Action_ACTION_APPROVE_EXTENSION:
		if c.GetDeadline() == nil || c.GetPending().GetAction() != pb.Action_ACTION_REQUEST_EXTENSION {
			return
		}
		base := c.GetDeadline().AsTime()
		a.BaseDeadlineUnixMs, a.HasBaseDeadline = base.UnixMilli(), true
		a.DeadlineUnixMs = p.Calendar.Add(base, time.Duration(c.GetPending().GetExtensionMinutes())*time.Minute).UnixMilli()
	case pb.Action_ACTION_RESUME:
		if c.GetDeadline() == nil || c.GetSuspendedAt() == nil {
			return
		}
		base := c.GetDeadline().AsTime()
		spent := max(0, p.Calendar.Between(c.GetSuspendedAt().AsTime(), now))
		a.BaseDeadlineUnixMs, a.HasBaseDeadline = base.UnixMilli(), true
		a.DeadlineUnixMs = p.Calendar.Add(base, spent).UnixMilli()
	}
}
