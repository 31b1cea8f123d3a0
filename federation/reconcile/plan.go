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

// Position is where a case's owner is, seen from the node that holds it.
type Position int

// The owner positions, in the order Plan tells them apart.
const (
	// InReview: the case waits in the city's joint review queue.
	InReview Position = iota
	// Disputed: the catalogue names no single owner.
	Disputed
	// ReturnedTwice: the owner sent it back twice (only for a case in an
	// open stage, filed to return requested; a joint-review decision is
	// never sent back to review).
	ReturnedTwice
	// HereSame: owned by a unit of this node, and dispatched to it.
	HereSame
	// HereOther: owned by a unit of this node, dispatched to another unit
	// (one of another node, one that no longer exists) or to none.
	HereOther
	// BelowSame: owned by a unit hosted by a node below, and dispatched to
	// it already (the old system dispatched it; the case is still here).
	BelowSame
	// BelowOther: owned by a unit hosted below, dispatched to another unit
	// or to none.
	BelowOther
	// Above: owned by a node not at or below this one (the parent, a
	// sibling's subtree): only the parent can route it.
	Above
	// Unknown: the owner's node is not in the topology (a catalogue that
	// does not match it).
	Unknown
	numPositions
)

var positionNames = [numPositions]string{"in review", "disputed", "returned twice", "here, same unit", "here, other unit",
	"below, same unit", "below, other unit", "above", "unknown node"}

func (p Position) String() string { return positionNames[p] }

// Stage groups the open states by what reconciliation may do with them.
type Stage int

// The stages.
const (
	// Unfiled: reported or verified; the owner is decided on filing.
	Unfiled Stage = iota
	// Filed: filed, no unit.
	Filed
	// Dispatched: dispatched or accepted: a unit has it.
	Dispatched
	// ReturnRequested: the unit asked to send it back.
	ReturnRequested
	// Working: handled, checked or suspended: work is under way or done.
	Working
	numStages
)

var stageNames = [numStages]string{"unfiled", "filed", "dispatched", "return requested", "working"}

func (s Stage) String() string { return stageNames[s] }

// StageOf returns the stage of an open state (ok false for a state
// reconciliation does not consider: closed, voided, not filed).
func StageOf(st pb.State) (Stage, bool) {
	switch st {
	case pb.State_STATE_REPORTED, pb.State_STATE_VERIFIED:
		return Unfiled, true
	case pb.State_STATE_FILED:
		return Filed, true
	case pb.State_STATE_DISPATCHED, pb.State_STATE_ACCEPTED:
		return Dispatched, true
	case pb.State_STATE_RETURN_REQUESTED:
		return ReturnRequested, true
	case pb.State_STATE_HANDLED, pb.State_STATE_CHECKED, pb.State_STATE_SUSPENDED:
		return Working, true
	}
	return 0, false
}

// Rule is one cell of the table: the outcome and the workflow action
// (UNSPECIFIED: none).
type Rule struct {
	Outcome pb.ReconcileOutcome
	Action  pb.Action
}

var (
	inPlace  = Rule{Outcome: pb.ReconcileOutcome_RECONCILE_OUTCOME_IN_PLACE}
	pending  = Rule{Outcome: pb.ReconcileOutcome_RECONCILE_OUTCOME_PENDING}
	moved    = func(a pb.Action) Rule { return Rule{pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED, a} }
	disputed = Rule{pb.ReconcileOutcome_RECONCILE_OUTCOME_DISPUTED, pb.Action_ACTION_REFER_REVIEW}
	review   = Rule{pb.ReconcileOutcome_RECONCILE_OUTCOME_REJECTED, pb.Action_ACTION_REFER_REVIEW}
	deny     = Rule{pb.ReconcileOutcome_RECONCILE_OUTCOME_REJECTED, pb.Action_ACTION_DENY_RETURN}
)

// Table is what reconciliation does with a case, by its owner's position
// and its stage: every combination is a cell (federation/DESIGN.md,
// "Reconciliation", prints it). Each action is one the workflow allows
// from the stage's states, so a refusal means the case or the federation
// is not what the catalogue says (it is recorded as FAILED, never dropped).
var Table = [numPositions][numStages]Rule{
	//              unfiled  filed                                dispatched                           return requested                     working
	InReview:      {inPlace, inPlace, inPlace, inPlace, inPlace},
	Disputed:      {pending, disputed, disputed, disputed, pending},
	ReturnedTwice: {pending, review, review, review, pending},
	HereSame:      {pending, moved(pb.Action_ACTION_DISPATCH), inPlace, deny, inPlace},
	HereOther:     {pending, moved(pb.Action_ACTION_DISPATCH), moved(pb.Action_ACTION_REASSIGN), moved(pb.Action_ACTION_REASSIGN), pending},
	BelowSame:     {pending, moved(pb.Action_ACTION_DISPATCH), moved(pb.Action_ACTION_HAND_DOWN), moved(pb.Action_ACTION_HAND_DOWN), pending},
	BelowOther:    {pending, moved(pb.Action_ACTION_DISPATCH), moved(pb.Action_ACTION_REASSIGN), moved(pb.Action_ACTION_REASSIGN), pending},
	Above:         {pending, moved(pb.Action_ACTION_TRANSFER_UP), moved(pb.Action_ACTION_TRANSFER_UP), moved(pb.Action_ACTION_TRANSFER_UP), pending},
	Unknown:       {pending, pending, pending, pending, pending},
}

// Position tells where owner o of case c (held here, in stage st) is.
func (p Planner) Position(c *pb.Case, o *pb.Ownership, st Stage) Position {
	prev := c.GetOwnership()
	switch {
	case prev.GetInReview():
		return InReview
	case o.GetDisputed():
		return Disputed
	case prev.GetRejections() >= maxRejections && !prev.GetDecided() && st >= Filed && st <= ReturnRequested:
		return ReturnedTwice
	}
	same := c.GetOwnerUnit() != "" && c.GetOwnerUnit() == o.GetUnit()
	if o.GetNode() == p.Self {
		if same {
			return HereSame
		}
		return HereOther
	}
	if _, ok := p.Topology.Node(o.GetNode()); !ok || o.GetUnit() == "" {
		return Unknown
	}
	if _, up, err := p.Topology.Route(p.Self, o.GetNode()); err == nil && !up {
		if same {
			return BelowSame
		}
		return BelowOther
	}
	return Above
}

// Plan decides what to do with c, which this node holds: the cell of
// Table for its owner's position and its stage. ok is false for a case
// reconciliation does not consider (closed, voided, not filed, held
// elsewhere).
func (p Planner) Plan(c *pb.Case) (d Decision, ok bool) {
	if c.GetHolder() != "" && c.GetHolder() != p.Self {
		return Decision{}, false
	}
	st, open := StageOf(c.GetState())
	if !open {
		return Decision{}, false
	}
	prev := c.GetOwnership()
	o := prev
	if !prev.GetDecided() {
		o = p.Owners.OwnerOf(c)
	}
	pos := p.Position(c, o, st)
	rule := Table[pos][st]
	rec := &pb.ReconcileRecord{
		CaseId: c.GetId(), Kind: c.GetKind(), ClassCode: c.GetMajorCode() + c.GetMinorCode(),
		Unit: o.GetUnit(), FromNode: p.Self, ToNode: p.Self, FromUnit: c.GetOwnerUnit(),
		ReportedUnixMs: c.GetReportedAt().AsTime().UnixMilli(), Rule: o.GetRule(),
		Outcome: rule.Outcome, Reason: p.reason(c, o, pos, st, rule),
	}
	why := o.GetExplanation()
	if why == "" {
		why = "rule " + o.GetRule()
	}
	var a *pb.CaseAction
	switch rule.Action {
	case pb.Action_ACTION_UNSPECIFIED:
	case pb.Action_ACTION_REFER_REVIEW:
		rec.ToNode = p.Topology.Root().Name
		note := rec.Reason
		if pos == Disputed {
			note = "disputed ownership: " + o.GetDispute()
		}
		a = &pb.CaseAction{Note: note}
	case pb.Action_ACTION_TRANSFER_UP:
		rec.ToNode = o.GetNode()
		a = &pb.CaseAction{Note: fmt.Sprintf("reconciled: owned by %s: %s", ownerText(o), why)}
	case pb.Action_ACTION_DENY_RETURN:
		a = &pb.CaseAction{Note: "return denied by the responsibility catalogue: " + why + "; a second return goes to joint review"}
	case pb.Action_ACTION_HAND_DOWN:
		rec.ToNode = o.GetNode()
		a = &pb.CaseAction{Note: fmt.Sprintf("reconciled: handed down to %s, which hosts its unit %s: %s", o.GetNode(), o.GetUnit(), why)}
	default: // DISPATCH, REASSIGN
		rec.ToNode = o.GetNode()
		a = &pb.CaseAction{Unit: o.GetUnit(), UnitTier: o.GetTier(), Note: "reconciled: " + why}
	}
	if a != nil {
		a.Action, a.CaseId, a.Actor, a.Role = rule.Action, c.GetId(), Actor, pb.Role_ROLE_DISPATCHER
		a.ExpectedVersion, a.Ownership = c.GetVersion(), o
		rec.Action = a.Action
	}
	return Decision{Outcome: rule.Outcome, Action: a, Record: rec}, true
}

// reason says, in the report's words, why a case got its cell.
func (p Planner) reason(c *pb.Case, o *pb.Ownership, pos Position, st Stage, rule Rule) string {
	prev := c.GetOwnership()
	switch pos {
	case InReview:
		return "waiting in the joint review queue"
	case Unknown:
		if st == Unfiled {
			return "not filed yet: its owner is decided when it is filed"
		}
		return "owner node " + o.GetNode() + " is not in the topology"
	}
	if st == Unfiled {
		return "not filed yet: its owner is decided when it is filed"
	}
	if st == Working && rule.Outcome == pb.ReconcileOutcome_RECONCILE_OUTCOME_PENDING {
		if pos == Disputed {
			return fmt.Sprintf("disputed (%s) but %s: it moves once back in an open stage", o.GetDispute(), stateWord(c.GetState()))
		}
		return fmt.Sprintf("owned by %s but %s: it moves once back in an open stage", ownerText(o), stateWord(c.GetState()))
	}
	switch pos {
	case Disputed:
		return "disputed: " + o.GetDispute()
	case ReturnedTwice:
		return fmt.Sprintf("the owner %s sent it back %d times", prev.GetUnit(), prev.GetRejections())
	case Above:
		return fmt.Sprintf("owned by %s, not at or below %s: handed up", ownerText(o), p.Self)
	case BelowSame:
		if st == Filed {
			return fmt.Sprintf("owned by %s below %s: handed down", ownerText(o), p.Self)
		}
		return fmt.Sprintf("%s, dispatched to its owner %s below %s already: handed down as it is", stateWord(c.GetState()), ownerText(o), p.Self)
	case BelowOther:
		if st == Filed {
			return fmt.Sprintf("owned by %s below %s: handed down", ownerText(o), p.Self)
		}
		return fmt.Sprintf("dispatched to %s%s, owned by %s below %s: reassigned and handed down", c.GetOwnerUnit(), p.goneNote(c.GetOwnerUnit()), ownerText(o), p.Self)
	case HereSame:
		if st == Filed {
			return "filed, not dispatched: dispatched to its owner " + o.GetUnit()
		}
		if rule.Action == pb.Action_ACTION_DENY_RETURN {
			return "the owner sent it back: " + c.GetPending().GetReason()
		}
		return ""
	case HereOther:
		if st == Filed {
			return "filed, not dispatched: dispatched to its owner " + o.GetUnit()
		}
		return fmt.Sprintf("dispatched to %s%s, owned by %s", c.GetOwnerUnit(), p.goneNote(c.GetOwnerUnit()), o.GetUnit())
	}
	return ""
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
	case pb.State_STATE_DISPATCHED:
		return "dispatched"
	case pb.State_STATE_ACCEPTED:
		return "accepted"
	case pb.State_STATE_RETURN_REQUESTED:
		return "sent back by its unit (return requested)"
	case pb.State_STATE_HANDLED:
		return "handled and waiting for its check"
	case pb.State_STATE_CHECKED:
		return "checked and waiting to be closed"
	case pb.State_STATE_SUSPENDED:
		return "suspended"
	}
	return st.String()
}
