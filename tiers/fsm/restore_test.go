package fsm_test

import (
	"errors"
	"fmt"
	"testing"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/store"
)

// caseEntry makes a link entry carrying version 1 of case seq reported and
// held at the city.
func caseEntry(seq uint64, caseSeq int) *pb.LinkEntry {
	return &pb.LinkEntry{Seq: seq, Origin: "city", Case: &pb.Case{
		Id: "110100-" + date + "-" + pad6(caseSeq), State: pb.State_STATE_REPORTED, GridCode: "110105001001009",
		ReportedAtNode: "110100", Holder: "city", HolderEpoch: 1, Version: 1,
	}}
}

func pad6(n int) string { return fmt.Sprintf("%06d", n) }

func deliverFrom(from string, inc, floor uint64, advance bool, entries ...*pb.LinkEntry) *pb.Command {
	return &pb.Command{StampedUnixMs: stamp, Body: &pb.Command_Deliver{Deliver: &pb.DeliverEntries{
		From: from, Entries: entries, Incarnation: inc, Floor: floor, Advance: advance}}}
}

// A sender restored from a backup numbers its outbox again from there: a
// new incarnation restarts the receiving mark at the sender's floor, so its
// new entries are applied instead of skipped as already seen; what the
// receiver had applied before is not newer and changes nothing.
func TestNewSenderIncarnationRestartsTheMark(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	mustApply(t, f, 1, fedTopology("d-110105"))
	mustApply(t, f, 2, deliverCmd("city", stamp, caseEntry(1, 1), caseEntry(2, 2), caseEntry(3, 3), caseEntry(4, 4), caseEntry(5, 5)))

	// The city was restored from a backup taken when it had queued 2
	// entries and had 1 acknowledged; its new life queues cases 6 and 7 as
	// entries 3 and 4.
	r := mustApply(t, f, 3, deliverFrom("city", 777, 1, false, caseEntry(2, 2), caseEntry(3, 6), caseEntry(4, 7)))
	if !r.Reset || r.Jumped != 0 || r.HighWater != 4 || r.Skipped != 1 {
		t.Fatalf("new incarnation: reset %v jumped %d high-water %d skipped %d; want reset, 0, 4, 1 (entry 2 not newer)", r.Reset, r.Jumped, r.HighWater, r.Skipped)
	}
	for _, n := range []int{6, 7} {
		if _, err := s.GetCase("110100-" + date + "-" + pad6(n)); err != nil {
			t.Errorf("case %d of the sender's new life: %v", n, err)
		}
	}
	ls, _ := s.Link("city")
	if ls.InHighWater != 4 || ls.InIncarnation != 777 {
		t.Fatalf("link from city: high-water %d incarnation %d", ls.InHighWater, ls.InIncarnation)
	}
	// The same incarnation again: ordinary deduplication.
	r = mustApply(t, f, 4, deliverFrom("city", 777, 1, false, caseEntry(4, 7), caseEntry(5, 8)))
	if r.Reset || r.HighWater != 5 || r.Skipped != 0 {
		t.Fatalf("same incarnation: reset %v high-water %d skipped %d", r.Reset, r.HighWater, r.Skipped)
	}
	// A sender that never was restored (incarnation 0) never resets a mark.
	r = mustApply(t, f, 5, deliverFrom("s-110105001", 0, 0, false))
	if r.Reset || r.HighWater != 0 {
		t.Fatalf("never restored: reset %v high-water %d", r.Reset, r.HighWater)
	}
}

// A receiver restored from an old backup answers a mark below what it
// acknowledged: without advance the batch stops at the gap (nothing is
// applied), with advance the mark moves up to the sender's floor and the
// entries between are counted as jumped.
func TestAdvanceMovesAMarkBelowTheFloor(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	mustApply(t, f, 1, fedTopology("d-110105"))
	mustApply(t, f, 2, deliverCmd("city", stamp, caseEntry(1, 1), caseEntry(2, 2)))
	r := mustApply(t, f, 3, deliverFrom("city", 0, 6, false, caseEntry(7, 7), caseEntry(8, 8)))
	if r.HighWater != 2 || r.Jumped != 0 {
		t.Fatalf("gap without advance: high-water %d jumped %d", r.HighWater, r.Jumped)
	}
	if _, err := s.GetCase("110100-" + date + "-000007"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an entry past a gap was applied: %v", err)
	}
	r = mustApply(t, f, 4, deliverFrom("city", 0, 6, true, caseEntry(7, 7), caseEntry(8, 8)))
	if r.HighWater != 8 || r.Jumped != 4 {
		t.Fatalf("advance: high-water %d jumped %d, want 8 and 4", r.HighWater, r.Jumped)
	}
	// An advance to a floor at or below the mark changes nothing.
	r = mustApply(t, f, 5, deliverFrom("city", 0, 3, true, caseEntry(9, 9)))
	if r.HighWater != 9 || r.Jumped != 0 {
		t.Fatalf("advance below the mark: high-water %d jumped %d", r.HighWater, r.Jumped)
	}
}

// A restored group: its first stamped command fixes the incarnation; until
// it has caught up with every neighbour it refuses reports and actions (in
// Apply and in the leader's precheck) but applies deliveries and repairs;
// a case id it gave out after the backup that comes back moves its
// sequence counter, so the next report does not take it again.
func TestRestoredGroupCatchesUpBeforeWrites(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	mustApply(t, f, 1, fedTopology("d-110105"))
	mustApply(t, f, 2, report("before", stamp, "before the backup"))
	if err := s.Update(func(tx *store.Tx) error {
		return tx.PutRestoreState(&pb.RestoreState{Index: 2, Term: 1, CatchingUp: true})
	}); err != nil {
		t.Fatal(err)
	}
	f = newFSM(t, s) // the restored group starts

	mustApply(t, f, 3, registerNode("n1")) // not stamped: no incarnation yet
	if rs, _ := s.RestoreState(); rs.Incarnation != 0 {
		t.Fatalf("incarnation %d from an unstamped command", rs.Incarnation)
	}
	rep := report("after", stamp+5*minute, "after the restore")
	r := refused(t, f, 4, rep, fsm.ErrCatchingUp)
	var cu *fsm.CatchingUpError
	if !errors.As(r.Err, &cu) || len(cu.Waiting) != 2 {
		t.Fatalf("refusal %v does not name the two neighbours", r.Err)
	}
	if rs, _ := s.RestoreState(); rs.Incarnation != uint64(stamp+5*minute) {
		t.Fatalf("incarnation %d, want the first stamped command's time %d", rs.Incarnation, stamp+5*minute)
	}
	if pre, err := fsm.Precheck(s, rep); err != nil || pre == nil || !errors.Is(pre.Err, fsm.ErrCatchingUp) {
		t.Fatalf("precheck: %v, %v; want ErrCatchingUp", pre, err)
	}
	refused(t, f, 5, act("act", stamp, &pb.CaseAction{CaseId: caseID(1), Action: pb.Action_ACTION_FILE, Role: pb.Role_ROLE_SHIFT_LEADER}), fsm.ErrCatchingUp)

	// The city returns case 9, which this node gave out after the backup.
	lost := &pb.Case{Id: caseID(9), State: pb.State_STATE_REPORTED, GridCode: "110105001001001", ReportedAtNode: prefix,
		Holder: "d-110105", HolderEpoch: 1, Version: 1}
	mustApply(t, f, 6, &pb.Command{StampedUnixMs: stamp, Body: &pb.Command_Repair{Repair: &pb.RepairCases{From: "city", Cases: []*pb.Case{lost}, CaughtUp: true}}})
	if rs, _ := s.RestoreState(); !rs.CatchingUp || len(rs.CaughtUp) != 1 {
		t.Fatalf("after the city: %v", rs)
	}
	refused(t, f, 7, report("after", stamp+6*minute, "after the restore"), fsm.ErrCatchingUp)
	mustApply(t, f, 8, &pb.Command{StampedUnixMs: stamp, Body: &pb.Command_Repair{Repair: &pb.RepairCases{From: "s-110105001", CaughtUp: true}}})
	if rs, _ := s.RestoreState(); rs.CatchingUp || rs.Incarnation != uint64(stamp+5*minute) {
		t.Fatalf("after every neighbour: %v", rs)
	}
	r = mustApply(t, f, 9, report("after", stamp+7*minute, "after the restore"))
	if r.Case.Id != caseID(10) {
		t.Fatalf("new report took id %s, want %s (past the id that came back)", r.Case.Id, caseID(10))
	}
}
