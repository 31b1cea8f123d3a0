package reconcile

import (
	"fmt"

	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Actor is the name the reconciler acts under in case histories.
const Actor = "reconciler"

// maxRejections is how many times the owner may send a case back before it
// goes to the city's joint review queue.
const maxRejections = 2

// Owners answers who owns a case: the responsibility catalogue
// (federation/ownership) behind an adapter that knows the city's zone.
type Owners interface {
	OwnerOf(c *pb.Case) *pb.Ownership
}

// Planner decides, for one case held by node Self, what reconciliation
// does with it. It is pure: the same case and catalogue give the same plan.
type Planner struct {
	Self     string
	Topology *topology.Topology
	Owners   Owners
}

// Decision is the plan for one case: no action (in place, or pending with a
// reason), or one workflow action that moves it where it belongs.
type Decision struct {
	Outcome pb.ReconcileOutcome
	Action  *pb.CaseAction // nil: nothing to do now
	Record  *pb.ReconcileRecord
}

// Plan decides what to do with c, which this node holds. ok is false for a
// case reconciliation does not consider (closed, voided, not filed, held
// elsewhere).
func (p Planner) Plan(c *pb.Case) (d Decision, ok bool) {
	if c.GetHolder() != "" && c.GetHolder() != p.Self {
		return Decision{}, false
	}
	switch c.GetState() {
	case pb.State_STATE_CLOSED, pb.State_STATE_VOIDED, pb.State_STATE_NOT_FILED, pb.State_STATE_UNSPECIFIED:
		return Decision{}, false
	}
	prev := c.GetOwnership()
	o := prev
	if !prev.GetDecided() {
		o = p.Owners.OwnerOf(c)
	}
	rec := &pb.ReconcileRecord{
		CaseId: c.GetId(), Kind: c.GetKind(), ClassCode: c.GetMajorCode() + c.GetMinorCode(),
		Unit: o.GetUnit(), FromNode: p.Self, ToNode: p.Self, FromUnit: c.GetOwnerUnit(),
		ReportedUnixMs: c.GetReportedAt().AsTime().UnixMilli(), Rule: o.GetRule(),
	}
	decide := func(out pb.ReconcileOutcome, a *pb.CaseAction, reason string) (Decision, bool) {
		rec.Outcome, rec.Reason = out, reason
		if a != nil {
			a.CaseId, a.Actor, a.Role = c.GetId(), Actor, pb.Role_ROLE_DISPATCHER
			a.ExpectedVersion = c.GetVersion()
			if a.Ownership == nil {
				a.Ownership = o
			}
			rec.Action = a.Action
		}
		return Decision{Outcome: out, Action: a, Record: rec}, true
	}

	if prev.GetInReview() {
		return decide(pb.ReconcileOutcome_RECONCILE_OUTCOME_IN_PLACE, nil, "waiting in the joint review queue")
	}
	owned := !o.GetDisputed() && o.GetNode() == p.Self && c.GetOwnerUnit() == o.GetUnit()
	switch c.GetState() {
	case pb.State_STATE_REPORTED, pb.State_STATE_VERIFIED:
		return decide(pb.ReconcileOutcome_RECONCILE_OUTCOME_PENDING, nil, "not filed yet: its owner is decided when it is filed")
	case pb.State_STATE_FILED, pb.State_STATE_DISPATCHED, pb.State_STATE_ACCEPTED, pb.State_STATE_RETURN_REQUESTED:
	default: // handled, checked, suspended: work is under way or done
		if owned {
			return decide(pb.ReconcileOutcome_RECONCILE_OUTCOME_IN_PLACE, nil, "")
		}
		return decide(pb.ReconcileOutcome_RECONCILE_OUTCOME_PENDING, nil,
			fmt.Sprintf("owned by %s but %s: it moves once back in an open stage", ownerText(o), stateWord(c.GetState())))
	}

	if o.GetDisputed() {
		rec.ToNode = p.Topology.Root().Name
		return decide(pb.ReconcileOutcome_RECONCILE_OUTCOME_DISPUTED,
			&pb.CaseAction{Action: pb.Action_ACTION_REFER_REVIEW, Note: "disputed ownership: " + o.GetDispute()},
			"disputed: "+o.GetDispute())
	}
	if prev.GetRejections() >= maxRejections && !prev.GetDecided() {
		rec.ToNode = p.Topology.Root().Name
		note := fmt.Sprintf("the owner %s sent it back %d times", prev.GetUnit(), prev.GetRejections())
		return decide(pb.ReconcileOutcome_RECONCILE_OUTCOME_REJECTED,
			&pb.CaseAction{Action: pb.Action_ACTION_REFER_REVIEW, Note: note}, note)
	}

	rec.ToNode = o.GetNode()
	why := o.GetExplanation()
	if why == "" {
		why = "rule " + o.GetRule()
	}
	if o.GetNode() == p.Self {
		switch {
		case c.GetState() == pb.State_STATE_FILED:
			return decide(pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED,
				&pb.CaseAction{Action: pb.Action_ACTION_DISPATCH, Unit: o.GetUnit(), UnitTier: o.GetTier(), Note: "reconciled: " + why},
				"filed, not dispatched: dispatched to its owner "+o.GetUnit())
		case c.GetOwnerUnit() != o.GetUnit():
			return decide(pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED,
				&pb.CaseAction{Action: pb.Action_ACTION_REASSIGN, Unit: o.GetUnit(), UnitTier: o.GetTier(), Note: "reconciled: " + why},
				fmt.Sprintf("dispatched to %s%s, owned by %s", c.GetOwnerUnit(), p.goneNote(c.GetOwnerUnit()), o.GetUnit()))
		case c.GetState() == pb.State_STATE_RETURN_REQUESTED:
			// The owner sends it back for the first time: the catalogue
			// says it is theirs, so the return is denied; a second return
			// takes it to joint review.
			return decide(pb.ReconcileOutcome_RECONCILE_OUTCOME_REJECTED,
				&pb.CaseAction{Action: pb.Action_ACTION_DENY_RETURN, Note: "return denied by the responsibility catalogue: " + why + "; a second return goes to joint review"},
				"the owner sent it back: "+c.GetPending().GetReason())
		}
		return decide(pb.ReconcileOutcome_RECONCILE_OUTCOME_IN_PLACE, nil, "")
	}
	if _, up, err := p.Topology.Route(p.Self, o.GetNode()); err == nil && !up {
		act := pb.Action_ACTION_REASSIGN
		if c.GetState() == pb.State_STATE_FILED {
			act = pb.Action_ACTION_DISPATCH
		}
		return decide(pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED,
			&pb.CaseAction{Action: act, Unit: o.GetUnit(), UnitTier: o.GetTier(), Note: "reconciled: " + why},
			fmt.Sprintf("owned by %s below %s: handed down", ownerText(o), p.Self))
	}
	if p.Topology.Root().Name == p.Self {
		// Everything is below the root; a node the topology does not know
		// is a catalogue that does not match the topology.
		return decide(pb.ReconcileOutcome_RECONCILE_OUTCOME_PENDING, nil, "owner node "+o.GetNode()+" is not in the topology")
	}
	return decide(pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED,
		&pb.CaseAction{Action: pb.Action_ACTION_TRANSFER_UP, Note: fmt.Sprintf("reconciled: owned by %s: %s", ownerText(o), why)},
		fmt.Sprintf("owned by %s, not at or below %s: handed up", ownerText(o), p.Self))
}

// goneNote marks a unit no node hosts any more.
func (p Planner) goneNote(unit string) string {
	if unit == "" {
		return ""
	}
	if _, ok := p.Topology.NodeOfUnit(unit); !ok {
		return " (a unit that no longer exists)"
	}
	return ""
}

func ownerText(o *pb.Ownership) string {
	return fmt.Sprintf("%s at %s", o.GetUnit(), o.GetNode())
}

func stateWord(st pb.State) string {
	switch st {
	case pb.State_STATE_HANDLED:
		return "handled and waiting for its check"
	case pb.State_STATE_CHECKED:
		return "checked and waiting to be closed"
	case pb.State_STATE_SUSPENDED:
		return "suspended"
	}
	return st.String()
}
