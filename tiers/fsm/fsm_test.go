package fsm_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/store"
	"github.com/cityhub/cityhub/tiers/workflow"
)

func TestReportAllocatesSequentialIDs(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	if f.AppliedIndex() != 0 {
		t.Fatalf("fresh FSM at index %d", f.AppliedIndex())
	}

	r1 := mustApply(t, f, 1, report("req-1", stamp, "first"))
	r2 := mustApply(t, f, 2, report("req-2", stamp+5*minute, "second"))
	if r1.Case.Id != "110105-20010909-000001" || r2.Case.Id != "110105-20010909-000002" {
		t.Fatalf("ids %q, %q; want ...-000001, ...-000002", r1.Case.Id, r2.Case.Id)
	}
	if r1.Replayed || r2.Replayed {
		t.Fatal("first applies reported as replayed")
	}
	for _, tc := range []struct {
		r    *fsm.Result
		at   int64
		req  string
		desc string
	}{{r1, stamp, "req-1", "first"}, {r2, stamp + 5*minute, "req-2", "second"}} {
		c := tc.r.Case
		if c.State != pb.State_STATE_REPORTED || c.Version != 1 || c.Description != tc.desc {
			t.Fatalf("%s: state %s version %d description %q", c.Id, c.State, c.Version, c.Description)
		}
		// Every time comes from the command's stamp, never the clock.
		if got := c.ReportedAt.AsTime().UnixMilli(); got != tc.at {
			t.Fatalf("%s: reported_at %d, want the stamp %d", c.Id, got, tc.at)
		}
		if got := c.UpdatedAt.AsTime().UnixMilli(); got != tc.at {
			t.Fatalf("%s: updated_at %d, want the stamp %d", c.Id, got, tc.at)
		}
		if len(c.History) != 1 {
			t.Fatalf("%s: %d history entries", c.Id, len(c.History))
		}
		h := c.History[0]
		if h.At.AsTime().UnixMilli() != tc.at || h.Action != pb.Action_ACTION_REPORT || h.Actor != "insp-1" ||
			h.Role != pb.Role_ROLE_INSPECTOR || h.RequestId != tc.req || h.ToState != pb.State_STATE_REPORTED || h.Version != 1 {
			t.Fatalf("%s: history entry %v", c.Id, h)
		}
		stored, err := s.GetCase(c.Id)
		if err != nil || !proto.Equal(stored, c) {
			t.Fatalf("%s: stored %v, %v; result %v", c.Id, stored, err, c)
		}
		rec, err := getRequest(t, s, tc.req)
		if err != nil {
			t.Fatalf("request %s: %v", tc.req, err)
		}
		if rec.CaseId != c.Id || rec.Version != 1 || len(rec.Fingerprint) != 32 {
			t.Fatalf("request %s: %v", tc.req, rec)
		}
	}
	if rec, _ := getRequest(t, s, "req-2"); rec.LogIndex != 2 {
		t.Fatalf("request record log index %d, want 2", rec.LogIndex)
	}

	// Sequences are per prefix and date.
	other := report("req-3", stamp, "other date")
	other.GetReport().IdDate = "20010910"
	if r := mustApply(t, f, 3, other); r.Case.Id != "110105-20010910-000001" {
		t.Fatalf("new date: id %q", r.Case.Id)
	}
	other = report("req-4", stamp, "other prefix")
	other.GetReport().IdPrefix = "120101"
	if r := mustApply(t, f, 4, other); r.Case.Id != "120101-20010909-000001" {
		t.Fatalf("new prefix: id %q", r.Case.Id)
	}
	// A report without request id still gets the next number (and no record).
	if r := mustApply(t, f, 5, report("", stamp, "no request id")); r.Case.Id != caseID(3) {
		t.Fatalf("third report of the day: id %q", r.Case.Id)
	}
	// A client-chosen id is ignored.
	chosen := report("req-6", stamp, "chosen id")
	chosen.GetReport().Case.Id = "mine"
	if r := mustApply(t, f, 6, chosen); r.Case.Id != caseID(4) {
		t.Fatalf("client id kept: %q", r.Case.Id)
	}
	if _, err := s.GetCase("mine"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("case stored under the client's id: %v", err)
	}
	checkApplied(t, f, s, 6, 1)
	counts, err := s.CountByState()
	if err != nil || counts[pb.State_STATE_REPORTED] != 6 {
		t.Fatalf("counts %v, %v; want 6 reported", counts, err)
	}
}

func TestReportRefusalsWriteNothing(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	mustApply(t, f, 1, report("req-ok", stamp, "ok"))
	before := records(t, s, true)

	mod := func(fn func(c *pb.Command)) *pb.Command {
		c := report("req-bad", stamp, "bad")
		fn(c)
		return c
	}
	idx := uint64(2)
	for _, tc := range []struct {
		name string
		cmd  *pb.Command
		want error
	}{
		{"no case", mod(func(c *pb.Command) { c.GetReport().Case = nil }), fsm.ErrBadCommand},
		{"no prefix", mod(func(c *pb.Command) { c.GetReport().IdPrefix = "" }), fsm.ErrBadCommand},
		{"no date", mod(func(c *pb.Command) { c.GetReport().IdDate = "" }), fsm.ErrBadCommand},
		{"slash in prefix", mod(func(c *pb.Command) { c.GetReport().IdPrefix = "11/05" }), fsm.ErrBadCommand},
		{"NUL in date", mod(func(c *pb.Command) { c.GetReport().IdDate = "2001\x000909" }), fsm.ErrBadCommand},
		{"letters in prefix", mod(func(c *pb.Command) { c.GetReport().IdPrefix = "abc" }), fsm.ErrBadCommand},
		{"prefix too long", mod(func(c *pb.Command) { c.GetReport().IdPrefix = "123456789012345678901234567890123" }), fsm.ErrBadCommand},
		{"role may not report", mod(func(c *pb.Command) { c.GetReport().Role = pb.Role_ROLE_DISPATCHER }), workflow.ErrRoleNotAllowed},
		{"no actor", mod(func(c *pb.Command) { c.GetReport().Actor = " " }), workflow.ErrInvalidArgument},
		{"not stamped", mod(func(c *pb.Command) { c.StampedUnixMs = 0 }), workflow.ErrInvalidArgument},
		{"already reported", mod(func(c *pb.Command) { c.GetReport().Case.State = pb.State_STATE_FILED }), workflow.ErrForbidden},
		{"no body", &pb.Command{RequestId: "req-bad", StampedUnixMs: stamp}, fsm.ErrBadCommand},
	} {
		refused(t, f, idx, tc.cmd, tc.want)
		sameRecords(t, tc.name, before, records(t, s, true))
		checkApplied(t, f, s, idx, 1)
		idx++
	}
	if _, err := getRequest(t, s, "req-bad"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused request recorded: %v", err)
	}
	// No sequence number was taken: the next report follows the first.
	if r := mustApply(t, f, idx, report("req-bad", stamp, "fixed")); r.Case.Id != caseID(2) {
		t.Fatalf("after refusals: id %q, want %q", r.Case.Id, caseID(2))
	}
}

func TestSameRequestTwiceIsReplayed(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	first := mustApply(t, f, 1, report("req-A", stamp, "pothole"))
	before := records(t, s, true)

	// The retry reaches another leader the next day: stamps differ, the
	// client's request does not.
	retry := report("req-A", stamp+26*60*minute, "pothole")
	retry.GetReport().IdDate = "20010910"
	retry.StampedBy = "node-2"
	r := mustApply(t, f, 2, retry)
	if !r.Replayed || r.Case == nil || !proto.Equal(r.Case, first.Case) {
		t.Fatalf("retry: replayed %v, case %v; want the first case", r.Replayed, r.Case)
	}
	sameRecords(t, "replayed report", before, records(t, s, true))
	checkApplied(t, f, s, 2, 1)
	if cs := allCases(t, s); len(cs) != 1 {
		t.Fatalf("%d cases after a replay, want 1", len(cs))
	}

	// Same id, another body: refused, nothing written.
	refused(t, f, 3, report("req-A", stamp, "a different pothole"), fsm.ErrRequestReused)
	sameRecords(t, "reused request id", before, records(t, s, true))
	other := registerNode("node-9")
	other.RequestId = "req-A"
	refused(t, f, 4, other, fsm.ErrRequestReused)
	sameRecords(t, "reused request id for another command type", before, records(t, s, true))

	// The sequence did not move: the next report is number 2.
	if r := mustApply(t, f, 5, report("req-B", stamp, "next")); r.Case.Id != caseID(2) {
		t.Fatalf("next id %q, want %q", r.Case.Id, caseID(2))
	}
}

func TestSameActionTwiceIsReplayed(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	id := mustApply(t, f, 1, report("r1", stamp, "x")).Case.Id
	mustApply(t, f, 2, act("r2", stamp+minute, &pb.CaseAction{CaseId: id, Action: pb.Action_ACTION_FILE, Role: pb.Role_ROLE_SHIFT_LEADER}))
	dispatch := func(deadline int64, unit string) *pb.Command {
		return act("r3", stamp+2*minute, &pb.CaseAction{CaseId: id, Action: pb.Action_ACTION_DISPATCH, Role: pb.Role_ROLE_DISPATCHER,
			Unit: unit, TimeLimitMinutes: 60, DeadlineUnixMs: deadline})
	}
	first := mustApply(t, f, 3, dispatch(stamp+62*minute, "unit-a"))
	if first.Case.Version != 3 || first.Case.State != pb.State_STATE_DISPATCHED {
		t.Fatalf("dispatch: %v", first.Case)
	}
	if rec, err := getRequest(t, s, "r3"); err != nil || rec.CaseId != id || rec.Version != 3 || rec.LogIndex != 3 {
		t.Fatalf("request record %v, %v", rec, err)
	}
	before := records(t, s, true)
	// A retry through another leader computes another deadline from the
	// same time limit: still the same request.
	r := mustApply(t, f, 4, dispatch(stamp+99*minute, "unit-a"))
	if !r.Replayed || !proto.Equal(r.Case, first.Case) {
		t.Fatalf("retry: replayed %v, case %v", r.Replayed, r.Case)
	}
	sameRecords(t, "replayed dispatch", before, records(t, s, true))
	refused(t, f, 5, dispatch(stamp+62*minute, "unit-b"), fsm.ErrRequestReused)
	sameRecords(t, "dispatch with a reused request id", before, records(t, s, true))
	// Without a time limit the deadline is the client's own: another
	// deadline is another request.
	explicit := func(deadline int64) *pb.Command {
		return act("r6", stamp+3*minute, &pb.CaseAction{CaseId: id, Action: pb.Action_ACTION_REQUEST_EXTENSION, Role: pb.Role_ROLE_HANDLING_UNIT,
			ExtensionMinutes: 30, DeadlineUnixMs: deadline})
	}
	mustApply(t, f, 6, explicit(stamp+70*minute))
	refused(t, f, 7, explicit(stamp+71*minute), fsm.ErrRequestReused)
	checkApplied(t, f, s, 7, 1)
}

func TestSameRequestTwiceInOneBatch(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	data := encode(t, report("req-A", stamp, "x"))
	res := f.ApplyBatch([]*raft.Log{entry(1, data), entry(2, data)})
	a, b := result(t, res[0]), result(t, res[1])
	if a.Err != nil || a.Replayed || b.Err != nil || !b.Replayed || !proto.Equal(a.Case, b.Case) {
		t.Fatalf("first %+v, second %+v", a, b)
	}
	if cs := allCases(t, s); len(cs) != 1 {
		t.Fatalf("%d cases, want 1", len(cs))
	}
}

func TestRefusedActionWritesNothing(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	id := mustApply(t, f, 1, report("r1", stamp, "x")).Case.Id
	before := records(t, s, true)
	stored, _ := s.GetCase(id)

	for i, tc := range []struct {
		name string
		a    *pb.CaseAction
		want error
	}{
		{"forbidden transition", &pb.CaseAction{CaseId: id, Action: pb.Action_ACTION_CLOSE, Role: pb.Role_ROLE_SHIFT_LEADER}, workflow.ErrForbidden},
		{"role not allowed", &pb.CaseAction{CaseId: id, Action: pb.Action_ACTION_FILE, Role: pb.Role_ROLE_CITIZEN}, workflow.ErrRoleNotAllowed},
		{"stale version", &pb.CaseAction{CaseId: id, Action: pb.Action_ACTION_FILE, Role: pb.Role_ROLE_SHIFT_LEADER, ExpectedVersion: 7}, workflow.ErrVersionMismatch},
		{"unknown action", &pb.CaseAction{CaseId: id, Action: pb.Action(99), Role: pb.Role_ROLE_SHIFT_LEADER}, workflow.ErrInvalidArgument},
		{"no such case", &pb.CaseAction{CaseId: caseID(99), Action: pb.Action_ACTION_FILE, Role: pb.Role_ROLE_SHIFT_LEADER}, store.ErrNotFound},
		{"empty case id", &pb.CaseAction{Action: pb.Action_ACTION_FILE, Role: pb.Role_ROLE_SHIFT_LEADER}, store.ErrNotFound},
	} {
		index := uint64(2 + i)
		refused(t, f, index, act("r-"+tc.name, stamp+minute, tc.a), tc.want)
		sameRecords(t, tc.name, before, records(t, s, true))
		if _, err := getRequest(t, s, "r-"+tc.name); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s: request recorded: %v", tc.name, err)
		}
		checkApplied(t, f, s, index, 1)
	}
	if got, err := s.GetCase(id); err != nil || !proto.Equal(got, stored) {
		t.Fatalf("case changed by refused actions: %v, %v", got, err)
	}
}

// A whole lifecycle through the FSM keeps the store's indexes in step.
func TestLifecycleThroughFSM(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	id := mustApply(t, f, 1, report("r1", stamp, "x")).Case.Id
	deadline := stamp + 8*60*minute
	steps := []struct {
		a  *pb.CaseAction
		st pb.State
	}{
		{&pb.CaseAction{Action: pb.Action_ACTION_FILE, Role: pb.Role_ROLE_SHIFT_LEADER}, pb.State_STATE_FILED},
		{&pb.CaseAction{Action: pb.Action_ACTION_DISPATCH, Role: pb.Role_ROLE_DISPATCHER, Unit: "roads", UnitTier: pb.Tier_TIER_DISTRICT, DeadlineUnixMs: deadline, TimeLimitMinutes: 480}, pb.State_STATE_DISPATCHED},
		{&pb.CaseAction{Action: pb.Action_ACTION_ACCEPT, Role: pb.Role_ROLE_HANDLING_UNIT}, pb.State_STATE_ACCEPTED},
		{&pb.CaseAction{Action: pb.Action_ACTION_HANDLE, Role: pb.Role_ROLE_HANDLING_UNIT, Note: "fixed", Attachments: []string{"after.jpg"}}, pb.State_STATE_HANDLED},
		{&pb.CaseAction{Action: pb.Action_ACTION_CHECK_PASS, Role: pb.Role_ROLE_INSPECTOR}, pb.State_STATE_CHECKED},
		{&pb.CaseAction{Action: pb.Action_ACTION_CLOSE, Role: pb.Role_ROLE_SHIFT_LEADER}, pb.State_STATE_CLOSED},
	}
	for i, step := range steps {
		step.a.CaseId = id
		at := stamp + int64(i+1)*minute
		r := mustApply(t, f, uint64(i+2), act(fmt.Sprintf("r%d", i+2), at, step.a))
		c := r.Case
		if c.State != step.st || c.Version != uint64(i+2) || len(c.History) != i+2 {
			t.Fatalf("step %d: state %s version %d history %d", i, c.State, c.Version, len(c.History))
		}
		if got := c.History[i+1].At.AsTime().UnixMilli(); got != at {
			t.Fatalf("step %d: history at %d, want stamp %d", i, got, at)
		}
		counts, err := s.CountByState()
		if err != nil || counts[step.st] != 1 {
			t.Fatalf("step %d: counts %v, %v", i, counts, err)
		}
		for st, n := range counts {
			if st != step.st && n != 0 {
				t.Fatalf("step %d: %s still counts %d", i, st, n)
			}
		}
		inState, _, err := s.List(store.Query{State: step.st})
		if err != nil || len(inState) != 1 || inState[0].Id != id {
			t.Fatalf("step %d: list by %s: %v, %v", i, step.st, inState, err)
		}
		due, _, err := s.List(store.Query{DueBefore: timeMs(deadline + 1)})
		wantDue := step.st == pb.State_STATE_DISPATCHED || step.st == pb.State_STATE_ACCEPTED || step.st == pb.State_STATE_HANDLED || step.st == pb.State_STATE_CHECKED
		if err != nil || (len(due) == 1) != wantDue {
			t.Fatalf("step %d (%s): due list %v, %v; want due %v", i, step.st, due, err, wantDue)
		}
	}
	byUnit, _, err := s.List(store.Query{OwnerUnit: "roads"})
	if err != nil || len(byUnit) != 1 {
		t.Fatalf("list by unit: %v, %v", byUnit, err)
	}
	c, _ := s.GetCase(id)
	if c.ClosedAt.AsTime().UnixMilli() != stamp+6*minute || c.Deadline.AsTime().UnixMilli() != deadline {
		t.Fatalf("closed case: closed_at %v deadline %v", c.ClosedAt.AsTime(), c.Deadline.AsTime())
	}
}

func TestRegisterNode(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	r := mustApply(t, f, 1, registerNode("node-b"))
	if r.Case != nil || r.Replayed {
		t.Fatalf("register: %+v", r)
	}
	mustApply(t, f, 2, registerNode("node-a"))
	moved := registerNode("node-b")
	moved.GetRegisterNode().GrpcAddr = "elsewhere:1"
	mustApply(t, f, 3, moved)
	nodes, err := s.Nodes()
	if err != nil || len(nodes) != 2 {
		t.Fatalf("nodes %v, %v", nodes, err)
	}
	if nodes[0].NodeId != "node-a" || nodes[1].NodeId != "node-b" || nodes[1].GrpcAddr != "elsewhere:1" || nodes[1].RaftAddr != "node-b:7000" || nodes[1].HttpAddr != "node-b:7002" {
		t.Fatalf("nodes %v", nodes)
	}
}

func TestBadBytes(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	for i, data := range [][]byte{{0xff, 0xff, 0xff}, {0x0a}, {0x52, 0x05, 0x0a}, []byte("not a protobuf at all \xff")} {
		r := result(t, f.Apply(entry(uint64(i+1), data)))
		if !errors.Is(r.Err, fsm.ErrBadCommand) || r.Case != nil {
			t.Fatalf("data %q: %+v, want ErrBadCommand", data, r)
		}
	}
	checkApplied(t, f, s, 4, 1)
	// Empty data is an empty Command: no body.
	refused(t, f, 5, &pb.Command{}, fsm.ErrBadCommand)
	if recs := records(t, s, true); len(recs) != 0 {
		t.Fatalf("bad commands wrote %d records", len(recs))
	}
}

// Entries at or below the stored applied index are skipped after a restart.
func TestReplayAfterRestart(t *testing.T) {
	for _, tc := range []struct{ first, second int }{{10, 12}, {40, 45}, {64, 70}} {
		t.Run(fmt.Sprintf("%d then %d", tc.first, tc.second), func(t *testing.T) {
			s := openStore(t)
			var entries []*raft.Log
			for i := 1; i <= tc.second; i++ {
				entries = append(entries, entry(uint64(i), encode(t, report(fmt.Sprintf("req-%d", i), stamp+int64(i)*minute, "x"))))
			}
			f1 := newFSM(t, s)
			for i, r := range f1.ApplyBatch(entries[:tc.first]) {
				if res := result(t, r); res.Err != nil || res.Case.Id != caseID(i+1) {
					t.Fatalf("first run, entry %d: %+v", i+1, res)
				}
			}
			lastTerm := entries[tc.first-1].Term
			checkApplied(t, f1, s, uint64(tc.first), lastTerm)

			// Restart: a new FSM over the same store resumes from its index,
			// and raft replays the log from the start.
			f2 := newFSM(t, s)
			if f2.AppliedIndex() != uint64(tc.first) {
				t.Fatalf("restarted FSM at %d, want %d", f2.AppliedIndex(), tc.first)
			}
			var notified []uint64
			f2.OnApply(func(i uint64) { notified = append(notified, i) })
			res := f2.ApplyBatch(entries)
			if len(res) != tc.second {
				t.Fatalf("%d results for %d entries", len(res), tc.second)
			}
			for i, r := range res {
				got := result(t, r)
				if i < tc.first {
					if !errors.Is(got.Err, fsm.ErrReplayed) || got.Case != nil {
						t.Fatalf("entry %d: %+v, want ErrReplayed", i+1, got)
					}
					continue
				}
				if got.Err != nil || got.Replayed || got.Case.Id != caseID(i+1) {
					t.Fatalf("entry %d: %+v, want new case %s", i+1, got, caseID(i+1))
				}
			}
			checkApplied(t, f2, s, uint64(tc.second), entries[tc.second-1].Term)
			if len(notified) == 0 || notified[len(notified)-1] != uint64(tc.second) {
				t.Fatalf("OnApply saw %v", notified)
			}
			cs := allCases(t, s)
			if len(cs) != tc.second {
				t.Fatalf("%d cases, want %d", len(cs), tc.second)
			}
			for i, c := range cs {
				if c.Id != caseID(i+1) || c.Version != 1 || len(c.History) != 1 {
					t.Fatalf("case %d: %s version %d history %d", i, c.Id, c.Version, len(c.History))
				}
			}
			// And the same entries once more change nothing at all.
			before := records(t, s, false)
			for _, r := range newFSM(t, s).ApplyBatch(entries) {
				if !errors.Is(result(t, r).Err, fsm.ErrReplayed) {
					t.Fatalf("third run applied something: %+v", r)
				}
			}
			sameRecords(t, "third run", before, records(t, s, false))
		})
	}
}

// want describes the expected result of one entry of a mixed batch.
type want struct {
	kind string // "case", "replayed", "node", "nil" or "err"
	err  error
	id   string
}

// mixedBatch builds n entries, from index 1, of every kind: reports,
// actions, retried requests, reused request ids, node registrations,
// configuration entries, empty commands, actions on missing cases and bad
// bytes; want describes each result.
func mixedBatch(t *testing.T, n int) ([]*raft.Log, []want) {
	var (
		logs    []*raft.Log
		wants   []want
		reports int
	)
	add := func(l *raft.Log, w want) {
		logs = append(logs, l)
		wants = append(wants, w)
	}
	for i := 1; i <= n; i++ {
		at := stamp + int64(i)*minute
		idx := uint64(i)
		switch i % 10 {
		case 1, 2:
			reports++
			add(entry(idx, encode(t, report(fmt.Sprintf("rep-%d", i), at, fmt.Sprintf("case %d", i)))),
				want{kind: "case", id: caseID(reports)})
		case 3: // file the report just made
			add(entry(idx, encode(t, act(fmt.Sprintf("file-%d", i), at, &pb.CaseAction{CaseId: caseID(reports), Action: pb.Action_ACTION_FILE, Role: pb.Role_ROLE_SHIFT_LEADER}))),
				want{kind: "case", id: caseID(reports)})
		case 4: // the report of entry i-3, retried
			add(entry(idx, encode(t, report(fmt.Sprintf("rep-%d", i-3), at, fmt.Sprintf("case %d", i-3)))),
				want{kind: "replayed", id: wants[i-4].id})
		case 5: // the request id of entry i-4 with another body
			add(entry(idx, encode(t, report(fmt.Sprintf("rep-%d", i-4), at, "changed"))),
				want{kind: "err", err: fsm.ErrRequestReused})
		case 6:
			add(&raft.Log{Index: idx, Term: entry(idx, nil).Term, Type: raft.LogConfiguration, Data: []byte("config")},
				want{kind: "nil"})
		case 7:
			add(entry(idx, encode(t, registerNode(fmt.Sprintf("node-%d", i)))), want{kind: "node"})
		case 8:
			add(entry(idx, encode(t, &pb.Command{RequestId: fmt.Sprintf("empty-%d", i), StampedUnixMs: at})),
				want{kind: "err", err: fsm.ErrBadCommand})
		case 9:
			add(entry(idx, encode(t, act(fmt.Sprintf("act-%d", i), at, &pb.CaseAction{CaseId: "110105-20010909-999999", Action: pb.Action_ACTION_FILE, Role: pb.Role_ROLE_SHIFT_LEADER}))),
				want{kind: "err", err: store.ErrNotFound})
		case 0:
			add(entry(idx, []byte{0xff, 0xff, 0xff, 0x01}), want{kind: "err", err: fsm.ErrBadCommand})
		}
	}
	return logs, wants
}

func checkResults(t *testing.T, res []any, wants []want) {
	t.Helper()
	if len(res) != len(wants) {
		t.Fatalf("%d results, want %d", len(res), len(wants))
	}
	for i, w := range wants {
		if w.kind == "nil" {
			if res[i] != nil {
				t.Fatalf("entry %d (configuration): result %v, want nil", i+1, res[i])
			}
			continue
		}
		r := result(t, res[i])
		switch w.kind {
		case "err":
			if !errors.Is(r.Err, w.err) {
				t.Fatalf("entry %d: err %v, want %v", i+1, r.Err, w.err)
			}
		case "node":
			if r.Err != nil || r.Case != nil || r.Replayed {
				t.Fatalf("entry %d (register node): %+v", i+1, r)
			}
		case "case", "replayed":
			if r.Err != nil || r.Case == nil || r.Case.Id != w.id || r.Replayed != (w.kind == "replayed") {
				t.Fatalf("entry %d: %+v, want %s %s", i+1, r, w.kind, w.id)
			}
		}
	}
}

func TestApplyBatchMixed(t *testing.T) {
	logs, wants := mixedBatch(t, 100)
	s := openStore(t)
	f := newFSM(t, s)
	var notified []uint64
	f.OnApply(func(i uint64) { notified = append(notified, i) })
	res := f.ApplyBatch(logs)
	checkResults(t, res, wants)
	checkApplied(t, f, s, 100, logs[99].Term)
	// One notification per transaction chunk, each at the chunk's last entry.
	if !slices.Equal(notified, []uint64{32, 64, 96, 100}) {
		t.Fatalf("OnApply saw %v", notified)
	}
	if cs := allCases(t, s); len(cs) != 20 {
		t.Fatalf("%d cases, want 20", len(cs))
	}
	nodes, err := s.Nodes()
	if err != nil || len(nodes) != 10 {
		t.Fatalf("nodes %d, %v; want 10", len(nodes), err)
	}
	counts, err := s.CountByState()
	if err != nil || counts[pb.State_STATE_FILED] != 10 || counts[pb.State_STATE_REPORTED] != 10 {
		t.Fatalf("counts %v, %v", counts, err)
	}

	// Batching is invisible: entry by entry gives the same results and store.
	s2 := openStore(t)
	f2 := newFSM(t, s2)
	one := make([]any, len(logs))
	for i, l := range logs {
		one[i] = f2.Apply(l)
	}
	checkResults(t, one, wants)
	if !bytes.Equal(snapshotBytes(t, s), snapshotBytes(t, s2)) {
		t.Fatal("batched and one-by-one application differ")
	}
}

func TestSnapshotPersistRestore(t *testing.T) {
	logs, _ := mixedBatch(t, 60)
	s1 := openStore(t)
	f1 := newFSM(t, s1)
	f1.ApplyBatch(logs[:40])

	snap, err := f1.Snapshot()
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	// Raft keeps applying while the snapshot is persisted.
	f1.ApplyBatch(logs[40:])
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("persist: %v", err)
	}
	snap.Release()
	if sink.closed != 1 || sink.canceled != 0 {
		t.Fatalf("sink closed %d times, canceled %d times", sink.closed, sink.canceled)
	}

	// The reference: a store that applied exactly the first 40 entries.
	ref := openStore(t)
	newFSM(t, ref).ApplyBatch(logs[:40])

	s2 := openStore(t)
	f2 := newFSM(t, s2)
	junk, _ := mixedBatch(t, 70) // a longer history that must vanish
	f2.ApplyBatch(junk)
	rc := &trackedReader{Reader: bytes.NewReader(sink.buf.Bytes())}
	if err := f2.Restore(rc); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if rc.closed != 1 {
		t.Fatalf("restore closed the reader %d times", rc.closed)
	}
	checkApplied(t, f2, s2, 40, logs[39].Term)
	if !bytes.Equal(snapshotBytes(t, s2), snapshotBytes(t, ref)) {
		t.Fatal("restored store differs from a store at the snapshot's index")
	}
	// The restored FSM goes on from there like the original: entries it
	// holds are skipped, the rest applied.
	res := f2.ApplyBatch(logs)
	for i := range 40 {
		if !errors.Is(result(t, res[i]).Err, fsm.ErrReplayed) {
			t.Fatalf("entry %d re-applied after restore: %+v", i+1, res[i])
		}
	}
	checkApplied(t, f2, s2, 60, logs[59].Term)
	if !bytes.Equal(snapshotBytes(t, s2), snapshotBytes(t, s1)) {
		t.Fatal("restored FSM diverged from the original after catching up")
	}
}

func TestPersistFailureCancelsSink(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	mustApply(t, f, 1, report("r1", stamp, "x"))
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	boom := errors.New("disk full")
	sink := &memSink{failWrite: boom}
	if err := snap.Persist(sink); !errors.Is(err, boom) {
		t.Fatalf("persist err = %v, want %v", err, boom)
	}
	if sink.canceled != 1 || sink.closed != 0 {
		t.Fatalf("failed persist: canceled %d, closed %d; want canceled once, never closed", sink.canceled, sink.closed)
	}
}

func TestRestoreRefusesDamagedSnapshot(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	mustApply(t, f, 7, report("r1", stamp, "x"))
	for name, data := range map[string][]byte{
		"empty":       nil,
		"wrong magic": []byte("cityhub-state-v0\n\x00\x00\x00\x00\x00"),
	} {
		rc := &trackedReader{Reader: bytes.NewReader(data)}
		if err := f.Restore(rc); !errors.Is(err, store.ErrBadSnapshot) {
			t.Fatalf("%s: err = %v, want ErrBadSnapshot", name, err)
		}
		if rc.closed != 1 {
			t.Fatalf("%s: reader closed %d times", name, rc.closed)
		}
		// Refused at the header: the FSM and store are as they were.
		checkApplied(t, f, s, 7, 1)
		if _, err := s.GetCase(caseID(1)); err != nil {
			t.Fatalf("%s: case gone after a refused restore: %v", name, err)
		}
	}
}

func TestNewResumesFromStoredIndex(t *testing.T) {
	s := openStore(t)
	if err := s.Update(func(tx *store.Tx) error { return tx.SetApplied(41, 3) }); err != nil {
		t.Fatal(err)
	}
	f := newFSM(t, s)
	if f.AppliedIndex() != 41 {
		t.Fatalf("AppliedIndex = %d, want 41", f.AppliedIndex())
	}
	r := result(t, f.Apply(entry(41, encode(t, report("r", stamp, "x")))))
	if !errors.Is(r.Err, fsm.ErrReplayed) {
		t.Fatalf("entry at the stored index: %+v, want ErrReplayed", r)
	}
	if r := mustApply(t, f, 42, report("r", stamp, "x")); r.Case.Id != caseID(1) {
		t.Fatalf("entry after the stored index: %+v", r)
	}
}

// Fields that become part of a store key are bounded: badger refuses keys
// over 65,000 bytes, and a refused write would stop every replica on the
// entry. Such a command is refused as bad, not applied or crashed on.
func TestOversizedKeyFieldsAreRefused(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	id := mustApply(t, f, 1, report("r1", stamp, "x")).Case.Id
	mustApply(t, f, 2, act("r2", stamp, &pb.CaseAction{CaseId: id, Action: pb.Action_ACTION_FILE, Role: pb.Role_ROLE_SHIFT_LEADER}))
	before := records(t, s, true)
	huge := strings.Repeat("7", 70_000)
	index := uint64(3)
	for name, cmd := range map[string]*pb.Command{
		"request id": report(huge, stamp, "x"),
		"grid code": func() *pb.Command {
			c := report("r3", stamp, "x")
			c.GetReport().Case.GridCode = huge
			return c
		}(),
		"dispatch unit": act("r4", stamp, &pb.CaseAction{CaseId: id, Action: pb.Action_ACTION_DISPATCH, Role: pb.Role_ROLE_DISPATCHER, Unit: huge, DeadlineUnixMs: stamp + 60*minute}),
		"node id":       registerNode(huge),
	} {
		refused(t, f, index, cmd, fsm.ErrBadCommand)
		sameRecords(t, name, before, records(t, s, true))
		checkApplied(t, f, s, index, 1)
		index++
	}
	// At the bound the fields are fine.
	long := strings.Repeat("7", 4096)
	c := report(long, stamp, "x")
	c.GetReport().Case.GridCode = long
	if r := mustApply(t, f, index, c); r.Case.GridCode != long {
		t.Fatalf("grid code of 4096 bytes not kept")
	}
	mustApply(t, f, index+1, registerNode(long))
	mustApply(t, f, index+2, act("r-long-unit", stamp, &pb.CaseAction{CaseId: id, Action: pb.Action_ACTION_DISPATCH, Role: pb.Role_ROLE_DISPATCHER, Unit: long, DeadlineUnixMs: stamp + 60*minute}))
	if got, _, err := s.List(store.Query{OwnerUnit: long}); err != nil || len(got) != 1 {
		t.Fatalf("list by a 4096-byte unit: %v, %v", got, err)
	}
}

// Readers wait for AppliedIndex and then read the store (tiers/node); once
// an index is published its writes must be visible, and the index never
// goes back.
func TestAppliedIndexPublishedAfterCommit(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	const n = 300
	var logs []*raft.Log
	for i := 1; i <= n; i++ {
		logs = append(logs, entry(uint64(i), encode(t, report(fmt.Sprintf("r%d", i), stamp, "x"))))
	}
	done := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		var prev uint64
		for {
			select {
			case <-done:
				return
			default:
			}
			idx := f.AppliedIndex()
			if idx < prev {
				errs <- fmt.Errorf("applied index went back from %d to %d", prev, idx)
				return
			}
			prev = idx
			if idx == 0 {
				continue
			}
			if _, err := s.GetCase(caseID(int(idx))); err != nil {
				errs <- fmt.Errorf("index %d published but its case is not readable: %v", idx, err)
				return
			}
		}
	}()
	for start := 0; start < n; start += 7 {
		f.ApplyBatch(logs[start:min(start+7, n)])
	}
	close(done)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	checkApplied(t, f, s, n, logs[n-1].Term)
}

// TestMarkerSnapshot: a store of at least SetMarkerSnapshots cases takes
// a marker snapshot (a few bytes, whatever the store holds); restoring it
// on the store it marks changes nothing, on a store that has applied less
// it is refused, and below the limit a snapshot is still a full copy.
func TestMarkerSnapshot(t *testing.T) {
	logs, _ := mixedBatch(t, 60)
	s := openStore(t)
	f := newFSM(t, s)
	f.ApplyBatch(logs[:40])
	cases, err := s.CaseCount()
	if err != nil || cases == 0 {
		t.Fatalf("CaseCount = %d, %v", cases, err)
	}
	persist := func(t *testing.T, f *fsm.FSM) []byte {
		t.Helper()
		snap, err := f.Snapshot()
		if err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		defer snap.Release()
		sink := &memSink{}
		if err := snap.Persist(sink); err != nil || sink.closed != 1 {
			t.Fatalf("persist: %v (closed %d)", err, sink.closed)
		}
		return sink.buf.Bytes()
	}

	f.SetMarkerSnapshots(cases + 1) // one case short of the limit: a full copy
	if full := persist(t, f); !bytes.Equal(full, snapshotBytes(t, s)) {
		t.Fatalf("below the limit: a snapshot of %d bytes, want the full copy (%d bytes)", len(full), len(snapshotBytes(t, s)))
	}
	f.SetMarkerSnapshots(cases)
	mark := persist(t, f)
	index, term, ok, err := store.PeekMarker(bufio.NewReader(bytes.NewReader(mark)))
	if err != nil || !ok || index != 40 || term != logs[39].Term {
		t.Fatalf("at the limit: PeekMarker = %d, %d, %v, %v; want a marker of entry 40 (%d bytes)", index, term, ok, err, len(mark))
	}

	// Restored on its own store (which has gone on applying): nothing changes.
	f.ApplyBatch(logs[40:])
	before := snapshotBytes(t, s)
	rc := &trackedReader{Reader: bytes.NewReader(mark)}
	if err := f.Restore(rc); err != nil || rc.closed != 1 {
		t.Fatalf("restore of the marker on its own store: %v (closed %d)", err, rc.closed)
	}
	checkApplied(t, f, s, 60, logs[59].Term)
	if !bytes.Equal(snapshotBytes(t, s), before) {
		t.Fatal("restoring a marker changed the store")
	}
	// On a store that has applied less, it holds nothing to restore.
	s2 := openStore(t)
	f2 := newFSM(t, s2)
	f2.ApplyBatch(logs[:10])
	if err := f2.Restore(&trackedReader{Reader: bytes.NewReader(mark)}); !errors.Is(err, store.ErrBadSnapshot) {
		t.Fatalf("restore of a marker of entry 40 on a store at 10: %v, want ErrBadSnapshot", err)
	}
	checkApplied(t, f2, s2, 10, logs[9].Term)
}
