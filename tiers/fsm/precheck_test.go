package fsm_test

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/deadline"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/store"
	"github.com/cityhub/cityhub/tiers/workflow"
)

// prechecked runs both forms of Precheck on cmd, checks that they agree and
// write nothing, then applies cmd at index and checks that Apply answers
// what Precheck said: a refusal with the same error, a replay with the
// same case, or (Precheck passed it) a change. It returns the precheck.
func prechecked(tb testing.TB, f *fsm.FSM, s *store.Store, index uint64, cmd *pb.Command) *fsm.Result {
	tb.Helper()
	before := records(tb, s, false)
	var pre *fsm.Result
	if err := s.View(func(tx *store.Tx) (err error) {
		pre, err = f.Precheck(tx, cmd, nil)
		return err
	}); err != nil {
		tb.Fatalf("precheck %d: %v", index, err)
	}
	pkg, err := fsm.Precheck(s, cmd)
	if err != nil {
		tb.Fatalf("fsm.Precheck %d: %v", index, err)
	}
	if (pre == nil) != (pkg == nil) || (pre != nil && (pre.Replayed != pkg.Replayed || errText(pre.Err) != errText(pkg.Err))) {
		tb.Fatalf("precheck %d: FSM.Precheck %+v, fsm.Precheck %+v", index, pre, pkg)
	}
	sameRecords(tb, "precheck", before, records(tb, s, false))

	got := result(tb, f.Apply(entry(index, encode(tb, cmd))))
	switch {
	case pre == nil:
		if got.Err != nil || got.Replayed {
			tb.Fatalf("apply %d: precheck passed it, Apply answered err %v, replayed %v", index, got.Err, got.Replayed)
		}
	case pre.Err != nil:
		if got.Err == nil || got.Err.Error() != pre.Err.Error() {
			tb.Fatalf("apply %d: precheck refused with %q, Apply answered %v", index, pre.Err, got.Err)
		}
		if pre.Case != nil || pre.Replayed {
			tb.Fatalf("precheck %d: refusal with case %v, replayed %v", index, pre.Case, pre.Replayed)
		}
	case pre.Replayed:
		if !got.Replayed || !proto.Equal(got.Case, pre.Case) {
			tb.Fatalf("apply %d: precheck replayed %v, Apply answered replayed %v, %v", index, pre.Case, got.Replayed, got.Case)
		}
	default:
		tb.Fatalf("precheck %d: result without error or replay: %+v", index, pre)
	}
	return pre
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// wantRefused fails unless a precheck refused with want.
func wantRefused(tb testing.TB, what string, pre *fsm.Result, want error) {
	tb.Helper()
	if pre == nil || !errors.Is(pre.Err, want) {
		tb.Fatalf("%s: precheck %+v, want a refusal with %v", what, pre, want)
	}
}

// TestPrecheckDecidesAsApply checks every kind of answer Precheck gives
// against what Apply then does with the same command on the same state.
func TestPrecheckDecidesAsApply(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	idx := uint64(0)
	next := func() uint64 { idx++; return idx }

	// Reports: a new one passes, a role that may not report is refused,
	// the same request again is a replay, the same id with another body
	// is refused.
	if pre := prechecked(t, f, s, next(), report("r1", stamp, "garbage")); pre != nil {
		t.Fatalf("new report: precheck %+v, want nil", pre)
	}
	id := caseID(1)
	bad := report("r-bad-role", stamp, "x")
	bad.GetReport().Role = pb.Role_ROLE_HANDLING_UNIT
	wantRefused(t, "report by a handling unit", prechecked(t, f, s, next(), bad), workflow.ErrRoleNotAllowed)
	again := report("r1", stamp+5*minute, "garbage") // a retry through a later leader
	again.GetReport().IdDate = "20010910"
	if pre := prechecked(t, f, s, next(), again); pre == nil || !pre.Replayed || pre.Case.GetId() != id {
		t.Fatalf("report replay: precheck %+v", pre)
	}
	wantRefused(t, "report id reused", prechecked(t, f, s, next(), report("r1", stamp, "another body")), fsm.ErrRequestReused)

	// Actions.
	file := func(rid string, mod func(*pb.CaseAction)) *pb.Command {
		a := &pb.CaseAction{CaseId: id, Action: pb.Action_ACTION_FILE, Role: pb.Role_ROLE_SHIFT_LEADER}
		if mod != nil {
			mod(a)
		}
		return act(rid, stamp+minute, a)
	}
	for _, tc := range []struct {
		name string
		mod  func(*pb.CaseAction)
		want error
	}{
		{"unknown case", func(a *pb.CaseAction) { a.CaseId = caseID(99) }, store.ErrNotFound},
		{"wrong role", func(a *pb.CaseAction) { a.Role = pb.Role_ROLE_CITIZEN }, workflow.ErrRoleNotAllowed},
		{"not from this state", func(a *pb.CaseAction) { a.Action = pb.Action_ACTION_CLOSE }, workflow.ErrForbidden},
		{"expected version", func(a *pb.CaseAction) { a.ExpectedVersion = 7 }, workflow.ErrVersionMismatch},
		{"decide owner outside review", func(a *pb.CaseAction) {
			a.Action, a.Unit, a.DeadlineUnixMs = pb.Action_ACTION_DECIDE_OWNER, "u1", stamp+100*minute
		}, fsm.ErrNotInReview},
		{"stale deadline stamp", func(a *pb.CaseAction) { a.HasBaseDeadline, a.BaseDeadlineUnixMs = true, stamp }, deadline.ErrStale},
	} {
		wantRefused(t, tc.name, prechecked(t, f, s, next(), file("a-"+tc.name, tc.mod)), tc.want)
	}
	if pre := prechecked(t, f, s, next(), file("file", func(a *pb.CaseAction) { a.ExpectedVersion = 1 })); pre != nil {
		t.Fatalf("allowed file: precheck %+v, want nil", pre)
	}
	if pre := prechecked(t, f, s, next(), file("file", func(a *pb.CaseAction) { a.ExpectedVersion = 1 })); pre == nil || !pre.Replayed || pre.Case.GetVersion() != 2 {
		t.Fatalf("file replay: precheck %+v", pre)
	}
	wantRefused(t, "action id reused", prechecked(t, f, s, next(), file("file", func(a *pb.CaseAction) { a.Note = "other" })), fsm.ErrRequestReused)
	// A case in the joint review queue waits for the shift leader.
	prechecked(t, f, s, next(), act("refer", stamp+2*minute, &pb.CaseAction{CaseId: id, Action: pb.Action_ACTION_REFER_REVIEW, Role: pb.Role_ROLE_SHIFT_LEADER, Note: "disputed"}))
	wantRefused(t, "dispatch in review", prechecked(t, f, s, next(), act("disp", stamp+3*minute, &pb.CaseAction{
		CaseId: id, Action: pb.Action_ACTION_DISPATCH, Role: pb.Role_ROLE_DISPATCHER, Unit: "u1", DeadlineUnixMs: stamp + 100*minute,
	})), fsm.ErrInReview)

	// Commands Precheck does not decide from state pass (a new id).
	if pre := prechecked(t, f, s, next(), registerNode("n2")); pre != nil {
		t.Fatalf("register node: precheck %+v, want nil", pre)
	}
}

// TestPrecheckFederation: the holder and routing checks, with the
// topology Apply published and with the one read from the store.
func TestPrecheckFederation(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	mustApply(t, f, 1, fedTopology("d-110105"))
	mustApply(t, f, 2, report("r1", stamp, "garbage"))
	mustApply(t, f, 3, report("r2", stamp, "lamp"))
	mustApply(t, f, 4, act("file-2", stamp+minute, &pb.CaseAction{CaseId: caseID(2), Action: pb.Action_ACTION_FILE, Role: pb.Role_ROLE_SHIFT_LEADER}))
	fileAndDispatch(t, f, 5, caseID(1), "c-grid") // held by the community now

	pre := prechecked(t, f, s, 7, act("acc", stamp+3*minute, &pb.CaseAction{CaseId: caseID(1), Action: pb.Action_ACTION_ACCEPT, Role: pb.Role_ROLE_HANDLING_UNIT}))
	wantRefused(t, "action on a case held below", pre, fsm.ErrNotHolder)
	var nh *fsm.NotHolderError
	if !errors.As(pre.Err, &nh) || nh.Holder != "c-110105001001" {
		t.Fatalf("refusal %v does not name the holder", pre.Err)
	}
	wantRefused(t, "dispatch above", prechecked(t, f, s, 8, act("up", stamp+3*minute, &pb.CaseAction{
		CaseId: caseID(2), Action: pb.Action_ACTION_DISPATCH, Role: pb.Role_ROLE_DISPATCHER, Unit: "city-water", DeadlineUnixMs: stamp + 100*minute,
	})), fsm.ErrUnitNotBelow)

	// A fresh FSM over the same store has not loaded the topology yet:
	// Precheck reads it from the store.
	f2 := newFSM(t, s)
	var res *fsm.Result
	if err := s.View(func(tx *store.Tx) (err error) {
		res, err = f2.Precheck(tx, act("acc2", stamp+4*minute, &pb.CaseAction{CaseId: caseID(1), Action: pb.Action_ACTION_ACCEPT, Role: pb.Role_ROLE_HANDLING_UNIT}), nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, "before Apply loaded the topology", res, fsm.ErrNotHolder)
}

// TestPrecheckUsesTheCaseGiven: the leader hands Precheck the copy its
// stamper read; Precheck decides on it and reads no other.
func TestPrecheckUsesTheCaseGiven(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	id := mustApply(t, f, 1, report("r1", stamp, "x")).Case.Id
	stored, _ := s.GetCase(id)
	filed := proto.Clone(stored).(*pb.Case)
	filed.State = pb.State_STATE_FILED
	reads := 0
	get := func(cid string) (*pb.Case, error) {
		reads++
		if cid != id {
			t.Fatalf("read %q", cid)
		}
		return filed, nil
	}
	var res *fsm.Result
	cmd := act("f", stamp+minute, &pb.CaseAction{CaseId: id, Action: pb.Action_ACTION_FILE, Role: pb.Role_ROLE_SHIFT_LEADER})
	if err := s.View(func(tx *store.Tx) (err error) {
		res, err = f.Precheck(tx, cmd, get)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, "file on the given (filed) copy", res, workflow.ErrForbidden)
	if reads != 1 || filed.State != pb.State_STATE_FILED || filed.Version != stored.Version {
		t.Fatalf("reads %d, given case changed to %s v%d", reads, filed.State, filed.Version)
	}
}

// TestAppliedTerm: the term of the last applied entry, kept across New.
func TestAppliedTerm(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	mustApply(t, f, 120, report("r1", stamp, "x")) // entry() puts index 120 in term 3
	if got := f.AppliedTerm(); got != 3 {
		t.Fatalf("AppliedTerm = %d, want 3", got)
	}
	if got := newFSM(t, s).AppliedTerm(); got != 3 {
		t.Fatalf("AppliedTerm after New = %d, want 3", got)
	}
}
