package workflow

import (
	"slices"
	"strings"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Dest says where a transition leads.
type Dest int

const (
	// DestState: the case moves to Transition.To.
	DestState Dest = iota
	// DestStay: the state does not change.
	DestStay
	// DestPendingFrom: back to the state the pending request was made from
	// (DENY_RETURN).
	DestPendingFrom
	// DestSuspendedFrom: back to the state the case was suspended from
	// (RESUME).
	DestSuspendedFrom
)

// Origin is one condition under which an action may start.
type Origin struct {
	// States the case may be in. Empty means any open (non-terminal) state.
	States []pb.State
	// NoPending: no request (extension, suspension, return) may be pending.
	NoPending bool
	// Pending, when set, is the request that must be pending.
	Pending pb.Action
	// TrustedSource: the case's source must be one of TrustedSources.
	TrustedSource bool
}

// Transition is one row of the lifecycle table.
type Transition struct {
	Action pb.Action
	// From lists the alternative conditions the action may start from.
	// Empty means the action creates a case (REPORT) and never applies to an
	// existing one.
	From  []Origin
	Dest  Dest
	To    pb.State // with DestState
	Roles []pb.Role
	// Requires lists the Step fields that must be set, by request field
	// name: "unit", "deadline", "extension_minutes", "note".
	Requires []string
}

// TrustedSources are the sources whose reports may be filed without
// verification (REPORTED → FILED).
var TrustedSources = []pb.Source{pb.Source_SOURCE_INSPECTOR, pb.Source_SOURCE_LEADER}

// Required Step fields (Transition.Requires).
const (
	reqUnit             = "unit"
	reqDeadline         = "deadline"
	reqExtensionMinutes = "extension_minutes"
	reqNote             = "note"
)

// Short aliases keep the table readable.
const (
	sReported        = pb.State_STATE_REPORTED
	sVerified        = pb.State_STATE_VERIFIED
	sFiled           = pb.State_STATE_FILED
	sNotFiled        = pb.State_STATE_NOT_FILED
	sDispatched      = pb.State_STATE_DISPATCHED
	sAccepted        = pb.State_STATE_ACCEPTED
	sReturnRequested = pb.State_STATE_RETURN_REQUESTED
	sHandled         = pb.State_STATE_HANDLED
	sChecked         = pb.State_STATE_CHECKED
	sClosed          = pb.State_STATE_CLOSED
	sSuspended       = pb.State_STATE_SUSPENDED
	sVoided          = pb.State_STATE_VOIDED

	rInspector    = pb.Role_ROLE_INSPECTOR
	rIntakeClerk  = pb.Role_ROLE_INTAKE_CLERK
	rCitizen      = pb.Role_ROLE_CITIZEN
	rSystem       = pb.Role_ROLE_SYSTEM
	rShiftLeader  = pb.Role_ROLE_SHIFT_LEADER
	rDispatcher   = pb.Role_ROLE_DISPATCHER
	rHandlingUnit = pb.Role_ROLE_HANDLING_UNIT
	rSupervisor   = pb.Role_ROLE_SUPERVISOR
)

// inWork are the states in which a unit holds the case and may ask for a
// return, an extension or a suspension.
var inWork = []pb.State{sDispatched, sAccepted}

// transitions is the lifecycle (DOMAIN.md section 3), one row per action in
// enum order.
var transitions = []Transition{
	{Action: pb.Action_ACTION_REPORT, Dest: DestState, To: sReported,
		Roles: []pb.Role{rInspector, rIntakeClerk, rCitizen, rSystem, rShiftLeader}},
	{Action: pb.Action_ACTION_VERIFY, From: []Origin{{States: []pb.State{sReported}}},
		Dest: DestState, To: sVerified, Roles: []pb.Role{rInspector}},
	{Action: pb.Action_ACTION_FILE,
		From: []Origin{
			{States: []pb.State{sVerified}},
			{States: []pb.State{sReported}, TrustedSource: true},
		},
		Dest: DestState, To: sFiled, Roles: []pb.Role{rShiftLeader}},
	{Action: pb.Action_ACTION_REJECT, From: []Origin{{States: []pb.State{sReported, sVerified}}},
		Dest: DestState, To: sNotFiled, Roles: []pb.Role{rShiftLeader}},
	{Action: pb.Action_ACTION_SELF_HANDLE, From: []Origin{{States: []pb.State{sReported}}},
		Dest: DestState, To: sClosed, Roles: []pb.Role{rInspector}},
	{Action: pb.Action_ACTION_DISPATCH, From: []Origin{{States: []pb.State{sFiled}}},
		Dest: DestState, To: sDispatched, Roles: []pb.Role{rShiftLeader, rDispatcher},
		Requires: []string{reqUnit, reqDeadline}},
	{Action: pb.Action_ACTION_ACCEPT, From: []Origin{{States: []pb.State{sDispatched}}},
		Dest: DestState, To: sAccepted, Roles: []pb.Role{rHandlingUnit}},
	{Action: pb.Action_ACTION_REQUEST_RETURN, From: []Origin{{States: inWork, NoPending: true}},
		Dest: DestState, To: sReturnRequested, Roles: []pb.Role{rHandlingUnit},
		Requires: []string{reqNote}},
	{Action: pb.Action_ACTION_APPROVE_RETURN, From: []Origin{{States: []pb.State{sReturnRequested}}},
		Dest: DestState, To: sFiled, Roles: []pb.Role{rShiftLeader, rDispatcher}},
	{Action: pb.Action_ACTION_DENY_RETURN, From: []Origin{{States: []pb.State{sReturnRequested}}},
		Dest: DestPendingFrom, Roles: []pb.Role{rShiftLeader, rDispatcher}},
	{Action: pb.Action_ACTION_HANDLE, From: []Origin{{States: []pb.State{sAccepted}}},
		Dest: DestState, To: sHandled, Roles: []pb.Role{rHandlingUnit}},
	{Action: pb.Action_ACTION_CHECK_PASS, From: []Origin{{States: []pb.State{sHandled}}},
		Dest: DestState, To: sChecked, Roles: []pb.Role{rInspector}},
	{Action: pb.Action_ACTION_CHECK_FAIL, From: []Origin{{States: []pb.State{sHandled}}},
		Dest: DestState, To: sDispatched, Roles: []pb.Role{rInspector}},
	{Action: pb.Action_ACTION_CLOSE, From: []Origin{{States: []pb.State{sChecked}}},
		Dest: DestState, To: sClosed, Roles: []pb.Role{rShiftLeader}},
	{Action: pb.Action_ACTION_REQUEST_EXTENSION, From: []Origin{{States: inWork, NoPending: true}},
		Dest: DestStay, Roles: []pb.Role{rHandlingUnit},
		Requires: []string{reqExtensionMinutes}},
	{Action: pb.Action_ACTION_APPROVE_EXTENSION,
		From: []Origin{{States: inWork, Pending: pb.Action_ACTION_REQUEST_EXTENSION}},
		Dest: DestStay, Roles: []pb.Role{rShiftLeader, rDispatcher}},
	{Action: pb.Action_ACTION_DENY_EXTENSION,
		From: []Origin{{States: inWork, Pending: pb.Action_ACTION_REQUEST_EXTENSION}},
		Dest: DestStay, Roles: []pb.Role{rShiftLeader, rDispatcher}},
	{Action: pb.Action_ACTION_REQUEST_SUSPEND, From: []Origin{{States: inWork, NoPending: true}},
		Dest: DestStay, Roles: []pb.Role{rHandlingUnit}},
	{Action: pb.Action_ACTION_APPROVE_SUSPEND,
		From: []Origin{{States: inWork, Pending: pb.Action_ACTION_REQUEST_SUSPEND}},
		Dest: DestState, To: sSuspended, Roles: []pb.Role{rShiftLeader}},
	{Action: pb.Action_ACTION_DENY_SUSPEND,
		From: []Origin{{States: inWork, Pending: pb.Action_ACTION_REQUEST_SUSPEND}},
		Dest: DestStay, Roles: []pb.Role{rShiftLeader}},
	{Action: pb.Action_ACTION_RESUME, From: []Origin{{States: []pb.State{sSuspended}}},
		Dest: DestSuspendedFrom, Roles: []pb.Role{rShiftLeader}},
	{Action: pb.Action_ACTION_VOID, From: []Origin{{}},
		Dest: DestState, To: sVoided, Roles: []pb.Role{rShiftLeader}},
	{Action: pb.Action_ACTION_SUPERVISE, From: []Origin{{}},
		Dest: DestStay, Roles: []pb.Role{rShiftLeader, rSupervisor}},
	// 上交: the node hands the case up to its parent tier's platform. Any
	// pending request (a return request in RETURN_REQUESTED, an extension or
	// suspension request in DISPATCHED/ACCEPTED) is dropped with the unit's
	// ownership; the holder node changes in the state machine processor.
	{Action: pb.Action_ACTION_TRANSFER_UP,
		From: []Origin{{States: []pb.State{sFiled, sDispatched, sAccepted, sReturnRequested}}},
		Dest: DestState, To: sFiled, Roles: []pb.Role{rShiftLeader, rDispatcher},
		Requires: []string{reqNote}},
	// 改派: the holder's dispatcher moves a case a unit holds to another
	// unit, with a new deadline, as DISPATCH would; any pending request
	// (return, extension, suspension) is dropped with the old unit. Apply
	// refuses the unit the case already has.
	{Action: pb.Action_ACTION_REASSIGN,
		From: []Origin{{States: []pb.State{sDispatched, sAccepted, sReturnRequested}}},
		Dest: DestState, To: sDispatched, Roles: []pb.Role{rShiftLeader, rDispatcher},
		Requires: []string{reqUnit, reqDeadline, reqNote}},
	// 提请会诊: a case whose owner is disputed goes to the city's joint
	// review; like TRANSFER_UP it goes back to FILED with no unit, deadline
	// or pending request. The state machine processor moves the holder and
	// marks the case in review.
	{Action: pb.Action_ACTION_REFER_REVIEW,
		From: []Origin{{States: []pb.State{sFiled, sDispatched, sAccepted, sReturnRequested}}},
		Dest: DestState, To: sFiled, Roles: []pb.Role{rShiftLeader, rDispatcher},
		Requires: []string{reqNote}},
	// 会诊裁定: the city's shift leader decides the owner after joint review
	// and dispatches to it. The processor checks the case is in review.
	{Action: pb.Action_ACTION_DECIDE_OWNER, From: []Origin{{States: []pb.State{sFiled}}},
		Dest: DestState, To: sDispatched, Roles: []pb.Role{rShiftLeader},
		Requires: []string{reqUnit, reqDeadline, reqNote}},
	// 下派: the holder hands a case, already dispatched to (or accepted by)
	// a unit hosted by a node below it, down to that node: the unit, state,
	// deadline and any pending request stay (no needless 改派); the state
	// machine processor moves the holder and refuses a unit not hosted
	// below.
	{Action: pb.Action_ACTION_HAND_DOWN,
		From: []Origin{{States: []pb.State{sDispatched, sAccepted, sReturnRequested}}},
		Dest: DestStay, Roles: []pb.Role{rShiftLeader, rDispatcher},
		Requires: []string{reqNote}},
}

// byAction indexes transitions by action.
var byAction = func() map[pb.Action]*Transition {
	m := make(map[pb.Action]*Transition, len(transitions))
	for i := range transitions {
		t := &transitions[i]
		if _, dup := m[t.Action]; dup {
			panic("workflow: duplicate transition for " + t.Action.String())
		}
		m[t.Action] = t
	}
	return m
}()

// Transitions returns a deep copy of the lifecycle table, in action enum
// order (for documentation endpoints and clients).
func Transitions() []Transition {
	out := make([]Transition, len(transitions))
	for i, t := range transitions {
		t.Roles = slices.Clone(t.Roles)
		t.Requires = slices.Clone(t.Requires)
		from := make([]Origin, len(t.From))
		for j, o := range t.From {
			o.States = slices.Clone(o.States)
			from[j] = o
		}
		if t.From == nil {
			from = nil
		}
		t.From = from
		out[i] = t
	}
	return out
}

// IsTerminal reports whether nothing can happen to a case in state st.
func IsTerminal(st pb.State) bool {
	switch st {
	case sNotFiled, sClosed, sVoided:
		return true
	}
	return false
}

// IsOpen reports whether st is a lifecycle state that is not terminal.
// STATE_UNSPECIFIED and unknown values are neither open nor terminal.
func IsOpen(st pb.State) bool {
	if st == pb.State_STATE_UNSPECIFIED {
		return false
	}
	if _, known := pb.State_name[int32(st)]; !known {
		return false
	}
	return !IsTerminal(st)
}

// matches reports whether c satisfies o.
func (o Origin) matches(c *pb.Case) bool {
	st := c.GetState()
	if len(o.States) == 0 {
		if !IsOpen(st) {
			return false
		}
	} else if !slices.Contains(o.States, st) {
		return false
	}
	pending := c.GetPending().GetAction()
	if o.NoPending && pending != pb.Action_ACTION_UNSPECIFIED {
		return false
	}
	if o.Pending != pb.Action_ACTION_UNSPECIFIED && pending != o.Pending {
		return false
	}
	if o.TrustedSource && !slices.Contains(TrustedSources, c.GetSource()) {
		return false
	}
	return true
}

// allows reports whether t may start from c (ignoring role and fields).
func (t *Transition) allows(c *pb.Case) bool {
	for _, o := range t.From {
		if o.matches(c) {
			return true
		}
	}
	return false
}

// Allowed lists the actions allowed from c's current state, pending request
// and source, in enum order, regardless of role. It is empty for nil,
// unreported (STATE_UNSPECIFIED) and terminal cases.
func Allowed(c *pb.Case) []pb.Action {
	if c == nil {
		return nil
	}
	var out []pb.Action
	for i := range transitions {
		if transitions[i].allows(c) {
			out = append(out, transitions[i].Action)
		}
	}
	return out
}

// Roles lists the roles allowed to take action a, in enum order. It is nil
// for unknown actions.
func Roles(a pb.Action) []pb.Role {
	t, ok := byAction[a]
	if !ok {
		return nil
	}
	r := slices.Clone(t.Roles)
	slices.Sort(r)
	return r
}

// describeFrom renders where t may start from, for error messages.
func (t *Transition) describeFrom() string {
	if len(t.From) == 0 {
		return "a new case (it creates the case)"
	}
	parts := make([]string, 0, len(t.From))
	for _, o := range t.From {
		var b strings.Builder
		if len(o.States) == 0 {
			b.WriteString("any open state")
		} else {
			b.WriteString(joinStates(o.States))
		}
		if o.NoPending {
			b.WriteString(" with no pending request")
		}
		if o.Pending != pb.Action_ACTION_UNSPECIFIED {
			b.WriteString(" with a pending " + o.Pending.String())
		}
		if o.TrustedSource {
			b.WriteString(" when the source is trusted (" + joinSources(TrustedSources) + ")")
		}
		parts = append(parts, b.String())
	}
	return strings.Join(parts, ", or ")
}

func joinStates(s []pb.State) string {
	names := make([]string, len(s))
	for i, v := range s {
		names[i] = v.String()
	}
	return strings.Join(names, " or ")
}

func joinSources(s []pb.Source) string {
	names := make([]string, len(s))
	for i, v := range s {
		names[i] = v.String()
	}
	return strings.Join(names, ", ")
}

func joinRoles(r []pb.Role) string {
	names := make([]string, len(r))
	for i, v := range r {
		names[i] = v.String()
	}
	return strings.Join(names, ", ")
}

func joinActions(a []pb.Action) string {
	names := make([]string, len(a))
	for i, v := range a {
		names[i] = v.String()
	}
	return strings.Join(names, ", ")
}
