package workflow

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Fixed times: tests never read the clock either.
const (
	t0     int64 = 1_780_000_000_000 // fixture "reported at"
	minute int64 = 60_000
	hour         = 60 * minute
	day          = 24 * hour
)

func ts(ms int64) *timestamppb.Timestamp { return timestamppb.New(time.UnixMilli(ms)) }

func ms(t *timestamppb.Timestamp) int64 { return t.AsTime().UnixMilli() }

func clone(c *pb.Case) *pb.Case { return proto.Clone(c).(*pb.Case) }

// ---------------------------------------------------------------------------
// Fixtures: one consistent case per state and pending/source variant.

type fixture struct {
	name string
	c    *pb.Case
}

// baseCase is a case that went through some history and now sits in st.
func baseCase(st pb.State) *pb.Case {
	c := &pb.Case{
		Id:             "C-320582-20260501-0001",
		Source:         pb.Source_SOURCE_APP,
		Kind:           pb.Kind_KIND_EVENT,
		MajorCode:      "01",
		MinorCode:      "02",
		GridCode:       "320582110152102",
		Description:    "exposed garbage",
		Urgency:        pb.Urgency_URGENCY_ORDINARY,
		State:          st,
		ReportedAt:     ts(t0),
		UpdatedAt:      ts(t0 + 30*minute),
		Version:        3,
		ReworkCount:    1,
		ExtensionCount: 1,
		SuperviseCount: 1,
		History: []*pb.HistoryEntry{
			{Action: pb.Action_ACTION_REPORT, Actor: "citizen-1", Role: pb.Role_ROLE_CITIZEN, At: ts(t0), ToState: sReported, Version: 1},
			{Action: pb.Action_ACTION_SUPERVISE, Actor: "sup-1", Role: pb.Role_ROLE_SUPERVISOR, At: ts(t0 + 10*minute), FromState: sReported, ToState: sReported, Version: 2},
			{Action: pb.Action_ACTION_SUPERVISE, Actor: "sup-1", Role: pb.Role_ROLE_SUPERVISOR, At: ts(t0 + 30*minute), FromState: sReported, ToState: sReported, Version: 3},
		},
		ReportedAtNode: "node-1",
	}
	switch st {
	case pb.State_STATE_UNSPECIFIED:
		c.Version = 0
		c.History = nil
		c.ReportedAt = nil
		c.UpdatedAt = nil
		c.ReworkCount, c.ExtensionCount, c.SuperviseCount = 0, 0, 0
	case sReported, sVerified, sNotFiled:
	default:
		c.FiledAt = ts(t0 + 5*minute)
	}
	switch st {
	case sDispatched, sAccepted, sReturnRequested, sHandled, sChecked, sSuspended:
		c.OwnerUnit = "unit-sanitation"
		c.OwnerTier = pb.Tier_TIER_DISTRICT
		c.DispatchedAt = ts(t0 + 6*minute)
		c.Deadline = ts(t0 + day)
	case sClosed:
		c.ClosedAt = ts(t0 + 20*minute)
	}
	return c
}

func withPending(c *pb.Case, a pb.Action) *pb.Case {
	c.Pending = &pb.Pending{Action: a, Actor: "unit-person", Reason: "why", FromState: c.State, At: ts(t0 + 15*minute)}
	if a == pb.Action_ACTION_REQUEST_EXTENSION {
		c.Pending.ExtensionMinutes = 120
	}
	return c
}

func returnRequested(from pb.State) *pb.Case {
	c := withPending(baseCase(from), pb.Action_ACTION_REQUEST_RETURN)
	c.State = sReturnRequested
	return c
}

func suspended(from pb.State) *pb.Case {
	c := baseCase(sSuspended)
	c.SuspendedFrom = from
	c.SuspendedAt = ts(t0 + 20*minute)
	return c
}

func withSource(c *pb.Case, s pb.Source) *pb.Case { c.Source = s; return c }

func fixtures() []fixture {
	fx := []fixture{
		{"UNREPORTED", baseCase(pb.State_STATE_UNSPECIFIED)},
		{"REPORTED/app", baseCase(sReported)},
		{"REPORTED/hotline", withSource(baseCase(sReported), pb.Source_SOURCE_HOTLINE_12345)},
		{"REPORTED/inspector", withSource(baseCase(sReported), pb.Source_SOURCE_INSPECTOR)},
		{"REPORTED/leader", withSource(baseCase(sReported), pb.Source_SOURCE_LEADER)},
		{"VERIFIED", baseCase(sVerified)},
		{"VERIFIED/inspector", withSource(baseCase(sVerified), pb.Source_SOURCE_INSPECTOR)},
		{"FILED", baseCase(sFiled)},
		{"NOT_FILED", baseCase(sNotFiled)},
		{"RETURN_REQUESTED/from-DISPATCHED", returnRequested(sDispatched)},
		{"RETURN_REQUESTED/from-ACCEPTED", returnRequested(sAccepted)},
		{"HANDLED", baseCase(sHandled)},
		{"CHECKED", baseCase(sChecked)},
		{"CLOSED", baseCase(sClosed)},
		{"SUSPENDED/from-DISPATCHED", suspended(sDispatched)},
		{"SUSPENDED/from-ACCEPTED", suspended(sAccepted)},
		{"VOIDED", baseCase(sVoided)},
	}
	for _, st := range []pb.State{sDispatched, sAccepted} {
		fx = append(fx,
			fixture{st.String()[6:] + "/no-pending", baseCase(st)},
			fixture{st.String()[6:] + "/pending-extension", withPending(baseCase(st), pb.Action_ACTION_REQUEST_EXTENSION)},
			fixture{st.String()[6:] + "/pending-suspend", withPending(baseCase(st), pb.Action_ACTION_REQUEST_SUSPEND)},
		)
	}
	return fx
}

// ---------------------------------------------------------------------------
// The oracle: written independently of the table in transitions.go.

// expectState says whether action a is allowed from c (ignoring role) and
// where it leads.
func expectState(c *pb.Case, a pb.Action) (bool, pb.State) {
	st := c.GetState()
	pend := c.GetPending().GetAction()
	none := pend == pb.Action_ACTION_UNSPECIFIED
	work := st == sDispatched || st == sAccepted
	open := st != pb.State_STATE_UNSPECIFIED && st != sNotFiled && st != sClosed && st != sVoided
	trusted := c.GetSource() == pb.Source_SOURCE_INSPECTOR || c.GetSource() == pb.Source_SOURCE_LEADER
	switch a {
	case pb.Action_ACTION_VERIFY:
		return st == sReported, sVerified
	case pb.Action_ACTION_FILE:
		return st == sVerified || (st == sReported && trusted), sFiled
	case pb.Action_ACTION_REJECT:
		return st == sReported || st == sVerified, sNotFiled
	case pb.Action_ACTION_SELF_HANDLE:
		return st == sReported, sClosed
	case pb.Action_ACTION_DISPATCH:
		return st == sFiled, sDispatched
	case pb.Action_ACTION_ACCEPT:
		return st == sDispatched, sAccepted
	case pb.Action_ACTION_REQUEST_RETURN:
		return work && none, sReturnRequested
	case pb.Action_ACTION_APPROVE_RETURN:
		return st == sReturnRequested, sFiled
	case pb.Action_ACTION_DENY_RETURN:
		return st == sReturnRequested, c.GetPending().GetFromState()
	case pb.Action_ACTION_HANDLE:
		return st == sAccepted, sHandled
	case pb.Action_ACTION_CHECK_PASS:
		return st == sHandled, sChecked
	case pb.Action_ACTION_CHECK_FAIL:
		return st == sHandled, sDispatched
	case pb.Action_ACTION_CLOSE:
		return st == sChecked, sClosed
	case pb.Action_ACTION_REQUEST_EXTENSION, pb.Action_ACTION_REQUEST_SUSPEND:
		return work && none, st
	case pb.Action_ACTION_APPROVE_EXTENSION, pb.Action_ACTION_DENY_EXTENSION:
		return work && pend == pb.Action_ACTION_REQUEST_EXTENSION, st
	case pb.Action_ACTION_APPROVE_SUSPEND:
		return work && pend == pb.Action_ACTION_REQUEST_SUSPEND, sSuspended
	case pb.Action_ACTION_DENY_SUSPEND:
		return work && pend == pb.Action_ACTION_REQUEST_SUSPEND, st
	case pb.Action_ACTION_RESUME:
		return st == sSuspended, c.GetSuspendedFrom()
	case pb.Action_ACTION_VOID:
		return open, sVoided
	case pb.Action_ACTION_SUPERVISE:
		return open, st
	case pb.Action_ACTION_TRANSFER_UP:
		// Any pending request goes with it (RETURN_REQUESTED, or an extension
		// or suspension request while in work).
		return st == sFiled || work || st == sReturnRequested, sFiled
	case pb.Action_ACTION_REASSIGN:
		// A unit holds the case (whatever it asked for); it goes to another.
		return st == sDispatched || st == sAccepted || st == sReturnRequested, sDispatched
	case pb.Action_ACTION_REFER_REVIEW:
		// Disputed owner: back to FILED for the joint review, from the same
		// states as TRANSFER_UP.
		return st == sFiled || st == sDispatched || st == sAccepted || st == sReturnRequested, sFiled
	case pb.Action_ACTION_DECIDE_OWNER:
		return st == sFiled, sDispatched
	case pb.Action_ACTION_HAND_DOWN:
		// A unit has it; it goes down to the unit's node as it is.
		return st == sDispatched || st == sAccepted || st == sReturnRequested, st
	}
	return false, 0 // REPORT never applies to an existing case
}

var expectRoles = map[pb.Action][]pb.Role{
	pb.Action_ACTION_REPORT:            {rInspector, rIntakeClerk, rCitizen, rSystem, rShiftLeader},
	pb.Action_ACTION_VERIFY:            {rInspector},
	pb.Action_ACTION_FILE:              {rShiftLeader},
	pb.Action_ACTION_REJECT:            {rShiftLeader},
	pb.Action_ACTION_SELF_HANDLE:       {rInspector},
	pb.Action_ACTION_DISPATCH:          {rShiftLeader, rDispatcher},
	pb.Action_ACTION_ACCEPT:            {rHandlingUnit},
	pb.Action_ACTION_REQUEST_RETURN:    {rHandlingUnit},
	pb.Action_ACTION_APPROVE_RETURN:    {rShiftLeader, rDispatcher},
	pb.Action_ACTION_DENY_RETURN:       {rShiftLeader, rDispatcher},
	pb.Action_ACTION_HANDLE:            {rHandlingUnit},
	pb.Action_ACTION_CHECK_PASS:        {rInspector},
	pb.Action_ACTION_CHECK_FAIL:        {rInspector},
	pb.Action_ACTION_CLOSE:             {rShiftLeader},
	pb.Action_ACTION_REQUEST_EXTENSION: {rHandlingUnit},
	pb.Action_ACTION_APPROVE_EXTENSION: {rShiftLeader, rDispatcher},
	pb.Action_ACTION_DENY_EXTENSION:    {rShiftLeader, rDispatcher},
	pb.Action_ACTION_REQUEST_SUSPEND:   {rHandlingUnit},
	pb.Action_ACTION_APPROVE_SUSPEND:   {rShiftLeader},
	pb.Action_ACTION_DENY_SUSPEND:      {rShiftLeader},
	pb.Action_ACTION_RESUME:            {rShiftLeader},
	pb.Action_ACTION_VOID:              {rShiftLeader},
	pb.Action_ACTION_SUPERVISE:         {rShiftLeader, rSupervisor},
	pb.Action_ACTION_TRANSFER_UP:       {rShiftLeader, rDispatcher},
	pb.Action_ACTION_REASSIGN:          {rShiftLeader, rDispatcher},
	pb.Action_ACTION_REFER_REVIEW:      {rShiftLeader, rDispatcher},
	pb.Action_ACTION_DECIDE_OWNER:      {rShiftLeader},
	pb.Action_ACTION_HAND_DOWN:         {rShiftLeader, rDispatcher},
}

// expectAfter computes, independently of Apply, the whole case after a
// successful step.
func expectAfter(before *pb.Case, s Step, to pb.State) *pb.Case {
	c := clone(before)
	from := c.State
	at := ts(s.AtUnixMs)
	unit := ""
	switch s.Action {
	case pb.Action_ACTION_FILE:
		c.FiledAt = at
	case pb.Action_ACTION_SELF_HANDLE, pb.Action_ACTION_CLOSE:
		c.ClosedAt = at
	case pb.Action_ACTION_DISPATCH, pb.Action_ACTION_DECIDE_OWNER:
		unit = s.Unit
		c.OwnerUnit = s.Unit
		if s.UnitTier != 0 {
			c.OwnerTier = s.UnitTier
		}
		c.DispatchedAt = at
		c.Deadline = ts(s.DeadlineUnixMs)
	case pb.Action_ACTION_REASSIGN:
		unit = s.Unit
		c.OwnerUnit, c.OwnerTier, c.DispatchedAt, c.Deadline = s.Unit, s.UnitTier, at, ts(s.DeadlineUnixMs)
		c.Pending = nil
	case pb.Action_ACTION_REQUEST_RETURN, pb.Action_ACTION_REQUEST_SUSPEND:
		c.Pending = &pb.Pending{Action: s.Action, Actor: s.Actor, Reason: s.Note, FromState: from, At: at}
	case pb.Action_ACTION_REQUEST_EXTENSION:
		c.Pending = &pb.Pending{Action: s.Action, Actor: s.Actor, Reason: s.Note, FromState: from, At: at, ExtensionMinutes: s.ExtensionMinutes}
	case pb.Action_ACTION_APPROVE_RETURN, pb.Action_ACTION_TRANSFER_UP, pb.Action_ACTION_REFER_REVIEW:
		c.OwnerUnit, c.OwnerTier, c.Deadline, c.Pending = "", 0, nil, nil
	case pb.Action_ACTION_DENY_RETURN, pb.Action_ACTION_DENY_EXTENSION, pb.Action_ACTION_DENY_SUSPEND,
		pb.Action_ACTION_HANDLE:
		c.Pending = nil
	case pb.Action_ACTION_VOID:
		c.Pending, c.SuspendedFrom, c.SuspendedAt = nil, 0, nil
	case pb.Action_ACTION_CHECK_FAIL:
		c.ReworkCount++
		unit = c.OwnerUnit
		if s.DeadlineUnixMs > 0 {
			c.Deadline = ts(s.DeadlineUnixMs)
		}
	case pb.Action_ACTION_APPROVE_EXTENSION:
		if c.Deadline != nil {
			c.Deadline = ts(ms(c.Deadline) + c.Pending.ExtensionMinutes*minute)
		}
		c.ExtensionCount++
		c.Pending = nil
	case pb.Action_ACTION_APPROVE_SUSPEND:
		c.SuspendedFrom, c.SuspendedAt, c.Pending = from, at, nil
	case pb.Action_ACTION_RESUME:
		if c.Deadline != nil && c.SuspendedAt != nil && s.AtUnixMs > ms(c.SuspendedAt) {
			c.Deadline = ts(ms(c.Deadline) + s.AtUnixMs - ms(c.SuspendedAt))
		}
		c.SuspendedFrom, c.SuspendedAt = 0, nil
	case pb.Action_ACTION_SUPERVISE:
		c.SuperviseCount++
	case pb.Action_ACTION_HAND_DOWN:
		unit = c.OwnerUnit
	}
	c.State = to
	c.Version++
	c.UpdatedAt = at
	c.History = append(c.History, &pb.HistoryEntry{
		Action: s.Action, Actor: s.Actor, Role: s.Role, At: at, Note: s.Note,
		Attachments: slices.Clone(s.Attachments), FromState: from, ToState: to,
		Version: c.Version, Unit: unit, RequestId: s.RequestID,
	})
	return c
}

// fullStep is a step with every field valid for any action.
func fullStep(a pb.Action, r pb.Role) Step {
	at := t0 + 2*hour
	return Step{
		Action: a, Actor: "actor-7", Role: r, Note: "reason and feedback",
		Attachments: []string{"photo-1.jpg", "photo-2.jpg"},
		Unit:        "unit-roads", UnitTier: pb.Tier_TIER_STREET,
		DeadlineUnixMs: at + 4*hour, ExtensionMinutes: 90,
		AtUnixMs: at, RequestID: "req-" + a.String(),
	}
}

// checkInvariants asserts the invariants documented in doc.go.
func checkInvariants(t *testing.T, c *pb.Case) {
	t.Helper()
	st, p := c.GetState(), c.GetPending().GetAction()
	if (st == sReturnRequested) != (p == pb.Action_ACTION_REQUEST_RETURN) {
		t.Errorf("invariant: state %s with pending %s", st, p)
	}
	if (p == pb.Action_ACTION_REQUEST_EXTENSION || p == pb.Action_ACTION_REQUEST_SUSPEND) && st != sDispatched && st != sAccepted {
		t.Errorf("invariant: pending %s in state %s", p, st)
	}
	if (st == sSuspended) != (c.GetSuspendedFrom() != 0) {
		t.Errorf("invariant: state %s with suspended_from %s", st, c.GetSuspendedFrom())
	}
	if IsTerminal(st) && p != 0 {
		t.Errorf("invariant: terminal %s with pending %s", st, p)
	}
	if (st == sDispatched || st == sAccepted) && (c.GetOwnerUnit() == "" || c.GetDeadline() == nil) {
		t.Errorf("invariant: %s without owner unit or deadline", st)
	}
	if uint64(len(c.GetHistory())) != c.GetVersion() {
		t.Errorf("invariant: version %d with %d history entries", c.GetVersion(), len(c.GetHistory()))
	}
	if n := len(c.GetHistory()); n > 0 {
		last := c.GetHistory()[n-1]
		if last.GetVersion() != c.GetVersion() || last.GetToState() != st {
			t.Errorf("invariant: last history entry v%d→%s, case v%d %s", last.GetVersion(), last.GetToState(), c.GetVersion(), st)
		}
	}
}

func allActions() []pb.Action {
	var out []pb.Action
	for a := range int32(len(pb.Action_name)) {
		out = append(out, pb.Action(a))
	}
	return out
}

func allRoles() []pb.Role {
	var out []pb.Role
	for r := range int32(len(pb.Role_name)) {
		out = append(out, pb.Role(r))
	}
	return out
}

func allStates() []pb.State {
	var out []pb.State
	for s := range int32(len(pb.State_name)) {
		out = append(out, pb.State(s))
	}
	return out
}

// ---------------------------------------------------------------------------
// The exhaustive table test.

func TestApplyEveryActionStateRole(t *testing.T) {
	var ok, forbiddenN, roleN, fieldN int
	covered := map[pb.State]bool{}
	for _, fx := range fixtures() {
		covered[fx.c.GetState()] = true
		allowedNow := Allowed(fx.c)
		for _, a := range allActions() {
			wantAllowed, wantTo := expectState(fx.c, a)
			if got := slices.Contains(allowedNow, a); got != wantAllowed {
				t.Errorf("%s: Allowed contains %s = %v, want %v", fx.name, a, got, wantAllowed)
			}
			for _, r := range allRoles() {
				name := fmt.Sprintf("%s/%s/%s", fx.name, a, r)
				before := clone(fx.c)
				c := clone(fx.c)
				s := fullStep(a, r)
				err := Apply(c, s)
				var fe *FieldError
				switch {
				case a == pb.Action_ACTION_UNSPECIFIED || r == pb.Role_ROLE_UNSPECIFIED:
					want := "role"
					if a == pb.Action_ACTION_UNSPECIFIED {
						want = "action"
					}
					if !errors.As(err, &fe) || fe.Field != want || !errors.Is(err, ErrInvalidArgument) {
						t.Errorf("%s: got %v, want FieldError %q", name, err, want)
					}
					fieldN++
				case !slices.Contains(expectRoles[a], r):
					if !errors.Is(err, ErrRoleNotAllowed) || errors.Is(err, ErrForbidden) {
						t.Errorf("%s: got %v, want ErrRoleNotAllowed", name, err)
					}
					roleN++
				case !wantAllowed:
					if !errors.Is(err, ErrForbidden) || errors.Is(err, ErrRoleNotAllowed) {
						t.Errorf("%s: got %v, want ErrForbidden", name, err)
					} else if !strings.Contains(err.Error(), fx.c.GetState().String()) {
						t.Errorf("%s: forbidden message %q does not name state %s", name, err, fx.c.GetState())
					}
					forbiddenN++
				default:
					if err != nil {
						t.Errorf("%s: unexpected error %v", name, err)
						continue
					}
					ok++
					if c.State != wantTo {
						t.Errorf("%s: state %s, want %s", name, c.State, wantTo)
					}
					if c.Version != before.Version+1 || len(c.History) != len(before.History)+1 {
						t.Errorf("%s: version %d→%d, history %d→%d", name, before.Version, c.Version, len(before.History), len(c.History))
					}
					if want := expectAfter(before, s, wantTo); !proto.Equal(c, want) {
						t.Errorf("%s: case after Apply\n got %v\nwant %v", name, c, want)
					}
					checkInvariants(t, c)
					if !proto.Equal(fx.c, before) {
						t.Errorf("%s: Apply changed the fixture through aliasing", name)
					}
					continue
				}
				if !proto.Equal(c, before) {
					t.Errorf("%s: failed Apply changed the case", name)
				}
				if b1, b2 := marshal(t, c), marshal(t, before); string(b1) != string(b2) {
					t.Errorf("%s: failed Apply changed the case bytes", name)
				}
			}
		}
	}
	for _, st := range allStates() {
		if !covered[st] {
			t.Errorf("no fixture in state %s", st)
		}
	}
	t.Logf("%d combinations: %d applied, %d forbidden by state, %d forbidden by role, %d field errors",
		ok+forbiddenN+roleN+fieldN, ok, forbiddenN, roleN, fieldN)
	if ok == 0 || forbiddenN == 0 || roleN == 0 {
		t.Fatal("degenerate coverage")
	}
}

func marshal(t *testing.T, c *pb.Case) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Every action must be applied successfully from at least one fixture.
func TestEveryActionReachable(t *testing.T) {
	for _, a := range allActions()[2:] { // skip UNSPECIFIED and REPORT
		found := false
		for _, fx := range fixtures() {
			if ok, _ := expectState(fx.c, a); ok {
				found = Apply(clone(fx.c), fullStep(a, expectRoles[a][0])) == nil
				if found {
					break
				}
			}
		}
		if !found {
			t.Errorf("%s never succeeds from any fixture", a)
		}
	}
}

// ---------------------------------------------------------------------------
// NewCase.

func reportedFields() *pb.Case {
	return &pb.Case{
		Id: "C1", Source: pb.Source_SOURCE_APP, Kind: pb.Kind_KIND_COMPONENT,
		MajorCode: "01", MinorCode: "01", GridCode: "320582110152102", ComponentId: "3205080101000001",
		Description: "missing manhole cover", Media: []string{"m.jpg"},
		Location: &pb.Location{Lat: 31.3, Lng: 120.6, Address: "Renmin Rd 1"},
		Reporter: &pb.Reporter{Name: "Li", Phone: "12345"}, Urgency: pb.Urgency_URGENCY_URGENT,
		ReportedAtNode: "node-1",
	}
}

func TestNewCaseEveryRole(t *testing.T) {
	for _, r := range allRoles() {
		c := reportedFields()
		before := clone(c)
		s := fullStep(pb.Action_ACTION_REPORT, r)
		err := NewCase(c, s)
		switch {
		case r == pb.Role_ROLE_UNSPECIFIED:
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "role" {
				t.Errorf("%s: got %v, want FieldError role", r, err)
			}
		case !slices.Contains(expectRoles[pb.Action_ACTION_REPORT], r):
			if !errors.Is(err, ErrRoleNotAllowed) {
				t.Errorf("%s: got %v, want ErrRoleNotAllowed", r, err)
			}
		default:
			if err != nil {
				t.Fatalf("%s: %v", r, err)
			}
			if c.State != sReported || c.Version != 1 || len(c.History) != 1 {
				t.Fatalf("%s: got state %s version %d history %d", r, c.State, c.Version, len(c.History))
			}
			if ms(c.ReportedAt) != s.AtUnixMs || ms(c.UpdatedAt) != s.AtUnixMs {
				t.Errorf("%s: reported_at/updated_at not stamped", r)
			}
			h := c.History[0]
			want := &pb.HistoryEntry{Action: pb.Action_ACTION_REPORT, Actor: s.Actor, Role: r, At: ts(s.AtUnixMs),
				Note: s.Note, Attachments: s.Attachments, FromState: 0, ToState: sReported, Version: 1, RequestId: s.RequestID}
			if !proto.Equal(h, want) {
				t.Errorf("%s: history %v, want %v", r, h, want)
			}
			// User fields are kept.
			c2 := clone(c)
			c2.State, c2.Version, c2.History, c2.ReportedAt, c2.UpdatedAt = 0, 0, nil, nil, nil
			if !proto.Equal(c2, before) {
				t.Errorf("%s: NewCase changed reported fields", r)
			}
			checkInvariants(t, c)
			continue
		}
		if !proto.Equal(c, before) {
			t.Errorf("%s: failed NewCase changed the case", r)
		}
	}
}

func TestNewCaseRefusals(t *testing.T) {
	leader := fullStep(pb.Action_ACTION_REPORT, rShiftLeader)

	// Already reported.
	for _, fx := range fixtures()[1:] {
		c := clone(fx.c)
		err := NewCase(c, leader)
		if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), fx.c.State.String()) {
			t.Errorf("%s: got %v, want ErrForbidden naming the state", fx.name, err)
		}
		if !proto.Equal(c, fx.c) {
			t.Errorf("%s: changed", fx.name)
		}
	}
	// Wrong action.
	s := leader
	s.Action = pb.Action_ACTION_VERIFY
	var fe *FieldError
	if err := NewCase(reportedFields(), s); !errors.As(err, &fe) || fe.Field != "action" {
		t.Errorf("NewCase(VERIFY) = %v, want FieldError action", err)
	}
	// Expected version other than 0.
	s = leader
	s.ExpectedVersion = 4
	if err := NewCase(reportedFields(), s); !errors.Is(err, ErrVersionMismatch) {
		t.Errorf("NewCase expected_version 4 = %v, want ErrVersionMismatch", err)
	}
	if err := NewCase(nil, leader); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("NewCase(nil) = %v", err)
	}
	// Workflow-owned fields in the input are reset.
	c := reportedFields()
	c.OwnerUnit, c.Pending, c.Deadline, c.ReworkCount = "x", &pb.Pending{Action: pb.Action_ACTION_REQUEST_RETURN}, ts(1), 5
	c.AllowedActions = []pb.Action{pb.Action_ACTION_CLOSE}
	if err := NewCase(c, leader); err != nil {
		t.Fatal(err)
	}
	if c.OwnerUnit != "" || c.Pending != nil || c.Deadline != nil || c.ReworkCount != 0 || c.AllowedActions != nil {
		t.Errorf("NewCase kept workflow fields: %v", c)
	}
}

// TestCheckNewCaseDecidesAsNewCase: CheckNewCase refuses exactly what
// NewCase refuses, with the same error, and never changes the case, even
// where NewCase accepts it and changes it (the leader's precheck checks
// the client's case with it, which Apply then reports).
func TestCheckNewCaseDecidesAsNewCase(t *testing.T) {
	leader := fullStep(pb.Action_ACTION_REPORT, rShiftLeader)
	type tc struct {
		name string
		c    *pb.Case
		s    Step
	}
	cases := []tc{{"accepted", reportedFields(), leader}, {"nil case", nil, leader}}
	for _, fx := range fixtures()[1:] {
		cases = append(cases, tc{"already " + fx.name, fx.c, leader})
	}
	for _, edit := range []struct {
		name string
		f    func(*Step)
	}{
		{"no action", func(s *Step) { s.Action = pb.Action_ACTION_UNSPECIFIED }},
		{"wrong action", func(s *Step) { s.Action = pb.Action_ACTION_VERIFY }},
		{"unknown action", func(s *Step) { s.Action = 999 }},
		{"no actor", func(s *Step) { s.Actor = " " }},
		{"no role", func(s *Step) { s.Role = pb.Role_ROLE_UNSPECIFIED }},
		{"unknown role", func(s *Step) { s.Role = 999 }},
		{"role may not report", func(s *Step) { s.Role = pb.Role_ROLE_HANDLING_UNIT }},
		{"not stamped", func(s *Step) { s.AtUnixMs = 0 }},
		{"expected version", func(s *Step) { s.ExpectedVersion = 4 }},
	} {
		s := leader
		edit.f(&s)
		cases = append(cases, tc{edit.name, reportedFields(), s})
	}
	refused := 0
	for _, k := range cases {
		var before *pb.Case
		if k.c != nil {
			before = clone(k.c)
		}
		checked := CheckNewCase(k.c, k.s)
		if k.c != nil && !proto.Equal(k.c, before) {
			t.Errorf("%s: CheckNewCase changed the case", k.name)
		}
		var made *pb.Case
		if k.c != nil {
			made = clone(k.c)
		}
		got := NewCase(made, k.s)
		if (checked == nil) != (got == nil) || (got != nil && checked.Error() != got.Error()) {
			t.Errorf("%s: CheckNewCase = %v, NewCase = %v", k.name, checked, got)
		}
		if got != nil {
			refused++
		} else if proto.Equal(made, before) {
			t.Errorf("%s: NewCase accepted the case and left it as it was", k.name)
		}
	}
	if refused != len(cases)-1 {
		t.Errorf("%d of %d cases refused, want all but the accepted one", refused, len(cases))
	}
}

// ---------------------------------------------------------------------------
// Scenarios.

// run applies steps in order, failing the test on any error.
type runner struct {
	t  *testing.T
	c  *pb.Case
	at int64
}

func newRunner(t *testing.T, src pb.Source) *runner {
	t.Helper()
	c := reportedFields()
	c.Source = src
	r := &runner{t: t, c: c, at: t0}
	s := Step{Action: pb.Action_ACTION_REPORT, Actor: "reporter", Role: rCitizen, AtUnixMs: r.at, RequestID: "r0"}
	if err := NewCase(r.c, s); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *runner) step(a pb.Action, role pb.Role, edit ...func(*Step)) {
	r.t.Helper()
	if err := r.try(a, role, edit...); err != nil {
		r.t.Fatalf("%s by %s from %s: %v", a, role, r.c.State, err)
	}
}

func (r *runner) try(a pb.Action, role pb.Role, edit ...func(*Step)) error {
	r.at += 10 * minute
	s := Step{Action: a, Actor: strings.ToLower(role.String()[5:]), Role: role, AtUnixMs: r.at,
		RequestID: fmt.Sprintf("r%d", r.c.Version)}
	for _, e := range edit {
		e(&s)
	}
	before := clone(r.c)
	err := Apply(r.c, s)
	if err != nil && !proto.Equal(before, r.c) {
		r.t.Fatalf("%s: failed Apply changed the case", a)
	}
	if err == nil {
		checkInvariants(r.t, r.c)
	}
	return err
}

func dispatchTo(unit string, deadline int64) func(*Step) {
	return func(s *Step) { s.Unit, s.UnitTier, s.DeadlineUnixMs = unit, pb.Tier_TIER_DISTRICT, deadline }
}

func note(n string) func(*Step) { return func(s *Step) { s.Note = n } }

func (r *runner) wantState(st pb.State) {
	r.t.Helper()
	if r.c.State != st {
		r.t.Fatalf("state %s, want %s", r.c.State, st)
	}
}

func TestHappyPath(t *testing.T) {
	r := newRunner(t, pb.Source_SOURCE_APP)
	deadline := t0 + day
	r.step(pb.Action_ACTION_VERIFY, rInspector)
	r.step(pb.Action_ACTION_FILE, rShiftLeader)
	if ms(r.c.FiledAt) != r.at {
		t.Errorf("filed_at %v", r.c.FiledAt)
	}
	r.step(pb.Action_ACTION_DISPATCH, rDispatcher, dispatchTo("unit-sanitation", deadline))
	if r.c.OwnerUnit != "unit-sanitation" || r.c.OwnerTier != pb.Tier_TIER_DISTRICT ||
		ms(r.c.DispatchedAt) != r.at || ms(r.c.Deadline) != deadline {
		t.Errorf("dispatch fields: %v", r.c)
	}
	r.step(pb.Action_ACTION_ACCEPT, rHandlingUnit)
	r.step(pb.Action_ACTION_HANDLE, rHandlingUnit, func(s *Step) {
		s.Note, s.Attachments = "garbage removed", []string{"after.jpg"}
	})
	r.step(pb.Action_ACTION_CHECK_PASS, rInspector)
	r.step(pb.Action_ACTION_CLOSE, rShiftLeader)
	r.wantState(sClosed)
	if ms(r.c.ClosedAt) != r.at || ms(r.c.UpdatedAt) != r.at {
		t.Errorf("closed_at/updated_at not stamped")
	}
	wantChain := []pb.State{sReported, sVerified, sFiled, sDispatched, sAccepted, sHandled, sChecked, sClosed}
	if len(r.c.History) != len(wantChain) || r.c.Version != uint64(len(wantChain)) {
		t.Fatalf("history %d, version %d", len(r.c.History), r.c.Version)
	}
	for i, h := range r.c.History {
		if h.ToState != wantChain[i] || h.Version != uint64(i+1) || (i > 0 && h.FromState != wantChain[i-1]) {
			t.Errorf("history[%d] = %v", i, h)
		}
	}
	if h := r.c.History[3]; h.Unit != "unit-sanitation" {
		t.Errorf("dispatch entry unit %q", h.Unit)
	}
	if h := r.c.History[5]; h.Note != "garbage removed" || !slices.Equal(h.Attachments, []string{"after.jpg"}) {
		t.Errorf("handle entry %v", h)
	}
	if a := Allowed(r.c); len(a) != 0 {
		t.Errorf("closed case allows %v", a)
	}
	if err := r.try(pb.Action_ACTION_SUPERVISE, rSupervisor); !errors.Is(err, ErrForbidden) {
		t.Errorf("supervise closed: %v", err)
	}
}

func TestTrustedSourceFilesDirectly(t *testing.T) {
	for _, src := range []pb.Source{pb.Source_SOURCE_INSPECTOR, pb.Source_SOURCE_LEADER} {
		r := newRunner(t, src)
		r.step(pb.Action_ACTION_FILE, rShiftLeader)
		r.wantState(sFiled)
	}
	r := newRunner(t, pb.Source_SOURCE_HOTLINE_12319)
	err := r.try(pb.Action_ACTION_FILE, rShiftLeader)
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "SOURCE_HOTLINE_12319 is not trusted") {
		t.Errorf("file untrusted: %v", err)
	}
}

func TestSelfHandleAndReject(t *testing.T) {
	r := newRunner(t, pb.Source_SOURCE_INSPECTOR)
	r.step(pb.Action_ACTION_SELF_HANDLE, rInspector)
	r.wantState(sClosed)
	if ms(r.c.ClosedAt) != r.at {
		t.Error("closed_at not set")
	}
	r = newRunner(t, pb.Source_SOURCE_APP)
	r.step(pb.Action_ACTION_VERIFY, rInspector)
	r.step(pb.Action_ACTION_REJECT, rShiftLeader, note("duplicate"))
	r.wantState(sNotFiled)
	if !IsTerminal(r.c.State) || len(Allowed(r.c)) != 0 {
		t.Error("NOT_FILED must be terminal")
	}
}

func TestRework(t *testing.T) {
	r := newRunner(t, pb.Source_SOURCE_INSPECTOR)
	r.step(pb.Action_ACTION_FILE, rShiftLeader)
	r.step(pb.Action_ACTION_DISPATCH, rDispatcher, dispatchTo("unit-roads", t0+day))
	for i := 1; i <= 3; i++ {
		r.step(pb.Action_ACTION_ACCEPT, rHandlingUnit)
		r.step(pb.Action_ACTION_HANDLE, rHandlingUnit)
		r.step(pb.Action_ACTION_CHECK_FAIL, rInspector, note("still dirty"))
		r.wantState(sDispatched)
		if r.c.ReworkCount != int32(i) {
			t.Fatalf("rework %d, want %d", r.c.ReworkCount, i)
		}
		if h := r.c.History[len(r.c.History)-1]; h.Unit != "unit-roads" || h.FromState != sHandled {
			t.Errorf("check-fail entry %v", h)
		}
		if r.c.OwnerUnit != "unit-roads" || ms(r.c.Deadline) != t0+day {
			t.Errorf("rework kept owner/deadline wrong: %v", r.c)
		}
	}
	// A rework with a new deadline.
	r.step(pb.Action_ACTION_ACCEPT, rHandlingUnit)
	r.step(pb.Action_ACTION_HANDLE, rHandlingUnit)
	nd := r.at + 10*minute + 2*day
	r.step(pb.Action_ACTION_CHECK_FAIL, rInspector, func(s *Step) { s.DeadlineUnixMs = nd })
	if ms(r.c.Deadline) != nd || r.c.ReworkCount != 4 {
		t.Errorf("rework deadline %v count %d", r.c.Deadline, r.c.ReworkCount)
	}
	r.step(pb.Action_ACTION_ACCEPT, rHandlingUnit)
	r.step(pb.Action_ACTION_HANDLE, rHandlingUnit)
	if err := r.try(pb.Action_ACTION_CHECK_FAIL, rInspector, func(s *Step) { s.DeadlineUnixMs = s.AtUnixMs }); !isField(err, "deadline") {
		t.Errorf("rework deadline in the past: %v", err)
	}
	r.step(pb.Action_ACTION_CHECK_PASS, rInspector)
	r.step(pb.Action_ACTION_CLOSE, rShiftLeader)
	if r.c.ReworkCount != 4 {
		t.Errorf("rework count %d", r.c.ReworkCount)
	}
}

func dispatched(t *testing.T) *runner {
	r := newRunner(t, pb.Source_SOURCE_INSPECTOR)
	r.step(pb.Action_ACTION_FILE, rShiftLeader)
	r.step(pb.Action_ACTION_DISPATCH, rDispatcher, dispatchTo("unit-parks", t0+day))
	return r
}

func TestReturnApprove(t *testing.T) {
	r := dispatched(t)
	if err := r.try(pb.Action_ACTION_REQUEST_RETURN, rHandlingUnit); !isField(err, "note") {
		t.Fatalf("return without reason: %v", err)
	}
	r.step(pb.Action_ACTION_REQUEST_RETURN, rHandlingUnit, note("not ours: road belongs to the city"))
	r.wantState(sReturnRequested)
	p := r.c.Pending
	if p.GetAction() != pb.Action_ACTION_REQUEST_RETURN || p.GetReason() != "not ours: road belongs to the city" ||
		p.GetFromState() != sDispatched || p.GetActor() != "handling_unit" || ms(p.GetAt()) != r.at {
		t.Errorf("pending %v", p)
	}
	if err := r.try(pb.Action_ACTION_ACCEPT, rHandlingUnit); !errors.Is(err, ErrForbidden) {
		t.Errorf("accept while return requested: %v", err)
	}
	r.step(pb.Action_ACTION_APPROVE_RETURN, rDispatcher)
	r.wantState(sFiled)
	if r.c.OwnerUnit != "" || r.c.OwnerTier != 0 || r.c.Deadline != nil || r.c.Pending != nil {
		t.Errorf("approve return did not clear owner/deadline/pending: %v", r.c)
	}
	r.step(pb.Action_ACTION_DISPATCH, rShiftLeader, dispatchTo("city-roads", t0+2*day))
	if r.c.OwnerUnit != "city-roads" {
		t.Errorf("re-dispatch owner %q", r.c.OwnerUnit)
	}
}

func TestReturnDeny(t *testing.T) {
	for _, from := range []pb.State{sDispatched, sAccepted} {
		r := dispatched(t)
		if from == sAccepted {
			r.step(pb.Action_ACTION_ACCEPT, rHandlingUnit)
		}
		r.step(pb.Action_ACTION_REQUEST_RETURN, rHandlingUnit, note("not ours"))
		r.step(pb.Action_ACTION_DENY_RETURN, rShiftLeader, note("it is yours: see the responsibility catalogue"))
		r.wantState(from)
		if r.c.Pending != nil || r.c.OwnerUnit != "unit-parks" || ms(r.c.Deadline) != t0+day {
			t.Errorf("deny return from %s: %v", from, r.c)
		}
		if h := r.c.History[len(r.c.History)-1]; h.FromState != sReturnRequested || h.ToState != from {
			t.Errorf("deny entry %v", h)
		}
	}
}

// TestTransferUp: 上交 hands the case to the parent tier's platform. It works
// like an approved return (back to FILED, no unit, deadline or pending
// request), needs a reason, and leaves everything else as it was.
func TestTransferUp(t *testing.T) {
	const reason = "beyond the district's powers: city trunk road"
	from := []fixture{
		{"FILED", baseCase(sFiled)},
		{"DISPATCHED", baseCase(sDispatched)},
		{"ACCEPTED", baseCase(sAccepted)},
		{"DISPATCHED/pending-extension", withPending(baseCase(sDispatched), pb.Action_ACTION_REQUEST_EXTENSION)},
		{"ACCEPTED/pending-suspend", withPending(baseCase(sAccepted), pb.Action_ACTION_REQUEST_SUSPEND)},
		{"RETURN_REQUESTED/from-DISPATCHED", returnRequested(sDispatched)},
		{"RETURN_REQUESTED/from-ACCEPTED", returnRequested(sAccepted)},
	}
	for _, fx := range from {
		for _, role := range []pb.Role{rShiftLeader, rDispatcher} {
			name := fx.name + "/" + role.String()
			c := clone(fx.c)
			s := Step{Action: pb.Action_ACTION_TRANSFER_UP, Actor: "lead-3", Role: role, Note: reason,
				Attachments: []string{"map.png"}, AtUnixMs: t0 + 3*hour, RequestID: "up-1",
				// Dispatch fields are ignored: the parent decides who handles it.
				Unit: "unit-x", UnitTier: pb.Tier_TIER_CITY, DeadlineUnixMs: t0 + 9*hour}
			if err := Apply(c, s); err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if c.State != sFiled || c.OwnerUnit != "" || c.OwnerTier != pb.Tier_TIER_UNSPECIFIED ||
				c.Deadline != nil || c.Pending != nil {
				t.Errorf("%s: state %s owner %q/%s deadline %v pending %v", name, c.State, c.OwnerUnit, c.OwnerTier, c.Deadline, c.Pending)
			}
			// Everything else is kept: stage times, counters, the reported fields.
			want := clone(fx.c)
			want.State, want.OwnerUnit, want.OwnerTier, want.Deadline, want.Pending = sFiled, "", 0, nil, nil
			want.Version, want.UpdatedAt, want.History = c.Version, c.UpdatedAt, c.History
			if !proto.Equal(c, want) {
				t.Errorf("%s: other fields changed\n got %v\nwant %v", name, c, want)
			}
			if c.Version != fx.c.Version+1 || ms(c.UpdatedAt) != s.AtUnixMs || len(c.History) != len(fx.c.History)+1 {
				t.Errorf("%s: version %d updated_at %v history %d", name, c.Version, c.UpdatedAt, len(c.History))
			}
			h := c.History[len(c.History)-1]
			wantH := &pb.HistoryEntry{Action: pb.Action_ACTION_TRANSFER_UP, Actor: "lead-3", Role: role, At: ts(s.AtUnixMs),
				Note: reason, Attachments: []string{"map.png"}, FromState: fx.c.State, ToState: sFiled,
				Version: c.Version, RequestId: "up-1"}
			if !proto.Equal(h, wantH) {
				t.Errorf("%s: history %v, want %v", name, h, wantH)
			}
			// The parent can dispatch it again (and hand it further up).
			if a := Allowed(c); !slices.Contains(a, pb.Action_ACTION_DISPATCH) || !slices.Contains(a, pb.Action_ACTION_TRANSFER_UP) {
				t.Errorf("%s: allowed after transfer up %v", name, a)
			}
			checkInvariants(t, c)
		}
	}

	// Refused from every other state, naming the state and where it may start.
	for _, fx := range []fixture{
		{"UNREPORTED", baseCase(pb.State_STATE_UNSPECIFIED)},
		{"REPORTED", baseCase(sReported)},
		{"REPORTED/inspector", withSource(baseCase(sReported), pb.Source_SOURCE_INSPECTOR)},
		{"VERIFIED", baseCase(sVerified)},
		{"HANDLED", baseCase(sHandled)},
		{"CHECKED", baseCase(sChecked)},
		{"SUSPENDED", suspended(sAccepted)},
		{"NOT_FILED", baseCase(sNotFiled)},
		{"CLOSED", baseCase(sClosed)},
		{"VOIDED", baseCase(sVoided)},
	} {
		c := clone(fx.c)
		err := Apply(c, fullStep(pb.Action_ACTION_TRANSFER_UP, rShiftLeader))
		if !errors.Is(err, ErrForbidden) {
			t.Errorf("%s: got %v, want ErrForbidden", fx.name, err)
			continue
		}
		for _, w := range []string{
			" is " + fx.c.State.String() + ";",
			"ACTION_TRANSFER_UP is allowed only from STATE_FILED or STATE_DISPATCHED or STATE_ACCEPTED or STATE_RETURN_REQUESTED",
		} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", fx.name, err, w)
			}
		}
		if !proto.Equal(c, fx.c) {
			t.Errorf("%s: refused transfer up changed the case", fx.name)
		}
		if slices.Contains(Allowed(fx.c), pb.Action_ACTION_TRANSFER_UP) {
			t.Errorf("%s: Allowed offers transfer up", fx.name)
		}
	}

	// Only the shift leader and the dispatcher hand a case up.
	for _, role := range []pb.Role{rInspector, rIntakeClerk, rCitizen, rSystem, rHandlingUnit, rSupervisor} {
		c := baseCase(sDispatched)
		err := Apply(c, fullStep(pb.Action_ACTION_TRANSFER_UP, role))
		if !errors.Is(err, ErrRoleNotAllowed) || !strings.Contains(err.Error(), "allowed roles: ROLE_SHIFT_LEADER, ROLE_DISPATCHER") {
			t.Errorf("%s: got %v, want ErrRoleNotAllowed naming the roles", role, err)
		}
		if !proto.Equal(c, baseCase(sDispatched)) {
			t.Errorf("%s: refused transfer up changed the case", role)
		}
	}
	if got := Roles(pb.Action_ACTION_TRANSFER_UP); !slices.Equal(got, []pb.Role{rShiftLeader, rDispatcher}) {
		t.Errorf("Roles(TRANSFER_UP) = %v", got)
	}

	// The reason is required, with the field named; nothing changes.
	for _, n := range []string{"", "   ", "\t\n"} {
		c := returnRequested(sAccepted)
		s := fullStep(pb.Action_ACTION_TRANSFER_UP, rDispatcher)
		s.Note = n
		err := Apply(c, s)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "note" || !errors.Is(err, ErrInvalidArgument) ||
			!strings.Contains(fe.Reason, "ACTION_TRANSFER_UP") {
			t.Errorf("note %q: got %v, want FieldError note naming the action", n, err)
		}
		if !proto.Equal(c, returnRequested(sAccepted)) {
			t.Errorf("note %q: refused transfer up changed the case", n)
		}
	}
}

func TestTransferUpScenario(t *testing.T) {
	r := dispatched(t)
	r.step(pb.Action_ACTION_ACCEPT, rHandlingUnit)
	r.step(pb.Action_ACTION_REQUEST_RETURN, rHandlingUnit, note("not ours"))
	r.step(pb.Action_ACTION_TRANSFER_UP, rShiftLeader, note("city trunk road: city platform decides"))
	r.wantState(sFiled)
	if r.c.OwnerUnit != "" || r.c.Deadline != nil || r.c.Pending != nil {
		t.Fatalf("after transfer up: %v", r.c)
	}
	if h := r.c.History[len(r.c.History)-1]; h.FromState != sReturnRequested || h.Note != "city trunk road: city platform decides" {
		t.Errorf("transfer up entry %v", h)
	}
	// A return can no longer be decided: nothing is pending.
	if err := r.try(pb.Action_ACTION_DENY_RETURN, rShiftLeader); !errors.Is(err, ErrForbidden) {
		t.Errorf("deny return after transfer up: %v", err)
	}
	r.step(pb.Action_ACTION_DISPATCH, rDispatcher, dispatchTo("city-roads", r.at+10*minute+day))
	r.step(pb.Action_ACTION_ACCEPT, rHandlingUnit)
	r.step(pb.Action_ACTION_HANDLE, rHandlingUnit)
	if err := r.try(pb.Action_ACTION_TRANSFER_UP, rShiftLeader, note("too late")); !errors.Is(err, ErrForbidden) ||
		!strings.Contains(err.Error(), "is STATE_HANDLED") {
		t.Errorf("transfer up from HANDLED: %v", err)
	}
	r.step(pb.Action_ACTION_CHECK_PASS, rInspector)
	r.step(pb.Action_ACTION_CLOSE, rShiftLeader)
	r.wantState(sClosed)
}

func TestExtension(t *testing.T) {
	r := dispatched(t)
	r.step(pb.Action_ACTION_ACCEPT, rHandlingUnit)
	if err := r.try(pb.Action_ACTION_REQUEST_EXTENSION, rHandlingUnit); !isField(err, "extension_minutes") {
		t.Fatalf("extension without minutes: %v", err)
	}
	r.step(pb.Action_ACTION_REQUEST_EXTENSION, rHandlingUnit, func(s *Step) { s.ExtensionMinutes = 90; s.Note = "rain" })
	r.wantState(sAccepted)
	if r.c.Pending.GetExtensionMinutes() != 90 || r.c.Pending.GetFromState() != sAccepted {
		t.Fatalf("pending %v", r.c.Pending)
	}
	// A pending request blocks further requests.
	for _, a := range []pb.Action{pb.Action_ACTION_REQUEST_EXTENSION, pb.Action_ACTION_REQUEST_SUSPEND, pb.Action_ACTION_REQUEST_RETURN} {
		err := r.try(a, rHandlingUnit, func(s *Step) { s.ExtensionMinutes = 30; s.Note = "x" })
		if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "pending ACTION_REQUEST_EXTENSION") {
			t.Errorf("%s while extension pending: %v", a, err)
		}
	}
	// Suspension decisions do not apply to an extension request.
	if err := r.try(pb.Action_ACTION_APPROVE_SUSPEND, rShiftLeader); !errors.Is(err, ErrForbidden) ||
		!strings.Contains(err.Error(), "the pending request is ACTION_REQUEST_EXTENSION") {
		t.Errorf("approve suspend on extension: %v", err)
	}
	r.step(pb.Action_ACTION_APPROVE_EXTENSION, rDispatcher)
	if ms(r.c.Deadline) != t0+day+90*minute || r.c.ExtensionCount != 1 || r.c.Pending != nil {
		t.Errorf("approve extension: deadline %v count %d pending %v", r.c.Deadline, r.c.ExtensionCount, r.c.Pending)
	}
	r.wantState(sAccepted)
	// Deny leaves the deadline.
	r.step(pb.Action_ACTION_REQUEST_EXTENSION, rHandlingUnit, func(s *Step) { s.ExtensionMinutes = 600 })
	r.step(pb.Action_ACTION_DENY_EXTENSION, rShiftLeader)
	if ms(r.c.Deadline) != t0+day+90*minute || r.c.ExtensionCount != 1 || r.c.Pending != nil {
		t.Errorf("deny extension changed deadline/count")
	}
	if err := r.try(pb.Action_ACTION_APPROVE_EXTENSION, rDispatcher); !errors.Is(err, ErrForbidden) ||
		!strings.Contains(err.Error(), "no ACTION_REQUEST_EXTENSION is pending") {
		t.Errorf("approve without request: %v", err)
	}
	// A pending extension lapses when the unit hands the work in.
	r.step(pb.Action_ACTION_REQUEST_EXTENSION, rHandlingUnit, func(s *Step) { s.ExtensionMinutes = 60 })
	r.step(pb.Action_ACTION_HANDLE, rHandlingUnit)
	if r.c.Pending != nil {
		t.Errorf("handle kept pending %v", r.c.Pending)
	}
}

func TestExtensionFromDispatchedThenAccept(t *testing.T) {
	r := dispatched(t)
	r.step(pb.Action_ACTION_REQUEST_EXTENSION, rHandlingUnit, func(s *Step) { s.ExtensionMinutes = 45 })
	r.step(pb.Action_ACTION_ACCEPT, rHandlingUnit) // accepting keeps the request pending
	r.step(pb.Action_ACTION_APPROVE_EXTENSION, rShiftLeader)
	if ms(r.c.Deadline) != t0+day+45*minute {
		t.Errorf("deadline %v", r.c.Deadline)
	}
}

func TestSuspendResume(t *testing.T) {
	for _, from := range []pb.State{sDispatched, sAccepted} {
		r := dispatched(t)
		if from == sAccepted {
			r.step(pb.Action_ACTION_ACCEPT, rHandlingUnit)
		}
		r.step(pb.Action_ACTION_REQUEST_SUSPEND, rHandlingUnit, note("needs dry season"))
		if err := r.try(pb.Action_ACTION_APPROVE_SUSPEND, rDispatcher); !errors.Is(err, ErrRoleNotAllowed) ||
			!strings.Contains(err.Error(), "ROLE_SHIFT_LEADER") {
			t.Errorf("dispatcher approving suspend: %v", err)
		}
		r.step(pb.Action_ACTION_APPROVE_SUSPEND, rShiftLeader)
		r.wantState(sSuspended)
		suspendedAt := r.at
		if r.c.SuspendedFrom != from || ms(r.c.SuspendedAt) != suspendedAt || r.c.Pending != nil {
			t.Fatalf("approve suspend: %v", r.c)
		}
		r.step(pb.Action_ACTION_SUPERVISE, rSupervisor)
		r.wantState(sSuspended)
		if err := r.try(pb.Action_ACTION_HANDLE, rHandlingUnit); !errors.Is(err, ErrForbidden) {
			t.Errorf("handle while suspended: %v", err)
		}
		r.at += 30 * day
		r.step(pb.Action_ACTION_RESUME, rShiftLeader)
		r.wantState(from)
		spent := r.at - suspendedAt
		if ms(r.c.Deadline) != t0+day+spent {
			t.Errorf("resume deadline %d, want %d (+%d)", ms(r.c.Deadline), t0+day+spent, spent)
		}
		if r.c.SuspendedFrom != 0 || r.c.SuspendedAt != nil {
			t.Errorf("resume did not clear suspension fields")
		}
	}
	// Deny suspension.
	r := dispatched(t)
	r.step(pb.Action_ACTION_REQUEST_SUSPEND, rHandlingUnit)
	r.step(pb.Action_ACTION_DENY_SUSPEND, rShiftLeader)
	r.wantState(sDispatched)
	if r.c.Pending != nil {
		t.Error("deny suspend kept pending")
	}
}

func TestResumeClockBackwards(t *testing.T) {
	c := suspended(sAccepted) // suspended_at t0+20m, deadline t0+1d
	s := fullStep(pb.Action_ACTION_RESUME, rShiftLeader)
	s.AtUnixMs = t0 + 10*minute // before suspended_at: leader clock stepped back
	if err := Apply(c, s); err != nil {
		t.Fatal(err)
	}
	if ms(c.Deadline) != t0+day {
		t.Errorf("deadline moved earlier or later: %d", ms(c.Deadline)-(t0+day))
	}
}

func TestVoidAndSupervise(t *testing.T) {
	for _, fx := range fixtures() {
		open := IsOpen(fx.c.State)
		c := clone(fx.c)
		err := Apply(c, fullStep(pb.Action_ACTION_SUPERVISE, rSupervisor))
		if open != (err == nil) {
			t.Errorf("%s: supervise err %v", fx.name, err)
		}
		if err == nil && (c.SuperviseCount != fx.c.SuperviseCount+1 || c.State != fx.c.State) {
			t.Errorf("%s: supervise count %d state %s", fx.name, c.SuperviseCount, c.State)
		}
		c = clone(fx.c)
		err = Apply(c, fullStep(pb.Action_ACTION_VOID, rShiftLeader))
		if open != (err == nil) {
			t.Errorf("%s: void err %v", fx.name, err)
		}
		if err == nil && (c.State != sVoided || c.Pending != nil || len(Allowed(c)) != 0) {
			t.Errorf("%s: void gave %v", fx.name, c)
		}
	}
}

// ---------------------------------------------------------------------------
// Errors and messages.

func TestForbiddenMessage(t *testing.T) {
	c := baseCase(sReported)
	err := Apply(clone(c), fullStep(pb.Action_ACTION_DISPATCH, rDispatcher))
	if !errors.Is(err, ErrForbidden) {
		t.Fatalf("got %v", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"case " + c.Id, "is STATE_REPORTED", "ACTION_DISPATCH is allowed only from STATE_FILED",
		"allowed now: ACTION_VERIFY, ACTION_REJECT, ACTION_SELF_HANDLE, ACTION_VOID, ACTION_SUPERVISE",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	// Every forbidden error names the state and every action allowed now.
	for _, fx := range fixtures() {
		allowed := Allowed(fx.c)
		for _, a := range allActions()[1:] {
			if slices.Contains(allowed, a) {
				continue
			}
			err := Apply(clone(fx.c), fullStep(a, expectRoles[a][0]))
			if !errors.Is(err, ErrForbidden) {
				t.Errorf("%s/%s: %v", fx.name, a, err)
				continue
			}
			msg := err.Error()
			if !strings.Contains(msg, " is "+fx.c.State.String()+";") {
				t.Errorf("%s/%s: %q does not name state", fx.name, a, msg)
			}
			_, now, _ := strings.Cut(msg, "allowed now: ")
			for _, b := range allowed {
				if !strings.Contains(now, b.String()) {
					t.Errorf("%s/%s: %q does not list %s", fx.name, a, msg, b)
				}
			}
			if len(allowed) == 0 && !strings.HasPrefix(now, "none") {
				t.Errorf("%s/%s: %q", fx.name, a, msg)
			}
		}
	}
	// Terminal and unreported cases say why nothing is allowed.
	err = Apply(baseCase(sClosed), fullStep(pb.Action_ACTION_VOID, rShiftLeader))
	if !strings.Contains(err.Error(), "allowed now: none (STATE_CLOSED is terminal)") {
		t.Errorf("closed: %v", err)
	}
	err = Apply(baseCase(0), fullStep(pb.Action_ACTION_VERIFY, rInspector))
	if !strings.Contains(err.Error(), "has not been reported") {
		t.Errorf("unreported: %v", err)
	}
	err = Apply(baseCase(sFiled), fullStep(pb.Action_ACTION_REPORT, rInspector))
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "creates the case") {
		t.Errorf("report on existing: %v", err)
	}
	err = Apply(withPending(baseCase(sDispatched), pb.Action_ACTION_REQUEST_SUSPEND), fullStep(pb.Action_ACTION_REQUEST_EXTENSION, rHandlingUnit))
	if !strings.Contains(err.Error(), "a pending ACTION_REQUEST_SUSPEND by unit-person must be decided first") {
		t.Errorf("pending: %v", err)
	}
}

func TestRoleMessage(t *testing.T) {
	err := Apply(baseCase(sFiled), fullStep(pb.Action_ACTION_DISPATCH, rCitizen))
	if !errors.Is(err, ErrRoleNotAllowed) {
		t.Fatalf("got %v", err)
	}
	for _, want := range []string{"ROLE_CITIZEN may not take ACTION_DISPATCH", "allowed roles: ROLE_SHIFT_LEADER, ROLE_DISPATCHER"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
}

func isField(err error, field string) bool {
	var fe *FieldError
	return errors.As(err, &fe) && fe.Field == field && errors.Is(err, ErrInvalidArgument)
}

func TestFieldErrors(t *testing.T) {
	filed := baseCase(sFiled)
	accepted := baseCase(sAccepted)
	cases := []struct {
		name  string
		c     *pb.Case
		edit  func(*Step)
		a     pb.Action
		r     pb.Role
		field string
	}{
		{"dispatch no unit", filed, func(s *Step) { s.Unit = "" }, pb.Action_ACTION_DISPATCH, rDispatcher, "unit"},
		{"dispatch blank unit", filed, func(s *Step) { s.Unit = "  " }, pb.Action_ACTION_DISPATCH, rDispatcher, "unit"},
		{"dispatch no deadline", filed, func(s *Step) { s.DeadlineUnixMs = 0 }, pb.Action_ACTION_DISPATCH, rDispatcher, "deadline"},
		{"dispatch negative deadline", filed, func(s *Step) { s.DeadlineUnixMs = -5 }, pb.Action_ACTION_DISPATCH, rDispatcher, "deadline"},
		{"dispatch deadline not after step", filed, func(s *Step) { s.DeadlineUnixMs = s.AtUnixMs }, pb.Action_ACTION_DISPATCH, rDispatcher, "deadline"},
		{"dispatch unknown tier", filed, func(s *Step) { s.UnitTier = 99 }, pb.Action_ACTION_DISPATCH, rDispatcher, "unit_tier"},
		{"extension zero", accepted, func(s *Step) { s.ExtensionMinutes = 0 }, pb.Action_ACTION_REQUEST_EXTENSION, rHandlingUnit, "extension_minutes"},
		{"extension negative", accepted, func(s *Step) { s.ExtensionMinutes = -30 }, pb.Action_ACTION_REQUEST_EXTENSION, rHandlingUnit, "extension_minutes"},
		{"extension too long", accepted, func(s *Step) { s.ExtensionMinutes = MaxExtensionMinutes + 1 }, pb.Action_ACTION_REQUEST_EXTENSION, rHandlingUnit, "extension_minutes"},
		{"return no reason", accepted, func(s *Step) { s.Note = " " }, pb.Action_ACTION_REQUEST_RETURN, rHandlingUnit, "note"},
		{"transfer up no reason", accepted, func(s *Step) { s.Note = "" }, pb.Action_ACTION_TRANSFER_UP, rShiftLeader, "note"},
		{"transfer up blank reason", filed, func(s *Step) { s.Note = "\n " }, pb.Action_ACTION_TRANSFER_UP, rDispatcher, "note"},
		{"reassign no unit", accepted, func(s *Step) { s.Unit = " " }, pb.Action_ACTION_REASSIGN, rDispatcher, "unit"},
		{"reassign no deadline", accepted, func(s *Step) { s.DeadlineUnixMs = 0 }, pb.Action_ACTION_REASSIGN, rDispatcher, "deadline"},
		{"reassign deadline not after step", accepted, func(s *Step) { s.DeadlineUnixMs = s.AtUnixMs - 1 }, pb.Action_ACTION_REASSIGN, rShiftLeader, "deadline"},
		{"reassign unknown tier", accepted, func(s *Step) { s.UnitTier = 99 }, pb.Action_ACTION_REASSIGN, rDispatcher, "unit_tier"},
		{"reassign no reason", accepted, func(s *Step) { s.Note = "" }, pb.Action_ACTION_REASSIGN, rDispatcher, "note"},
		{"reassign same unit", accepted, func(s *Step) { s.Unit = "unit-sanitation" }, pb.Action_ACTION_REASSIGN, rDispatcher, "unit"},
		{"refer review no reason", accepted, func(s *Step) { s.Note = " " }, pb.Action_ACTION_REFER_REVIEW, rDispatcher, "note"},
		{"decide owner no unit", filed, func(s *Step) { s.Unit = "" }, pb.Action_ACTION_DECIDE_OWNER, rShiftLeader, "unit"},
		{"decide owner no deadline", filed, func(s *Step) { s.DeadlineUnixMs = 0 }, pb.Action_ACTION_DECIDE_OWNER, rShiftLeader, "deadline"},
		{"decide owner deadline not after step", filed, func(s *Step) { s.DeadlineUnixMs = s.AtUnixMs }, pb.Action_ACTION_DECIDE_OWNER, rShiftLeader, "deadline"},
		{"decide owner unknown tier", filed, func(s *Step) { s.UnitTier = -1 }, pb.Action_ACTION_DECIDE_OWNER, rShiftLeader, "unit_tier"},
		{"decide owner no reason", filed, func(s *Step) { s.Note = "\t" }, pb.Action_ACTION_DECIDE_OWNER, rShiftLeader, "note"},
		{"no actor", accepted, func(s *Step) { s.Actor = "" }, pb.Action_ACTION_HANDLE, rHandlingUnit, "actor"},
		{"blank actor", accepted, func(s *Step) { s.Actor = "\t" }, pb.Action_ACTION_HANDLE, rHandlingUnit, "actor"},
		{"no role", accepted, nil, pb.Action_ACTION_HANDLE, 0, "role"},
		{"unknown role", accepted, nil, pb.Action_ACTION_HANDLE, 42, "role"},
		{"no action", accepted, nil, 0, rHandlingUnit, "action"},
		{"unknown action", accepted, nil, 99, rHandlingUnit, "action"},
		{"no time", accepted, func(s *Step) { s.AtUnixMs = 0 }, pb.Action_ACTION_HANDLE, rHandlingUnit, "at"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := fullStep(tc.a, tc.r)
			if tc.edit != nil {
				tc.edit(&s)
			}
			c := clone(tc.c)
			err := Apply(c, s)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("got %v, want FieldError %q", err, tc.field)
			}
			if err.Error() != fe.Field+": "+fe.Reason || fe.Reason == "" {
				t.Errorf("Error() = %q", err)
			}
			if !proto.Equal(c, tc.c) {
				t.Error("case changed")
			}
		})
	}
	// Fields of other actions are ignored.
	s := fullStep(pb.Action_ACTION_ACCEPT, rHandlingUnit)
	s.Unit, s.DeadlineUnixMs, s.ExtensionMinutes = "", 0, 0
	if err := Apply(baseCase(sDispatched), s); err != nil {
		t.Errorf("accept with no dispatch fields: %v", err)
	}
	// FieldError wraps what it is given.
	custom := errors.New("custom")
	if fe := (&FieldError{Field: "f", Reason: "r", Err: custom}); !errors.Is(fe, custom) || errors.Is(fe, ErrInvalidArgument) || fe.Error() != "f: r" {
		t.Error("FieldError.Unwrap with explicit Err")
	}
	if err := Apply(nil, fullStep(pb.Action_ACTION_VOID, rShiftLeader)); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Apply(nil) = %v", err)
	}
}

func TestVersionCheck(t *testing.T) {
	c := baseCase(sFiled) // version 3
	for _, v := range []uint64{1, 2, 4, 100} {
		s := fullStep(pb.Action_ACTION_DISPATCH, rDispatcher)
		s.ExpectedVersion = v
		cc := clone(c)
		err := Apply(cc, s)
		if !errors.Is(err, ErrVersionMismatch) || !strings.Contains(err.Error(), "version 3") {
			t.Errorf("expected %d: %v", v, err)
		}
		if !proto.Equal(cc, c) {
			t.Error("case changed")
		}
	}
	for _, v := range []uint64{0, 3} {
		s := fullStep(pb.Action_ACTION_DISPATCH, rDispatcher)
		s.ExpectedVersion = v
		if err := Apply(clone(c), s); err != nil {
			t.Errorf("expected %d: %v", v, err)
		}
	}
}

func TestInconsistentCases(t *testing.T) {
	rr := baseCase(sReturnRequested) // no pending: broken
	c := clone(rr)
	if err := Apply(c, fullStep(pb.Action_ACTION_DENY_RETURN, rDispatcher)); !errors.Is(err, ErrInconsistent) {
		t.Errorf("deny return without pending: %v", err)
	}
	if !proto.Equal(c, rr) {
		t.Error("changed")
	}
	if err := Apply(clone(rr), fullStep(pb.Action_ACTION_APPROVE_RETURN, rDispatcher)); err != nil {
		t.Errorf("approve return still works: %v", err)
	}
	su := baseCase(sSuspended) // no suspended_from: broken
	c = clone(su)
	if err := Apply(c, fullStep(pb.Action_ACTION_RESUME, rShiftLeader)); !errors.Is(err, ErrInconsistent) {
		t.Errorf("resume without suspended_from: %v", err)
	}
	if !proto.Equal(c, su) {
		t.Error("changed")
	}
}

// ---------------------------------------------------------------------------
// Determinism, aliasing, random walks.

func TestDeterministic(t *testing.T) {
	for _, fx := range fixtures() {
		for _, a := range Allowed(fx.c) {
			s := fullStep(a, expectRoles[a][0])
			c1, c2 := clone(fx.c), clone(fx.c)
			err1, err2 := Apply(c1, s), Apply(c2, s)
			if (err1 == nil) != (err2 == nil) || !proto.Equal(c1, c2) {
				t.Errorf("%s/%s: results differ", fx.name, a)
			}
			if string(marshal(t, c1)) != string(marshal(t, c2)) {
				t.Errorf("%s/%s: bytes differ", fx.name, a)
			}
		}
	}
	w1, w2 := walk(t, 7, 30), walk(t, 7, 30)
	for i := range w1 {
		if !proto.Equal(w1[i], w2[i]) {
			t.Fatalf("walk %d differs", i)
		}
	}
}

func TestNoAliasing(t *testing.T) {
	c := baseCase(sAccepted)
	s := fullStep(pb.Action_ACTION_HANDLE, rHandlingUnit)
	if err := Apply(c, s); err != nil {
		t.Fatal(err)
	}
	s.Attachments[0] = "tampered"
	if got := c.History[len(c.History)-1].Attachments[0]; got != "photo-1.jpg" {
		t.Errorf("history aliases step attachments: %q", got)
	}
	c.UpdatedAt.Seconds++
	if h := c.History[len(c.History)-1]; ms(h.At) != s.AtUnixMs {
		t.Error("history at aliases updated_at")
	}
}

// walk runs n random lifecycles with a fixed seed. Every action Allowed
// offers must succeed for every role Roles offers; a random action outside
// Allowed must fail and change nothing.
func walk(t *testing.T, seed uint64, n int) []*pb.Case {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	sources := []pb.Source{pb.Source_SOURCE_APP, pb.Source_SOURCE_INSPECTOR, pb.Source_SOURCE_LEADER, pb.Source_SOURCE_CAMERA}
	var out []*pb.Case
	for i := range n {
		c := reportedFields()
		c.Id = fmt.Sprintf("W%d", i)
		c.Source = sources[rng.IntN(len(sources))]
		at := t0
		if err := NewCase(c, Step{Action: pb.Action_ACTION_REPORT, Actor: "a", Role: rSystem, AtUnixMs: at}); err != nil {
			t.Fatal(err)
		}
		for step := 0; step < 60 && !IsTerminal(c.State); step++ {
			at += rng.Int64N(3*day) + 1
			allowed := Allowed(c)
			// Endings (void, reject, self-handle) are rarely picked so walks
			// reach the later stages.
			var pick []pb.Action
			for _, a := range allowed {
				switch a {
				case pb.Action_ACTION_VOID, pb.Action_ACTION_REJECT, pb.Action_ACTION_SELF_HANDLE:
					if rng.IntN(10) != 0 {
						continue
					}
				}
				pick = append(pick, a)
			}
			if len(pick) == 0 {
				pick = allowed
			}
			a := pick[rng.IntN(len(pick))]
			if rng.IntN(4) == 0 {
				a = pb.Action(rng.IntN(len(pb.Action_name)-1) + 1)
			}
			roles := Roles(a)
			s := Step{
				Action: a, Actor: "x", Role: roles[rng.IntN(len(roles))], Note: "n",
				Unit: fmt.Sprintf("u%d", rng.IntN(5)), DeadlineUnixMs: at + rng.Int64N(10*day) + 1,
				ExtensionMinutes: rng.Int64N(MaxExtensionMinutes) + 1, AtUnixMs: at,
				RequestID: fmt.Sprintf("W%d-%d", i, step),
			}
			if a == pb.Action_ACTION_CHECK_FAIL && rng.IntN(2) == 0 {
				s.DeadlineUnixMs = 0
			}
			before := clone(c)
			err := Apply(c, s)
			if slices.Contains(allowed, a) && a == pb.Action_ACTION_REASSIGN && s.Unit == before.OwnerUnit {
				if !isField(err, "unit") || !proto.Equal(c, before) {
					t.Fatalf("walk %d: reassign to the same unit %s: %v", i, s.Unit, err)
				}
			} else if slices.Contains(allowed, a) {
				if err != nil {
					t.Fatalf("walk %d: allowed %s from %s failed: %v", i, a, before.State, err)
				}
				if want := expectAfter(before, s, c.State); !proto.Equal(c, want) {
					t.Fatalf("walk %d: %s gave\n%v\nwant\n%v", i, a, c, want)
				}
				checkInvariants(t, c)
			} else {
				if !errors.Is(err, ErrForbidden) || !proto.Equal(c, before) {
					t.Fatalf("walk %d: disallowed %s from %s: %v", i, a, before.State, err)
				}
			}
		}
		out = append(out, c)
	}
	return out
}

func TestRandomWalks(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 40
	}
	seen := map[pb.State]int{}
	actions := map[pb.Action]int{}
	for _, c := range walk(t, 1, n) {
		seen[c.State]++
		for _, h := range c.History {
			actions[h.Action]++
		}
	}
	for _, a := range allActions()[1:] {
		if actions[a] == 0 {
			t.Errorf("no walk took %s", a)
		}
	}
	t.Logf("%d walks end in %v", n, seen)
}

// ---------------------------------------------------------------------------
// The table itself.

func TestTable(t *testing.T) {
	rows := Transitions()
	if len(rows) != len(pb.Action_name)-1 {
		t.Fatalf("%d rows for %d actions", len(rows), len(pb.Action_name)-1)
	}
	for i, row := range rows {
		if row.Action != pb.Action(i+1) {
			t.Errorf("row %d is %s: table must be in enum order", i, row.Action)
		}
		if got, want := Roles(row.Action), expectRoles[row.Action]; !slices.Equal(got, want) {
			t.Errorf("Roles(%s) = %v, want %v", row.Action, got, want)
		}
		if row.Dest == DestState && row.To == 0 {
			t.Errorf("%s: DestState without To", row.Action)
		}
	}
	// Copies are copies.
	rows[1].Roles[0] = rCitizen
	rows[1].From[0].States[0] = sClosed
	if Roles(pb.Action_ACTION_VERIFY)[0] != rInspector || !slices.Contains(Allowed(baseCase(sReported)), pb.Action_ACTION_VERIFY) {
		t.Error("Transitions returned shared slices")
	}
	r := Roles(pb.Action_ACTION_DISPATCH)
	r[0] = rCitizen
	if Roles(pb.Action_ACTION_DISPATCH)[0] != rShiftLeader {
		t.Error("Roles returned a shared slice")
	}
	if Roles(0) != nil || Roles(99) != nil {
		t.Error("Roles of unknown action")
	}
	if Allowed(nil) != nil {
		t.Error("Allowed(nil)")
	}
	if got := Allowed(baseCase(sReported)); !slices.Equal(got, []pb.Action{
		pb.Action_ACTION_VERIFY, pb.Action_ACTION_REJECT, pb.Action_ACTION_SELF_HANDLE, pb.Action_ACTION_VOID, pb.Action_ACTION_SUPERVISE,
	}) {
		t.Errorf("Allowed(REPORTED/app) = %v", got)
	}
	if got := Allowed(baseCase(sAccepted)); !slices.Equal(got, []pb.Action{
		pb.Action_ACTION_REQUEST_RETURN, pb.Action_ACTION_HANDLE, pb.Action_ACTION_REQUEST_EXTENSION,
		pb.Action_ACTION_REQUEST_SUSPEND, pb.Action_ACTION_VOID, pb.Action_ACTION_SUPERVISE, pb.Action_ACTION_TRANSFER_UP,
		pb.Action_ACTION_REASSIGN, pb.Action_ACTION_REFER_REVIEW, pb.Action_ACTION_HAND_DOWN,
	}) {
		t.Errorf("Allowed(ACCEPTED) = %v", got)
	}
	if got := Allowed(baseCase(sFiled)); !slices.Equal(got, []pb.Action{
		pb.Action_ACTION_DISPATCH, pb.Action_ACTION_VOID, pb.Action_ACTION_SUPERVISE, pb.Action_ACTION_TRANSFER_UP,
		pb.Action_ACTION_REFER_REVIEW, pb.Action_ACTION_DECIDE_OWNER,
	}) {
		t.Errorf("Allowed(FILED) = %v", got)
	}
	if got := Allowed(returnRequested(sDispatched)); !slices.Equal(got, []pb.Action{
		pb.Action_ACTION_APPROVE_RETURN, pb.Action_ACTION_DENY_RETURN, pb.Action_ACTION_VOID, pb.Action_ACTION_SUPERVISE, pb.Action_ACTION_TRANSFER_UP,
		pb.Action_ACTION_REASSIGN, pb.Action_ACTION_REFER_REVIEW, pb.Action_ACTION_HAND_DOWN,
	}) {
		t.Errorf("Allowed(RETURN_REQUESTED) = %v", got)
	}
}

func TestTerminalOpen(t *testing.T) {
	terminal := map[pb.State]bool{sNotFiled: true, sClosed: true, sVoided: true}
	for _, st := range allStates() {
		if IsTerminal(st) != terminal[st] {
			t.Errorf("IsTerminal(%s) = %v", st, IsTerminal(st))
		}
		wantOpen := !terminal[st] && st != pb.State_STATE_UNSPECIFIED
		if IsOpen(st) != wantOpen {
			t.Errorf("IsOpen(%s) = %v", st, IsOpen(st))
		}
	}
	if IsOpen(99) || IsTerminal(99) {
		t.Error("unknown state")
	}
}
