package deadline

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// ErrStale refuses an action whose moved deadline the leader computed from
// a handling deadline the case no longer has; the leader stamps it again.
var ErrStale = errors.New("deadline stamped from a stale copy of the case")

// CheckBase refuses an action stamped from another handling deadline than
// the case's (deterministic: called inside Apply).
func CheckBase(c *pb.Case, a *pb.CaseAction) error {
	if !a.GetHasBaseDeadline() {
		return nil
	}
	if got := msOf(c.GetDeadline()); got != a.GetBaseDeadlineUnixMs() {
		return fmt.Errorf("%w: case %s has deadline %d, the stamp was computed from %d", ErrStale, c.GetId(), got, a.GetBaseDeadlineUnixMs())
	}
	return nil
}

// Settle brings the deadlines of c up to date after the workflow applied
// action a (leader-stamped at atMs) to it, coming from state `from`. It is
// deterministic: everything it needs is in the case and the command.
//
//   - An approved extension or a resume takes the handling deadline the
//     leader computed in working time (the workflow's wall-clock value is
//     the fallback for commands without one).
//   - HANDLE records handled_at.
//   - The stage deadline follows the state: the handling deadline while a
//     unit works the case, none while suspended or once closed, the stamped
//     deadline of a new stage otherwise. A new or moved stage deadline
//     clears the overdue mark (the case gets a new chance).
func Settle(c *pb.Case, from pb.State, a *pb.CaseAction, atMs int64) {
	if a.GetHasBaseDeadline() && a.GetDeadlineUnixMs() > 0 &&
		(a.Action == pb.Action_ACTION_APPROVE_EXTENSION || a.Action == pb.Action_ACTION_RESUME) {
		c.Deadline = ts(a.DeadlineUnixMs)
	}
	if a.Action == pb.Action_ACTION_HANDLE {
		c.HandledAt = ts(atMs)
	}
	before := msOf(c.GetStageDeadline())
	switch st := c.GetState(); st {
	case pb.State_STATE_DISPATCHED, pb.State_STATE_ACCEPTED, pb.State_STATE_RETURN_REQUESTED:
		c.StageDeadline = c.GetDeadline()
	case pb.State_STATE_SUSPENDED, pb.State_STATE_CLOSED, pb.State_STATE_NOT_FILED, pb.State_STATE_VOIDED:
		c.StageDeadline = nil
	default:
		if st != from || a.Action == pb.Action_ACTION_TRANSFER_UP || a.Action == pb.Action_ACTION_REFER_REVIEW {
			c.StageDeadline = nil
			if a.GetStageDeadlineUnixMs() > 0 {
				c.StageDeadline = ts(a.StageDeadlineUnixMs)
			}
		}
	}
	if before != msOf(c.GetStageDeadline()) {
		c.Overdue = false
	}
}

func msOf(t *timestamppb.Timestamp) int64 {
	if t == nil {
		return 0
	}
	return t.AsTime().UnixMilli()
}

func ts(ms int64) *timestamppb.Timestamp { return timestamppb.New(time.UnixMilli(ms)) }
