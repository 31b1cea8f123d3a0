package fsm_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/store"
	"github.com/cityhub/cityhub/tiers/workflow"
)

// fedTopology: a city, the district this FSM serves (d-110105, the
// prefix of the test cases), one street and one community below it.
func fedTopology(self string) *pb.Command {
	return &pb.Command{Body: &pb.Command_SetTopology{SetTopology: &pb.SetTopology{Topology: &pb.FederationTopology{
		Self: self,
		Nodes: []*pb.FederationNode{
			{Name: "city", Tier: pb.Tier_TIER_CITY, Jurisdiction: "110100", Replicas: []string{"127.0.0.1:1"}, Units: []string{"city-water"}},
			{Name: "d-110105", Tier: pb.Tier_TIER_DISTRICT, Jurisdiction: "110105", Parent: "city", Replicas: []string{"127.0.0.1:2"}, Units: []string{"d-roads"}},
			{Name: "s-110105001", Tier: pb.Tier_TIER_STREET, Jurisdiction: "110105001", Parent: "d-110105", Replicas: []string{"127.0.0.1:3"}, Units: []string{"s-squad"}},
			{Name: "c-110105001001", Tier: pb.Tier_TIER_COMMUNITY, Jurisdiction: "110105001001", Parent: "s-110105001", Replicas: []string{"127.0.0.1:4"}, Units: []string{"c-grid"}},
		},
	}}}}
}

func outbox(tb testing.TB, s *store.Store, peer string) []*pb.LinkEntry {
	tb.Helper()
	es, err := s.Outbox(peer, 1, 1000, 1<<30)
	if err != nil {
		tb.Fatal(err)
	}
	return es
}

func deliverCmd(from string, at int64, entries ...*pb.LinkEntry) *pb.Command {
	return &pb.Command{StampedUnixMs: at, Body: &pb.Command_Deliver{Deliver: &pb.DeliverEntries{From: from, Entries: entries}}}
}

func fileAndDispatch(tb testing.TB, f *fsm.FSM, idx uint64, id, unit string) {
	tb.Helper()
	mustApply(tb, f, idx, act("file-"+id, stamp+minute, &pb.CaseAction{CaseId: id, Action: pb.Action_ACTION_FILE, Role: pb.Role_ROLE_SHIFT_LEADER}))
	mustApply(tb, f, idx+1, act("disp-"+id, stamp+2*minute, &pb.CaseAction{CaseId: id, Action: pb.Action_ACTION_DISPATCH, Role: pb.Role_ROLE_DISPATCHER, Unit: unit, DeadlineUnixMs: stamp + 100*minute}))
}

func TestReportAndHandOffQueueOnTheirLinks(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	mustApply(t, f, 1, fedTopology("d-110105"))
	r := mustApply(t, f, 2, report("r1", stamp, "garbage"))
	if r.Case.Holder != "d-110105" || r.Case.HolderEpoch != 1 {
		t.Fatalf("report: holder %q epoch %d", r.Case.Holder, r.Case.HolderEpoch)
	}
	// Reported here and held here: only the city (the ancestor) hears of it.
	if up, down := outbox(t, s, "city"), outbox(t, s, "s-110105001"); len(up) != 1 || len(down) != 0 || up[0].Seq != 1 || up[0].Case.Version != 1 || up[0].Origin != "d-110105" || up[0].EnqueuedUnixMs != stamp {
		t.Fatalf("after report: up %v, down %v", up, down)
	}
	fileAndDispatch(t, f, 3, caseID(1), "c-grid")
	c, _ := s.GetCase(caseID(1))
	if c.Holder != "c-110105001001" || c.HolderEpoch != 2 || c.OwnerTier != pb.Tier_TIER_COMMUNITY {
		t.Fatalf("after dispatch to a community unit: holder %q epoch %d tier %s", c.Holder, c.HolderEpoch, c.OwnerTier)
	}
	up, down := outbox(t, s, "city"), outbox(t, s, "s-110105001")
	if len(up) != 3 || len(down) != 1 || !proto.Equal(down[0].Case, c) || down[0].Seq != 1 || up[2].Seq != 3 {
		t.Fatalf("after dispatch: %d up, %d down (%v)", len(up), len(down), down)
	}
	// No longer the holder: actions here are refused, naming the holder.
	r = refused(t, f, 5, act("acc", stamp+3*minute, &pb.CaseAction{CaseId: caseID(1), Action: pb.Action_ACTION_ACCEPT, Role: pb.Role_ROLE_HANDLING_UNIT}), fsm.ErrNotHolder)
	var nh *fsm.NotHolderError
	if !errors.As(r.Err, &nh) || nh.Holder != "c-110105001001" {
		t.Fatalf("refusal %v does not name the holder", r.Err)
	}
}

func TestDispatchAboveIsRefusedAndWritesNothing(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	mustApply(t, f, 1, fedTopology("d-110105"))
	mustApply(t, f, 2, report("r1", stamp, "x"))
	mustApply(t, f, 3, act("file", stamp, &pb.CaseAction{CaseId: caseID(1), Action: pb.Action_ACTION_FILE, Role: pb.Role_ROLE_SHIFT_LEADER}))
	before := records(t, s, true)
	r := refused(t, f, 4, act("disp", stamp, &pb.CaseAction{CaseId: caseID(1), Action: pb.Action_ACTION_DISPATCH, Role: pb.Role_ROLE_DISPATCHER, Unit: "city-water", DeadlineUnixMs: stamp + minute}), fsm.ErrUnitNotBelow)
	var fe *workflow.FieldError
	if !errors.As(r.Err, &fe) || fe.Field != "unit" {
		t.Fatalf("refusal %v does not name the field unit", r.Err)
	}
	sameRecords(t, "after a refused dispatch", before, records(t, s, true))
	// A unit outside the topology stays here (非联网单位).
	mustApply(t, f, 5, act("disp2", stamp, &pb.CaseAction{CaseId: caseID(1), Action: pb.Action_ACTION_DISPATCH, Role: pb.Role_ROLE_DISPATCHER, Unit: "paper-only-unit", DeadlineUnixMs: stamp + minute}))
	if c, _ := s.GetCase(caseID(1)); c.Holder != "d-110105" || c.HolderEpoch != 1 {
		t.Fatalf("dispatch to an unknown unit moved the holder to %q", c.Holder)
	}
}

func TestTransferUpMovesTheHolderToTheParent(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	mustApply(t, f, 1, fedTopology("d-110105"))
	mustApply(t, f, 2, report("r1", stamp, "x"))
	mustApply(t, f, 3, act("file", stamp, &pb.CaseAction{CaseId: caseID(1), Action: pb.Action_ACTION_FILE, Role: pb.Role_ROLE_SHIFT_LEADER}))
	r := mustApply(t, f, 4, act("up", stamp, &pb.CaseAction{CaseId: caseID(1), Action: pb.Action_ACTION_TRANSFER_UP, Role: pb.Role_ROLE_SHIFT_LEADER, Note: "city-owned"}))
	if r.Case.Holder != "city" || r.Case.HolderEpoch != 2 || r.Case.State != pb.State_STATE_FILED {
		t.Fatalf("transfer up: holder %q epoch %d state %s", r.Case.Holder, r.Case.HolderEpoch, r.Case.State)
	}
	// At the root there is no parent.
	s2 := openStore(t)
	f2 := newFSM(t, s2)
	mustApply(t, f2, 1, fedTopology("city"))
	rep := report("r1", stamp, "x")
	rep.GetReport().IdPrefix = "110100"
	rep.GetReport().Case.GridCode = "110101001001001"
	mustApply(t, f2, 2, rep)
	id := "110100-" + date + "-000001"
	mustApply(t, f2, 3, act("file", stamp, &pb.CaseAction{CaseId: id, Action: pb.Action_ACTION_FILE, Role: pb.Role_ROLE_SHIFT_LEADER}))
	refused(t, f2, 4, act("up", stamp, &pb.CaseAction{CaseId: id, Action: pb.Action_ACTION_TRANSFER_UP, Role: pb.Role_ROLE_SHIFT_LEADER, Note: "x"}), fsm.ErrNoParent)
}

// entryOf makes a link entry carrying a case held below the district.
func entryOf(seq uint64, version uint64, epoch uint64) *pb.LinkEntry {
	return &pb.LinkEntry{Seq: seq, Origin: "city", Case: &pb.Case{
		Id: "110100-" + date + "-000007", State: pb.State_STATE_DISPATCHED, GridCode: "110105001001009",
		ReportedAtNode: "110100", Holder: "c-110105001001", HolderEpoch: epoch, Version: version,
		OwnerUnit: "c-grid",
	}}
}

func TestDeliverIsExactlyOnceAndInOrder(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	mustApply(t, f, 1, fedTopology("d-110105"))
	id := entryOf(1, 3, 2).Case.Id

	r := mustApply(t, f, 2, deliverCmd("city", stamp, entryOf(1, 3, 2), entryOf(2, 4, 2)))
	if r.HighWater != 2 || r.Skipped != 0 {
		t.Fatalf("first batch: high water %d skipped %d", r.HighWater, r.Skipped)
	}
	c, err := s.GetCase(id)
	if err != nil || c.Version != 4 || c.Holder != "c-110105001001" {
		t.Fatalf("mirror after first batch: %v %v", c, err)
	}
	// Passed on toward the holder, once per new version.
	if down := outbox(t, s, "s-110105001"); len(down) != 2 || down[0].Case.Version != 3 || down[1].Case.Version != 4 || down[1].EnqueuedUnixMs != stamp {
		t.Fatalf("forwarded: %v", down)
	}
	// The whole batch again plus one: only the new entry applies.
	r = mustApply(t, f, 3, deliverCmd("city", stamp+1, entryOf(1, 3, 2), entryOf(2, 4, 2), entryOf(3, 5, 2)))
	if r.HighWater != 3 || r.Skipped != 0 {
		t.Fatalf("resent batch: high water %d skipped %d", r.HighWater, r.Skipped)
	}
	if down := outbox(t, s, "s-110105001"); len(down) != 3 {
		t.Fatalf("a resent entry was forwarded again: %d entries", len(down))
	}
	// A gap stops the batch: nothing applies, the mark stays.
	before := records(t, s, true)
	r = mustApply(t, f, 4, deliverCmd("city", stamp+2, entryOf(5, 9, 2)))
	if r.HighWater != 3 {
		t.Fatalf("gap: high water %d, want 3", r.HighWater)
	}
	sameRecords(t, "after a gap", before, records(t, s, true))
	// An older copy (reordered, duplicated) takes a sequence number but
	// changes nothing and goes nowhere.
	r = mustApply(t, f, 5, deliverCmd("city", stamp+3, entryOf(4, 4, 2), entryOf(5, 9, 1)))
	if r.HighWater != 5 || r.Skipped != 2 {
		t.Fatalf("old copies: high water %d skipped %d", r.HighWater, r.Skipped)
	}
	if c, _ := s.GetCase(id); c.Version != 5 || c.HolderEpoch != 2 {
		t.Fatalf("an older copy replaced the mirror: version %d epoch %d", c.Version, c.HolderEpoch)
	}
	// A malformed entry moves the mark and writes no case.
	bad := entryOf(6, 1, 9)
	bad.Case.Id = "../../etc"
	r = mustApply(t, f, 6, deliverCmd("city", stamp+4, bad))
	if r.HighWater != 6 || r.Skipped != 1 {
		t.Fatalf("malformed: high water %d skipped %d", r.HighWater, r.Skipped)
	}
	// Only neighbours deliver.
	refused(t, f, 7, deliverCmd("c-110105001001", stamp, entryOf(1, 1, 1)), fsm.ErrBadCommand)
}

func TestTrimAcknowledges(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	mustApply(t, f, 1, fedTopology("d-110105"))
	for i := 0; i < 3; i++ {
		mustApply(t, f, uint64(2+i), report("r"+string(rune('a'+i)), stamp, "x"))
	}
	trim := func(idx, upto uint64) {
		mustApply(t, f, idx, &pb.Command{Body: &pb.Command_TrimOutbox{TrimOutbox: &pb.TrimOutbox{Link: "city", Upto: upto}}})
	}
	trim(10, 2)
	ls, err := s.Link("city")
	if err != nil || ls.Out.Acked != 2 || ls.Out.LastSeq != 3 {
		t.Fatalf("after trim 2: %+v %v", ls.Out, err)
	}
	if es := outbox(t, s, "city"); len(es) != 1 || es[0].Seq != 3 {
		t.Fatalf("outbox after trim: %v", es)
	}
	trim(11, 1) // older: nothing
	trim(12, 9) // beyond what was written: nothing
	if ls, _ := s.Link("city"); ls.Out.Acked != 2 {
		t.Fatalf("acked moved to %d", ls.Out.Acked)
	}
}

func TestFederationCommandsNeedATopology(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	refused(t, f, 1, deliverCmd("city", stamp, entryOf(1, 1, 1)), fsm.ErrNotFederated)
	refused(t, f, 2, &pb.Command{Body: &pb.Command_SetTopology{SetTopology: &pb.SetTopology{Topology: &pb.FederationTopology{Self: "nowhere"}}}}, fsm.ErrBadTopology)
	// Without a topology a case has no holder and queues nothing.
	r := mustApply(t, f, 3, report("r1", stamp, "x"))
	if r.Case.Holder != "" || r.Case.HolderEpoch != 0 {
		t.Fatalf("standalone case has holder %q", r.Case.Holder)
	}
}

// Two replicas applying the same federated log end with the same bytes.
func TestFederatedApplyIsDeterministic(t *testing.T) {
	log := []*pb.Command{
		fedTopology("d-110105"),
		report("r1", stamp, "x"),
		act("f", stamp+1, &pb.CaseAction{CaseId: caseID(1), Action: pb.Action_ACTION_FILE, Role: pb.Role_ROLE_SHIFT_LEADER}),
		act("d", stamp+2, &pb.CaseAction{CaseId: caseID(1), Action: pb.Action_ACTION_DISPATCH, Role: pb.Role_ROLE_DISPATCHER, Unit: "s-squad", DeadlineUnixMs: stamp + minute}),
		deliverCmd("city", stamp+3, entryOf(1, 3, 2)),
		{Body: &pb.Command_TrimOutbox{TrimOutbox: &pb.TrimOutbox{Link: "city", Upto: 1}}},
	}
	var recs []map[string]string
	for k := 0; k < 2; k++ {
		s := openStore(t)
		f := newFSM(t, s)
		for i, c := range log {
			mustApply(t, f, uint64(i+1), c)
		}
		recs = append(recs, records(t, s, false))
	}
	sameRecords(t, "two replicas", recs[0], recs[1])
}

func markCmd(id string, deadlineMs, at int64) *pb.Command {
	return &pb.Command{RequestId: fmt.Sprintf("overdue/%s/%d", id, deadlineMs), StampedUnixMs: at,
		Body: &pb.Command_MarkOverdue{MarkOverdue: &pb.MarkOverdue{CaseId: id, DeadlineUnixMs: deadlineMs}}}
}

func TestMarkOverdueOncePerDeadline(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	mustApply(t, f, 1, fedTopology("d-110105"))
	rep := report("r1", stamp, "x")
	rep.GetReport().StageDeadlineUnixMs = stamp + 60*minute
	mustApply(t, f, 2, rep)
	id := caseID(1)
	// Not yet due, or another deadline: refused, nothing written.
	before := records(t, s, true)
	refused(t, f, 3, markCmd(id, stamp+60*minute, stamp+59*minute), workflow.ErrForbidden)
	refused(t, f, 4, markCmd(id, stamp+30*minute, stamp+61*minute), workflow.ErrForbidden)
	sameRecords(t, "after refused marks", before, records(t, s, true))
	r := mustApply(t, f, 5, markCmd(id, stamp+60*minute, stamp+61*minute))
	if !r.Case.Overdue || r.Case.OverdueCount != 1 || r.Case.SuperviseCount != 1 || r.Case.Version != 2 {
		t.Fatalf("marked: %v", r.Case)
	}
	h := r.Case.History[1]
	if h.Action != pb.Action_ACTION_SUPERVISE || h.Role != pb.Role_ROLE_SYSTEM || !strings.HasPrefix(h.Note, workflow.OverdueNote) {
		t.Fatalf("history entry %v", h)
	}
	// The same mark again (a retry after a leader change) replays; a mark
	// with another request id is refused: once per deadline.
	if again := mustApply(t, f, 6, markCmd(id, stamp+60*minute, stamp+62*minute)); !again.Replayed {
		t.Fatal("a retried mark applied again")
	}
	other := markCmd(id, stamp+60*minute, stamp+63*minute)
	other.RequestId = "someone-else"
	refused(t, f, 7, other, workflow.ErrForbidden)
	// The mark travelled up with the case.
	if up := outbox(t, s, "city"); len(up) != 2 || !up[1].Case.Overdue {
		t.Fatalf("the overdue version was not queued to the city: %v", up)
	}
	// Filing starts a new stage deadline and clears the mark.
	file := act("file", stamp+70*minute, &pb.CaseAction{CaseId: id, Action: pb.Action_ACTION_FILE, Role: pb.Role_ROLE_SHIFT_LEADER, StageDeadlineUnixMs: stamp + 100*minute})
	if c := mustApply(t, f, 8, file).Case; c.Overdue || c.StageDeadline.AsTime().UnixMilli() != stamp+100*minute || c.OverdueCount != 1 {
		t.Fatalf("after filing: overdue %v stage %v count %d", c.Overdue, c.StageDeadline, c.OverdueCount)
	}
}

// A restore replaces the topology the state machine routes by: an FSM that
// routed as the city routes as the district after restoring the district's
// snapshot (the cached topology must not survive the store it came from).
func TestRestoreReplacesTheRoutingTopology(t *testing.T) {
	src := openStore(t)
	f1 := newFSM(t, src)
	mustApply(t, f1, 1, fedTopology("d-110105"))
	snap, err := f1.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	dst := openStore(t)
	f2 := newFSM(t, dst)
	mustApply(t, f2, 1, fedTopology("city"))
	if err := f2.Restore(&trackedReader{Reader: bytes.NewReader(sink.buf.Bytes())}); err != nil {
		t.Fatal(err)
	}
	r := mustApply(t, f2, 2, report("r1", stamp, "x"))
	if r.Case.Holder != "d-110105" {
		t.Fatalf("after restore the new case is held by %q, want d-110105", r.Case.Holder)
	}
	if up := outbox(t, dst, "city"); len(up) != 1 {
		t.Fatalf("the report was not queued to the district's parent: %v", up)
	}
}

// A batch of marks (the sweeper's) marks each due case once: a case not
// yet due, marked already, or unknown is skipped without failing the
// others, and the batch again changes nothing.
func TestMarkOverdueBatch(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	mustApply(t, f, 1, fedTopology("d-110105"))
	for i := 0; i < 3; i++ {
		rep := report(fmt.Sprintf("r%d", i), stamp, "x")
		rep.GetReport().StageDeadlineUnixMs = stamp + int64(60+i*60)*minute // 60, 120, 180 minutes
		mustApply(t, f, uint64(2+i), rep)
	}
	mustApply(t, f, 5, markCmd(caseID(1), stamp+60*minute, stamp+61*minute)) // case 1 marked alone first
	batch := func(at int64) *pb.Command {
		return &pb.Command{RequestId: "overdue/batch", StampedUnixMs: at, Body: &pb.Command_MarkOverdueBatch{MarkOverdueBatch: &pb.MarkOverdueBatch{Marks: []*pb.MarkOverdue{
			{CaseId: caseID(1), DeadlineUnixMs: stamp + 60*minute},  // marked already
			{CaseId: caseID(2), DeadlineUnixMs: stamp + 120*minute}, // due
			{CaseId: caseID(3), DeadlineUnixMs: stamp + 180*minute}, // not yet due at 150
			{CaseId: caseID(9), DeadlineUnixMs: stamp},              // no such case
			nil,
		}}}}
	}
	r := mustApply(t, f, 6, batch(stamp+150*minute))
	if r.Applied != 1 || r.Skipped != 4 {
		t.Fatalf("applied %d skipped %d, want 1 and 4", r.Applied, r.Skipped)
	}
	for i, want := range []bool{true, true, false} {
		c, err := s.GetCase(caseID(i + 1))
		if err != nil || c.Overdue != want || (want && c.OverdueCount != 1) {
			t.Fatalf("case %d: overdue %v count %d (%v), want %v", i+1, c.GetOverdue(), c.GetOverdueCount(), err, want)
		}
	}
	before := records(t, s, true)
	if r := mustApply(t, f, 7, batch(stamp+150*minute)); r.Applied != 0 {
		t.Fatalf("the batch again marked %d", r.Applied)
	}
	sameRecords(t, "the batch again", before, records(t, s, true))
}
