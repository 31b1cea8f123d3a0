package workflow

import (
	"errors"
	"slices"
	"strings"
	"testing"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"google.golang.org/protobuf/proto"
)

// Tests of the ownership actions: REASSIGN (改派), REFER_REVIEW (提请会诊) and
// DECIDE_OWNER (会诊裁定).

// refusedUnchanged asserts that a refused Apply left c byte-identical to want.
func refusedUnchanged(t *testing.T, name string, c, want *pb.Case) {
	t.Helper()
	if !proto.Equal(c, want) {
		t.Errorf("%s: refused action changed the case", name)
	}
	if string(marshal(t, c)) != string(marshal(t, want)) {
		t.Errorf("%s: refused action changed the case bytes", name)
	}
}

// unitHeld are the fixtures a unit holds, in every pending variant.
func unitHeld() []fixture {
	return []fixture{
		{"DISPATCHED", baseCase(sDispatched)},
		{"DISPATCHED/pending-extension", withPending(baseCase(sDispatched), pb.Action_ACTION_REQUEST_EXTENSION)},
		{"DISPATCHED/pending-suspend", withPending(baseCase(sDispatched), pb.Action_ACTION_REQUEST_SUSPEND)},
		{"ACCEPTED", baseCase(sAccepted)},
		{"ACCEPTED/pending-extension", withPending(baseCase(sAccepted), pb.Action_ACTION_REQUEST_EXTENSION)},
		{"ACCEPTED/pending-suspend", withPending(baseCase(sAccepted), pb.Action_ACTION_REQUEST_SUSPEND)},
		{"RETURN_REQUESTED/from-DISPATCHED", returnRequested(sDispatched)},
		{"RETURN_REQUESTED/from-ACCEPTED", returnRequested(sAccepted)},
	}
}

func TestReassign(t *testing.T) {
	const reason = "wrong unit: the lane belongs to the street office"
	at := t0 + 3*hour
	newDeadline := at + 2*day
	for _, fx := range unitHeld() {
		for _, role := range []pb.Role{rShiftLeader, rDispatcher} {
			name := fx.name + "/" + role.String()
			c := clone(fx.c)
			s := Step{Action: pb.Action_ACTION_REASSIGN, Actor: "disp-2", Role: role, Note: reason,
				Attachments: []string{"catalogue.pdf"}, Unit: "street-office-3", UnitTier: pb.Tier_TIER_STREET,
				DeadlineUnixMs: newDeadline, AtUnixMs: at, RequestID: "ra-1"}
			if err := Apply(c, s); err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			// Written out by hand: the new unit, tier, dispatch time and
			// deadline; no pending request; everything else kept.
			want := clone(fx.c)
			want.State = sDispatched
			want.OwnerUnit, want.OwnerTier = "street-office-3", pb.Tier_TIER_STREET
			want.DispatchedAt, want.Deadline = ts(at), ts(newDeadline)
			want.Pending = nil
			want.Version = fx.c.Version + 1
			want.UpdatedAt = ts(at)
			want.History = append(want.History, &pb.HistoryEntry{Action: pb.Action_ACTION_REASSIGN, Actor: "disp-2", Role: role,
				At: ts(at), Note: reason, Attachments: []string{"catalogue.pdf"}, FromState: fx.c.State, ToState: sDispatched,
				Version: fx.c.Version + 1, Unit: "street-office-3", RequestId: "ra-1"})
			if !proto.Equal(c, want) {
				t.Errorf("%s: after reassign\n got %v\nwant %v", name, c, want)
			}
			checkInvariants(t, c)
			// The new unit starts over: it may accept and make requests.
			if a := Allowed(c); !slices.Contains(a, pb.Action_ACTION_ACCEPT) || !slices.Contains(a, pb.Action_ACTION_REQUEST_EXTENSION) {
				t.Errorf("%s: allowed after reassign %v", name, a)
			}
		}
	}

	// Without a tier the old unit's tier does not stay.
	c := baseCase(sAccepted) // unit-sanitation, district
	s := fullStep(pb.Action_ACTION_REASSIGN, rDispatcher)
	s.UnitTier = pb.Tier_TIER_UNSPECIFIED
	if err := Apply(c, s); err != nil {
		t.Fatal(err)
	}
	if c.OwnerUnit != "unit-roads" || c.OwnerTier != pb.Tier_TIER_UNSPECIFIED {
		t.Errorf("reassign without tier: owner %q/%s", c.OwnerUnit, c.OwnerTier)
	}
}

// A pending extension is dropped and the deadline replaced, not extended.
func TestReassignDropsPendingExtension(t *testing.T) {
	r := dispatched(t) // unit-parks, deadline t0+1d
	r.step(pb.Action_ACTION_ACCEPT, rHandlingUnit)
	r.step(pb.Action_ACTION_REQUEST_EXTENSION, rHandlingUnit, func(s *Step) { s.ExtensionMinutes = 600; s.Note = "rain" })
	if r.c.Pending.GetAction() != pb.Action_ACTION_REQUEST_EXTENSION {
		t.Fatalf("pending %v", r.c.Pending)
	}
	nd := t0 + 3*day
	r.step(pb.Action_ACTION_REASSIGN, rDispatcher, dispatchTo("unit-roads", nd), note("parks does not own roadside trees"))
	r.wantState(sDispatched)
	if r.c.Pending != nil {
		t.Errorf("pending kept: %v", r.c.Pending)
	}
	if ms(r.c.Deadline) != nd {
		t.Errorf("deadline %d, want the new one %d (not the old one moved by the extension)", ms(r.c.Deadline), nd)
	}
	if r.c.OwnerUnit != "unit-roads" || ms(r.c.DispatchedAt) != r.at || r.c.ExtensionCount != 0 {
		t.Errorf("owner %q dispatched_at %v extensions %d", r.c.OwnerUnit, r.c.DispatchedAt, r.c.ExtensionCount)
	}
	h := r.c.History[len(r.c.History)-1]
	if h.Action != pb.Action_ACTION_REASSIGN || h.Unit != "unit-roads" || h.FromState != sAccepted || h.Note != "parks does not own roadside trees" {
		t.Errorf("reassign entry %v", h)
	}
	// The old request can no longer be decided.
	if err := r.try(pb.Action_ACTION_APPROVE_EXTENSION, rDispatcher); !errors.Is(err, ErrForbidden) ||
		!strings.Contains(err.Error(), "no ACTION_REQUEST_EXTENSION is pending") {
		t.Errorf("approve the dropped extension: %v", err)
	}
	// The new unit works it to the end.
	r.step(pb.Action_ACTION_ACCEPT, rHandlingUnit)
	r.step(pb.Action_ACTION_HANDLE, rHandlingUnit)
	r.step(pb.Action_ACTION_CHECK_PASS, rInspector)
	r.step(pb.Action_ACTION_CLOSE, rShiftLeader)
	r.wantState(sClosed)
}

func TestReassignSameUnitRefused(t *testing.T) {
	for _, fx := range unitHeld() {
		for _, tier := range []pb.Tier{pb.Tier_TIER_DISTRICT, pb.Tier_TIER_CITY, pb.Tier_TIER_UNSPECIFIED} {
			c := clone(fx.c)
			s := fullStep(pb.Action_ACTION_REASSIGN, rDispatcher)
			s.Unit, s.UnitTier = fx.c.OwnerUnit, tier // unit-sanitation
			err := Apply(c, s)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "unit" || !errors.Is(err, ErrInvalidArgument) || errors.Is(err, ErrForbidden) {
				t.Errorf("%s/%s: got %v, want FieldError unit", fx.name, tier, err)
				continue
			}
			if !strings.Contains(fe.Reason, `"unit-sanitation"`) || !strings.Contains(fe.Reason, "ACTION_REASSIGN") {
				t.Errorf("%s/%s: reason %q does not name the unit and the action", fx.name, tier, fe.Reason)
			}
			refusedUnchanged(t, fx.name, c, fx.c)
		}
	}
	// Another unit whose id only starts the same is another unit.
	c := baseCase(sDispatched)
	s := fullStep(pb.Action_ACTION_REASSIGN, rDispatcher)
	s.Unit = "unit-sanitation-2"
	if err := Apply(c, s); err != nil || c.OwnerUnit != "unit-sanitation-2" {
		t.Errorf("reassign to unit-sanitation-2: %v, owner %q", err, c.OwnerUnit)
	}
}

func TestReassignRefusals(t *testing.T) {
	// Not from a state where no unit holds the case.
	for _, fx := range []fixture{
		{"REPORTED", baseCase(sReported)},
		{"VERIFIED", baseCase(sVerified)},
		{"FILED", baseCase(sFiled)},
		{"HANDLED", baseCase(sHandled)},
		{"CHECKED", baseCase(sChecked)},
		{"SUSPENDED", suspended(sAccepted)},
		{"CLOSED", baseCase(sClosed)},
		{"VOIDED", baseCase(sVoided)},
	} {
		c := clone(fx.c)
		err := Apply(c, fullStep(pb.Action_ACTION_REASSIGN, rDispatcher))
		if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), " is "+fx.c.State.String()+";") ||
			!strings.Contains(err.Error(), "ACTION_REASSIGN is allowed only from STATE_DISPATCHED or STATE_ACCEPTED or STATE_RETURN_REQUESTED") {
			t.Errorf("%s: got %v", fx.name, err)
		}
		refusedUnchanged(t, fx.name, c, fx.c)
	}
	for _, role := range []pb.Role{rInspector, rIntakeClerk, rCitizen, rSystem, rHandlingUnit, rSupervisor} {
		c := baseCase(sAccepted)
		err := Apply(c, fullStep(pb.Action_ACTION_REASSIGN, role))
		if !errors.Is(err, ErrRoleNotAllowed) || !strings.Contains(err.Error(), "allowed roles: ROLE_SHIFT_LEADER, ROLE_DISPATCHER") {
			t.Errorf("%s: got %v", role, err)
		}
		refusedUnchanged(t, role.String(), c, baseCase(sAccepted))
	}
}

func TestReferReview(t *testing.T) {
	const reason = "owner disputed: city roads and the district both decline the manhole"
	from := append([]fixture{{"FILED", baseCase(sFiled)}}, unitHeld()...)
	for _, fx := range from {
		for _, role := range []pb.Role{rShiftLeader, rDispatcher} {
			name := fx.name + "/" + role.String()
			c := clone(fx.c)
			s := Step{Action: pb.Action_ACTION_REFER_REVIEW, Actor: "lead-1", Role: role, Note: reason,
				AtUnixMs: t0 + 5*hour, RequestID: "rv-1",
				// Dispatch fields are ignored: the review decides the owner.
				Unit: "unit-x", UnitTier: pb.Tier_TIER_CITY, DeadlineUnixMs: t0 + 9*hour}
			if err := Apply(c, s); err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			want := clone(fx.c)
			want.State, want.OwnerUnit, want.OwnerTier, want.Deadline, want.Pending = sFiled, "", pb.Tier_TIER_UNSPECIFIED, nil, nil
			want.Version, want.UpdatedAt = fx.c.Version+1, ts(s.AtUnixMs)
			want.History = append(want.History, &pb.HistoryEntry{Action: pb.Action_ACTION_REFER_REVIEW, Actor: "lead-1", Role: role,
				At: ts(s.AtUnixMs), Note: reason, FromState: fx.c.State, ToState: sFiled, Version: fx.c.Version + 1, RequestId: "rv-1"})
			if !proto.Equal(c, want) {
				t.Errorf("%s: after refer\n got %v\nwant %v", name, c, want)
			}
			checkInvariants(t, c)
			if a := Allowed(c); !slices.Contains(a, pb.Action_ACTION_DECIDE_OWNER) {
				t.Errorf("%s: DECIDE_OWNER not allowed after refer: %v", name, a)
			}
		}
	}
	for _, fx := range []fixture{
		{"REPORTED", baseCase(sReported)},
		{"VERIFIED", baseCase(sVerified)},
		{"HANDLED", baseCase(sHandled)},
		{"CHECKED", baseCase(sChecked)},
		{"SUSPENDED", suspended(sDispatched)},
		{"NOT_FILED", baseCase(sNotFiled)},
		{"CLOSED", baseCase(sClosed)},
	} {
		c := clone(fx.c)
		err := Apply(c, fullStep(pb.Action_ACTION_REFER_REVIEW, rShiftLeader))
		if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), " is "+fx.c.State.String()+";") {
			t.Errorf("%s: got %v", fx.name, err)
		}
		refusedUnchanged(t, fx.name, c, fx.c)
	}
	// The reason is required.
	c := returnRequested(sAccepted)
	s := fullStep(pb.Action_ACTION_REFER_REVIEW, rDispatcher)
	s.Note = "  "
	if err := Apply(c, s); !isField(err, "note") || !strings.Contains(err.Error(), "ACTION_REFER_REVIEW") {
		t.Errorf("refer without reason: %v", err)
	}
	refusedUnchanged(t, "no reason", c, returnRequested(sAccepted))
	if err := Apply(c, fullStep(pb.Action_ACTION_REFER_REVIEW, rHandlingUnit)); !errors.Is(err, ErrRoleNotAllowed) {
		t.Errorf("handling unit refers: %v", err)
	}
}

func TestDecideOwner(t *testing.T) {
	// A shift leader decides from FILED: dispatched to the decided unit.
	c := baseCase(sFiled)
	s := fullStep(pb.Action_ACTION_DECIDE_OWNER, rShiftLeader)
	if err := Apply(c, s); err != nil {
		t.Fatal(err)
	}
	if c.State != sDispatched || c.OwnerUnit != "unit-roads" || c.OwnerTier != pb.Tier_TIER_STREET ||
		ms(c.DispatchedAt) != s.AtUnixMs || ms(c.Deadline) != s.DeadlineUnixMs {
		t.Errorf("after decide owner: %v", c)
	}
	if h := c.History[len(c.History)-1]; h.Action != pb.Action_ACTION_DECIDE_OWNER || h.Unit != "unit-roads" ||
		h.FromState != sFiled || h.ToState != sDispatched || h.Note != s.Note {
		t.Errorf("decide owner entry %v", h)
	}
	checkInvariants(t, c)

	// A dispatcher may not (PermissionDenied at the API), whatever the state.
	for _, fx := range []fixture{{"FILED", baseCase(sFiled)}, {"DISPATCHED", baseCase(sDispatched)}} {
		c := clone(fx.c)
		err := Apply(c, fullStep(pb.Action_ACTION_DECIDE_OWNER, rDispatcher))
		if !errors.Is(err, ErrRoleNotAllowed) || errors.Is(err, ErrForbidden) ||
			!strings.Contains(err.Error(), "ROLE_DISPATCHER may not take ACTION_DECIDE_OWNER; allowed roles: ROLE_SHIFT_LEADER") {
			t.Errorf("%s: dispatcher decides: %v", fx.name, err)
		}
		refusedUnchanged(t, fx.name+"/dispatcher", c, fx.c)
	}
	if got := Roles(pb.Action_ACTION_DECIDE_OWNER); !slices.Equal(got, []pb.Role{rShiftLeader}) {
		t.Errorf("Roles(DECIDE_OWNER) = %v", got)
	}

	// Only from FILED (FailedPrecondition at the API), naming the state and
	// what is allowed now.
	for _, fx := range append(unitHeld(),
		fixture{"REPORTED", baseCase(sReported)}, fixture{"VERIFIED", baseCase(sVerified)},
		fixture{"HANDLED", baseCase(sHandled)}, fixture{"SUSPENDED", suspended(sDispatched)},
		fixture{"CLOSED", baseCase(sClosed)}) {
		c := clone(fx.c)
		err := Apply(c, fullStep(pb.Action_ACTION_DECIDE_OWNER, rShiftLeader))
		if !errors.Is(err, ErrForbidden) || errors.Is(err, ErrRoleNotAllowed) {
			t.Errorf("%s: got %v, want ErrForbidden", fx.name, err)
			continue
		}
		msg := err.Error()
		for _, w := range []string{" is " + fx.c.State.String() + ";", "ACTION_DECIDE_OWNER is allowed only from STATE_FILED;"} {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: %q lacks %q", fx.name, msg, w)
			}
		}
		refusedUnchanged(t, fx.name, c, fx.c)
	}
	err := Apply(baseCase(sDispatched), fullStep(pb.Action_ACTION_DECIDE_OWNER, rShiftLeader))
	if want := "allowed now: ACTION_ACCEPT, ACTION_REQUEST_RETURN, ACTION_REQUEST_EXTENSION, ACTION_REQUEST_SUSPEND, " +
		"ACTION_VOID, ACTION_SUPERVISE, ACTION_TRANSFER_UP, ACTION_REASSIGN, ACTION_REFER_REVIEW, ACTION_HAND_DOWN"; err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("decide owner on DISPATCHED: %v, want it to end %q", err, want)
	}

	// Role is checked before state, fields after state.
	if err := Apply(baseCase(sDispatched), fullStep(pb.Action_ACTION_DECIDE_OWNER, rCitizen)); !errors.Is(err, ErrRoleNotAllowed) {
		t.Errorf("citizen on DISPATCHED: %v", err)
	}
	s = fullStep(pb.Action_ACTION_DECIDE_OWNER, rShiftLeader)
	s.Unit = ""
	if err := Apply(baseCase(sDispatched), s); !errors.Is(err, ErrForbidden) {
		t.Errorf("no unit on DISPATCHED: %v", err)
	}
}

// The whole review: a unit says the case is not its own, the dispatcher
// refers it, the city's shift leader decides and dispatches.
func TestJointReviewScenario(t *testing.T) {
	r := dispatched(t)
	r.step(pb.Action_ACTION_REQUEST_RETURN, rHandlingUnit, note("not ours: the cover belongs to the gas utility"))
	r.step(pb.Action_ACTION_REFER_REVIEW, rDispatcher, note("utility denies it too"))
	r.wantState(sFiled)
	if r.c.OwnerUnit != "" || r.c.Deadline != nil || r.c.Pending != nil {
		t.Fatalf("after refer: %v", r.c)
	}
	if err := r.try(pb.Action_ACTION_DECIDE_OWNER, rDispatcher, dispatchTo("gas-utility", r.at+day), note("x")); !errors.Is(err, ErrRoleNotAllowed) {
		t.Errorf("dispatcher decides: %v", err)
	}
	r.step(pb.Action_ACTION_DECIDE_OWNER, rShiftLeader, dispatchTo("gas-utility", r.at+10*minute+day), note("handover record 2019-07: gas utility"))
	r.wantState(sDispatched)
	if r.c.OwnerUnit != "gas-utility" || ms(r.c.Deadline) != r.at+day {
		t.Errorf("after decide: %v", r.c)
	}
	if err := r.try(pb.Action_ACTION_DECIDE_OWNER, rShiftLeader, dispatchTo("gas-utility", r.at+day), note("again")); !errors.Is(err, ErrForbidden) {
		t.Errorf("decide twice: %v", err)
	}
	r.step(pb.Action_ACTION_ACCEPT, rHandlingUnit)
	r.step(pb.Action_ACTION_HANDLE, rHandlingUnit)
	r.step(pb.Action_ACTION_CHECK_PASS, rInspector)
	r.step(pb.Action_ACTION_CLOSE, rShiftLeader)
	want := []pb.Action{pb.Action_ACTION_REPORT, pb.Action_ACTION_FILE, pb.Action_ACTION_DISPATCH, pb.Action_ACTION_REQUEST_RETURN,
		pb.Action_ACTION_REFER_REVIEW, pb.Action_ACTION_DECIDE_OWNER, pb.Action_ACTION_ACCEPT, pb.Action_ACTION_HANDLE,
		pb.Action_ACTION_CHECK_PASS, pb.Action_ACTION_CLOSE}
	var got []pb.Action
	for _, h := range r.c.History {
		got = append(got, h.Action)
	}
	if !slices.Equal(got, want) {
		t.Errorf("history %v", got)
	}
}
