package fsm_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/store"
)

// Tests of reconciliation batches (reconcile.go): each move applies as the
// ordinary workflow action, planned against one copy of its case; a move
// whose case changed, is missing, is held elsewhere or whose action the
// workflow refuses is skipped and writes nothing.

func reconcileCmd(run string, at int64, moves ...*pb.ReconcileMove) *pb.Command {
	// The reconciler sends every batch of a run under one request id.
	return &pb.Command{RequestId: "reconcile/" + run, StampedUnixMs: at, StampedBy: "node-1",
		Body: &pb.Command_Reconcile{Reconcile: &pb.ReconcileCases{RunId: run, Moves: moves}}}
}

func runMark(r *pb.ReconcileRun) *pb.Command {
	return &pb.Command{Body: &pb.Command_ReconcileRun{ReconcileRun: &pb.ReconcileRunMark{Run: r}}}
}

// move plans action a (nil: PENDING, nothing to do) against c as stored.
// The action and the record name no case: Apply takes the move's.
func move(c *pb.Case, outcome pb.ReconcileOutcome, a *pb.CaseAction) *pb.ReconcileMove {
	if a != nil {
		a.Actor = "reconciler"
	}
	return &pb.ReconcileMove{CaseId: c.Id, ExpectedEpoch: c.HolderEpoch, ExpectedVersion: c.Version, Outcome: outcome, Action: a,
		Record: &pb.ReconcileRecord{Kind: c.Kind, ClassCode: c.MajorCode + c.MinorCode, FromNode: c.Holder, FromUnit: c.OwnerUnit,
			Outcome: outcome, Action: a.GetAction(), Rule: "rule-of-" + c.Id, Reason: "planned for " + c.Id}}
}

func transferUp() *pb.CaseAction {
	return &pb.CaseAction{Action: pb.Action_ACTION_TRANSFER_UP, Role: pb.Role_ROLE_SHIFT_LEADER, Note: "owned by the city",
		Ownership: stamped("city-water", "city", pb.Tier_TIER_CITY, "water-01")}
}

func reconcileRecords(tb testing.TB, s *store.Store, run string) []*pb.ReconcileRecord {
	tb.Helper()
	var out []*pb.ReconcileRecord
	if err := s.View(func(tx *store.Tx) error {
		return tx.ReconcileRecords(run, func(r *pb.ReconcileRecord) error {
			out = append(out, r)
			return nil
		})
	}); err != nil {
		tb.Fatal(err)
	}
	return out
}

func hasRecord(tb testing.TB, s *store.Store, run, id string) bool {
	tb.Helper()
	var ok bool
	if err := s.View(func(tx *store.Tx) (err error) {
		ok, err = tx.HasReconcileRecord(run, id)
		return err
	}); err != nil {
		tb.Fatal(err)
	}
	return ok
}

// keysOf keeps the records whose key names case id (the case, its digest,
// its index entries, run records).
func keysOf(recs map[string]string, id string) map[string]string {
	out := map[string]string{}
	for k, v := range recs {
		if strings.Contains(k, id) {
			out[k] = v
		}
	}
	return out
}

// reconcileFixture builds, at the district, one case per kind of move:
//
//	1 FILED          → transfer up (moved, to the city)
//	2 DISPATCHED     → reassign to d-roads (moved)
//	3 FILED          → refer to review (disputed)
//	4 RETURN_REQ.    → deny the return (rejected)
//	5 HANDLED        → pending: no action
//	6, 7 FILED       → transfer up planned against a stale version / epoch
//	8 DISPATCHED     → to c-grid: held by the community (a mirror here)
//	9 FILED          → deny return: the workflow refuses it (recorded as failed)
//	10 FILED         → a move without a record
//	11 DISPATCHED    → to s-squad: held by the street; pending here
//
// plus a move for a case that does not exist and one with a bad id.
func reconcileFixture(t *testing.T) (*fedLog, []*pb.ReconcileMove, []string, []string) {
	t.Helper()
	l := newFedLog(t, "d-110105")
	for i := 1; i <= 11; i++ {
		l.ok(report(fmt.Sprint("r", i), stamp, fmt.Sprint("case ", i)))
		l.ok(fileCmd(fmt.Sprint("f", i), caseID(i), nil))
	}
	l.ok(dispatchCmd("d2", caseID(2), "paper-unit"))
	l.ok(dispatchCmd("d4", caseID(4), "d-roads"))
	l.ok(acceptCmd("a4", caseID(4)))
	l.ok(requestReturnCmd("rr4", caseID(4), "not ours"))
	l.ok(dispatchCmd("d5", caseID(5), "d-roads"))
	l.ok(acceptCmd("a5", caseID(5)))
	l.ok(ownAct("h5", caseID(5), pb.Action_ACTION_HANDLE, pb.Role_ROLE_HANDLING_UNIT, "done", "", nil))
	l.ok(dispatchCmd("d8", caseID(8), "c-grid"))
	l.ok(dispatchCmd("d11", caseID(11), "s-squad"))

	c := func(n int) *pb.Case { return l.get(caseID(n)) }
	stale := move(c(6), pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED, transferUp())
	stale.ExpectedVersion--
	staleEpoch := move(c(7), pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED, transferUp())
	staleEpoch.ExpectedEpoch++
	missing := move(c(1), pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED, transferUp())
	missing.CaseId = caseID(99)
	badID := move(c(1), pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED, transferUp())
	badID.CaseId = "../" + caseID(1)
	noRecord := move(c(10), pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED, transferUp())
	noRecord.Record = nil
	moves := []*pb.ReconcileMove{
		move(c(1), pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED, transferUp()),
		stale,
		move(c(2), pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED, &pb.CaseAction{Action: pb.Action_ACTION_REASSIGN, Role: pb.Role_ROLE_DISPATCHER,
			Note: "the catalogue names d-roads", Unit: "d-roads", UnitTier: pb.Tier_TIER_DISTRICT, DeadlineUnixMs: stamp + 500*minute}),
		missing,
		move(c(3), pb.ReconcileOutcome_RECONCILE_OUTCOME_DISPUTED, &pb.CaseAction{Action: pb.Action_ACTION_REFER_REVIEW, Role: pb.Role_ROLE_SHIFT_LEADER,
			Note: "rules disagree"}),
		staleEpoch,
		move(c(4), pb.ReconcileOutcome_RECONCILE_OUTCOME_REJECTED, &pb.CaseAction{Action: pb.Action_ACTION_DENY_RETURN, Role: pb.Role_ROLE_DISPATCHER,
			Note: "the catalogue names you"}),
		move(c(8), pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED, &pb.CaseAction{Action: pb.Action_ACTION_REASSIGN, Role: pb.Role_ROLE_DISPATCHER,
			Note: "x", Unit: "d-roads", DeadlineUnixMs: stamp + 500*minute}),
		move(c(5), pb.ReconcileOutcome_RECONCILE_OUTCOME_PENDING, nil),
		move(c(9), pb.ReconcileOutcome_RECONCILE_OUTCOME_REJECTED, &pb.CaseAction{Action: pb.Action_ACTION_DENY_RETURN, Role: pb.Role_ROLE_DISPATCHER}),
		badID,
		noRecord,
		move(c(11), pb.ReconcileOutcome_RECONCILE_OUTCOME_PENDING, nil),
	}
	applied := []string{caseID(1), caseID(2), caseID(3), caseID(4), caseID(5)}
	skipped := []string{caseID(6), caseID(7), caseID(8), caseID(10), caseID(11), caseID(99)}
	return l, moves, applied, skipped
}

func TestReconcileAppliesMovesAndSkipsStaleOnes(t *testing.T) {
	l, moves, applied, skipped := reconcileFixture(t)
	before := map[string]*pb.Case{}
	for _, c := range allCases(t, l.s) {
		before[c.Id] = c
	}
	recsBefore := records(t, l.s, true)
	upBefore := len(outbox(t, l.s, "city"))
	downBefore := len(outbox(t, l.s, "s-110105001"))

	r := l.ok(reconcileCmd("run-1", stamp+10*minute, moves...))
	if r.Applied != len(applied) || r.Failed != 1 || r.Skipped != len(moves)-len(applied)-1 {
		t.Fatalf("applied %d, failed %d, skipped %d; want %d, 1, %d", r.Applied, r.Failed, r.Skipped, len(applied), len(moves)-len(applied)-1)
	}

	// Each move took effect as its workflow action, routed and settled.
	c1 := l.get(caseID(1))
	if c1.Holder != "city" || c1.HolderEpoch != 2 || c1.State != pb.State_STATE_FILED || c1.Version != before[caseID(1)].Version+1 {
		t.Errorf("transfer up: holder %q epoch %d state %s version %d", c1.Holder, c1.HolderEpoch, c1.State, c1.Version)
	}
	if c1.GetOwnership().GetUnit() != "city-water" {
		t.Errorf("transfer up did not record the stamped owner: %v", c1.Ownership)
	}
	if h := c1.History[len(c1.History)-1]; h.Action != pb.Action_ACTION_TRANSFER_UP || h.Actor != "reconciler" || h.RequestId != "reconcile/run-1" {
		t.Errorf("transfer up history entry %v", h)
	}
	if c2 := l.get(caseID(2)); c2.OwnerUnit != "d-roads" || c2.State != pb.State_STATE_DISPATCHED || c2.Holder != "d-110105" {
		t.Errorf("reassign: unit %q state %s holder %q", c2.OwnerUnit, c2.State, c2.Holder)
	}
	if c3 := l.get(caseID(3)); !c3.GetOwnership().GetInReview() || c3.Holder != "city" || c3.HolderEpoch != 2 {
		t.Errorf("refer to review: ownership %v holder %q epoch %d", c3.Ownership, c3.Holder, c3.HolderEpoch)
	}
	if c4 := l.get(caseID(4)); c4.State != pb.State_STATE_ACCEPTED || c4.Pending != nil {
		t.Errorf("deny return: state %s pending %v", c4.State, c4.Pending)
	}
	if c5 := l.get(caseID(5)); !proto.Equal(c5, before[caseID(5)]) {
		t.Errorf("a pending move changed its case")
	}
	// Cases 1 and 3 went up (the hand-offs); nothing went down.
	if up := outbox(t, l.s, "city"); len(up) <= upBefore {
		t.Errorf("nothing queued to the city")
	}
	if down := outbox(t, l.s, "s-110105001"); len(down) != downBefore {
		t.Errorf("%d entries queued down", len(down)-downBefore)
	}

	// One record per applied or refused case, under the run, naming its
	// case; the refused move is recorded as failed with the refusal, and
	// its case is unchanged.
	recs := reconcileRecords(t, l.s, "run-1")
	var got []string
	for _, rec := range recs {
		got = append(got, rec.CaseId)
	}
	if want := append(slices.Clone(applied), caseID(9)); !slices.Equal(got, want) {
		t.Fatalf("records for %q, want %q", got, want)
	}
	if c9 := l.get(caseID(9)); !proto.Equal(c9, before[caseID(9)]) {
		t.Errorf("a refused move changed its case")
	}
	for _, rec := range recs {
		if rec.CaseId == caseID(9) {
			if rec.Outcome != pb.ReconcileOutcome_RECONCILE_OUTCOME_FAILED || !strings.Contains(rec.Reason, "ACTION_DENY_RETURN refused") ||
				!strings.Contains(rec.Reason, "forbidden") {
				t.Errorf("refused move recorded as %v: %q", rec.Outcome, rec.Reason)
			}
			continue
		}
		for _, m := range moves {
			if m.CaseId != rec.CaseId {
				continue
			}
			want := proto.Clone(m.Record).(*pb.ReconcileRecord)
			want.CaseId = m.CaseId
			if !proto.Equal(rec, want) {
				t.Errorf("record %s:\n got  %v\n want %v", rec.CaseId, rec, want)
			}
		}
	}

	// Skipped moves wrote nothing for their cases: no key naming them
	// changed, no record, nothing queued.
	after := records(t, l.s, true)
	for _, id := range skipped {
		if hasRecord(t, l.s, "run-1", id) {
			t.Errorf("skipped case %s has a record", id)
		}
		sameRecords(t, "records of skipped case "+id, keysOf(recsBefore, id), keysOf(after, id))
	}
	for _, e := range outbox(t, l.s, "city")[upBefore:] {
		if slices.Contains(skipped, e.Case.Id) {
			t.Errorf("skipped case %s was queued", e.Case.Id)
		}
	}
	if _, ok := after["c/../"+caseID(1)]; ok {
		t.Error("a move with a bad id wrote a case")
	}
}

// A batch applied again (a retry after a lost answer) moves nothing twice.
func TestReconcileBatchAgainChangesNothing(t *testing.T) {
	l, moves, applied, _ := reconcileFixture(t)
	cmd := reconcileCmd("run-1", stamp+10*minute, moves...)
	l.ok(cmd)
	before := records(t, l.s, true)
	r := l.ok(reconcileCmd("run-1", stamp+11*minute, moves...))
	// Every move with an action now meets a newer copy. The pending move
	// (no action) may record itself again, identically.
	// The refused move is refused again and records itself again,
	// identically.
	if r.Skipped < len(moves)-2 || r.Failed != 1 || r.Applied+r.Skipped+r.Failed != len(moves) {
		t.Fatalf("again: applied %d, failed %d, skipped %d of %d moves", r.Applied, r.Failed, r.Skipped, len(moves))
	}
	sameRecords(t, "after the same batch again", before, records(t, l.s, true))
	if got := reconcileRecords(t, l.s, "run-1"); len(got) != len(applied)+1 {
		t.Fatalf("%d records after the batch again, want %d", len(got), len(applied)+1)
	}

	// The same request id with other moves (the next batch of the run)
	// is not a replay: batches are idempotent by their expected versions.
	c6 := l.get(caseID(6))
	r = l.ok(reconcileCmd("run-1", stamp+12*minute, move(c6, pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED, transferUp())))
	if r.Replayed || r.Applied != 1 || l.get(caseID(6)).Holder != "city" || !hasRecord(t, l.s, "run-1", caseID(6)) {
		t.Fatalf("next batch under the run's request id: %+v, holder %q", r, l.get(caseID(6)).Holder)
	}
}

func TestReconcileRefusesBadRunIDs(t *testing.T) {
	l := newFedLog(t, "d-110105")
	l.ok(report("r1", stamp, "x"))
	l.ok(fileCmd("f1", caseID(1), nil))
	c := l.get(caseID(1))
	before := records(t, l.s, true)
	for _, bad := range []string{"", strings.Repeat("a", 65), "run/1", "run\x001", "run 1", "运行"} {
		m := move(c, pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED, transferUp())
		l.refuse(reconcileCmd(bad, stamp, m), fsm.ErrBadCommand)
		l.refuse(runMark(&pb.ReconcileRun{RunId: bad, Node: "d-110105"}), fsm.ErrBadCommand)
		sameRecords(t, fmt.Sprintf("after run id %q", bad), before, records(t, l.s, true))
	}
	l.refuse(runMark(nil), fsm.ErrBadCommand)
	// The longest id, and every allowed character.
	long := strings.Repeat("r", 60) + "-_.9"
	l.ok(runMark(&pb.ReconcileRun{RunId: long, Node: "d-110105"}))
	if r := l.ok(reconcileCmd(long, stamp, move(c, pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED, transferUp()))); r.Applied != 1 {
		t.Fatalf("a 64-character run id: %+v", r)
	}
}

func TestReconcileRunMarks(t *testing.T) {
	l := newFedLog(t, "d-110105")
	runs := func() []*pb.ReconcileRun {
		var out []*pb.ReconcileRun
		if err := l.s.View(func(tx *store.Tx) (err error) {
			out, err = tx.ReconcileRuns()
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	start := &pb.ReconcileRun{RunId: "run-2", Node: "d-110105", StartedUnixMs: stamp}
	l.ok(runMark(start))
	l.ok(runMark(&pb.ReconcileRun{RunId: "run-1", Node: "d-110105", StartedUnixMs: stamp - minute}))
	done := proto.Clone(start).(*pb.ReconcileRun)
	done.Finished, done.FinishedUnixMs, done.Scanned, done.InPlace = true, stamp+minute, 12, 7
	l.ok(runMark(done))
	got := runs()
	if len(got) != 2 || got[0].RunId != "run-1" || !proto.Equal(got[1], done) {
		t.Fatalf("runs %v", got)
	}
	if err := l.s.View(func(tx *store.Tx) error {
		r, err := tx.ReconcileRun("run-2")
		if err != nil || !proto.Equal(r, done) {
			return fmt.Errorf("run-2: %v %v", r, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// Two replicas applying the same log, one in a batch and one entry by
// entry, end with the same bytes.
func TestReconcileIsDeterministic(t *testing.T) {
	l, moves, _, _ := reconcileFixture(t)
	l.ok(runMark(&pb.ReconcileRun{RunId: "run-1", Node: "d-110105", StartedUnixMs: stamp}))
	l.ok(reconcileCmd("run-1", stamp+10*minute, moves...))
	l.ok(reconcileCmd("run-1", stamp+11*minute, moves...))
	l.ok(runMark(&pb.ReconcileRun{RunId: "run-1", Node: "d-110105", StartedUnixMs: stamp, Finished: true, FinishedUnixMs: stamp + 12*minute, Scanned: 12}))

	logs := make([]*raft.Log, 0, len(l.cmds))
	for i, c := range l.cmds {
		logs = append(logs, entry(uint64(i+1), encode(t, c)))
	}
	s1, s2 := openStore(t), openStore(t)
	f1, f2 := newFSM(t, s1), newFSM(t, s2)
	r1 := f1.ApplyBatch(logs)
	for i, e := range logs {
		a, b := result(t, r1[i]), result(t, f2.Apply(e))
		if fmt.Sprint(a.Err) != fmt.Sprint(b.Err) || a.Applied != b.Applied || a.Skipped != b.Skipped {
			t.Fatalf("entry %d: %+v vs %+v", i+1, a, b)
		}
	}
	snaps := [][]byte{snapshotBytes(t, l.s), snapshotBytes(t, s1), snapshotBytes(t, s2)}
	for i := 1; i < len(snaps); i++ {
		if !bytes.Equal(snaps[0], snaps[i]) {
			sameRecords(t, "replicas", records(t, l.s, false), records(t, []*store.Store{s1, s2}[i-1], false))
			t.Fatal("snapshots differ")
		}
	}
	if len(reconcileRecords(t, s1, "run-1")) == 0 {
		t.Fatal("weak fixture: no records")
	}
}
