package fsm_test

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/store"
)

func repairCmd(from string, at int64, cases []*pb.Case, drop ...string) *pb.Command {
	return &pb.Command{StampedUnixMs: at, Body: &pb.Command_Repair{Repair: &pb.RepairCases{From: from, Cases: cases, Drop: drop}}}
}

// mirrorOf is a copy of a case reported at the city and held by the
// community below the district (the district is on its way).
func mirrorOf(n int, epoch, version uint64, desc string) *pb.Case {
	id := "110100-" + date + "-00000" + string(rune('0'+n))
	return &pb.Case{
		Id: id, State: pb.State_STATE_DISPATCHED, GridCode: "110105001001009", Description: desc,
		ReportedAtNode: "110100", Holder: "c-110105001001", HolderEpoch: epoch, Version: version,
		OwnerUnit: "c-grid",
	}
}

func storedCase(tb testing.TB, s *store.Store, id string) *pb.Case {
	tb.Helper()
	c, err := s.GetCase(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func digestOf(tb testing.TB, s *store.Store, id string) (store.Digest, bool) {
	tb.Helper()
	var (
		got   store.Digest
		found bool
	)
	if err := s.Digests(func(k string, d store.Digest) error {
		if k == id {
			got, found = d, true
		}
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	return got, found
}

// checkDigest asserts the digest index agrees with the stored case.
func checkDigest(tb testing.TB, s *store.Store, c *pb.Case) {
	tb.Helper()
	d, ok := digestOf(tb, s, c.Id)
	h, err := store.HashCase(c)
	if err != nil {
		tb.Fatal(err)
	}
	if !ok || d.Epoch != c.HolderEpoch || d.Version != c.Version || d.Hash != h || d.Holder != c.Holder || d.ReportedAt != c.ReportedAtNode {
		tb.Fatalf("digest of %s: %+v (found %v), case epoch %d version %d hash %x", c.Id, d, ok, c.HolderEpoch, c.Version, h)
	}
}

func TestRepairWritesAMissingCopyAndPassesItOn(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	mustApply(t, f, 1, fedTopology("d-110105"))
	c := mirrorOf(1, 2, 3, "lost here")
	r := mustApply(t, f, 2, repairCmd("city", stamp, []*pb.Case{proto.Clone(c).(*pb.Case)}))
	if r.Skipped != 0 {
		t.Fatalf("skipped %d", r.Skipped)
	}
	if got := storedCase(t, s, c.Id); !proto.Equal(got, c) {
		t.Fatalf("stored %v, want %v", got, c)
	}
	checkDigest(t, s, c)
	counts, err := s.CountByState()
	if err != nil || counts[pb.State_STATE_DISPATCHED] != 1 {
		t.Fatalf("counts %v, %v", counts, err)
	}
	// New here, so it travels on toward the holder like a delivery would,
	// and never back to the city it came from.
	down, up := outbox(t, s, "s-110105001"), outbox(t, s, "city")
	if len(down) != 1 || !proto.Equal(down[0].Case, c) || len(up) != 0 {
		t.Fatalf("outbox after repair: down %v, up %v", down, up)
	}
	// The same repair again changes nothing and queues nothing.
	r = mustApply(t, f, 3, repairCmd("city", stamp, []*pb.Case{proto.Clone(c).(*pb.Case)}))
	if r.Skipped != 1 || len(outbox(t, s, "s-110105001")) != 1 {
		t.Fatalf("repeated repair: skipped %d, outbox %d", r.Skipped, len(outbox(t, s, "s-110105001")))
	}
	// A delivery of the version the repair already brought is not newer.
	hw := mustApply(t, f, 4, deliverCmd("city", stamp, &pb.LinkEntry{Seq: 1, Case: proto.Clone(c).(*pb.Case), Origin: "city"}))
	if hw.Skipped != 1 || hw.HighWater != 1 || len(outbox(t, s, "s-110105001")) != 1 {
		t.Fatalf("delivery after repair: %+v", hw)
	}
}

func TestRepairReplacesADivergentMirrorInPlace(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	mustApply(t, f, 1, fedTopology("d-110105"))
	good := mirrorOf(1, 2, 3, "the real description")
	mustApply(t, f, 2, deliverCmd("city", stamp, &pb.LinkEntry{Seq: 1, Case: proto.Clone(good).(*pb.Case), Origin: "city"}))
	queued := len(outbox(t, s, "s-110105001"))
	// Damage the mirror behind the state machine's back (a bug, a disk).
	bad := proto.Clone(good).(*pb.Case)
	bad.Description, bad.State = "garbled", pb.State_STATE_FILED
	if err := s.Update(func(tx *store.Tx) error { return tx.PutCase(good, bad) }); err != nil {
		t.Fatal(err)
	}
	r := mustApply(t, f, 3, repairCmd("s-110105001", stamp, []*pb.Case{proto.Clone(good).(*pb.Case)}))
	if r.Skipped != 0 {
		t.Fatalf("skipped %d", r.Skipped)
	}
	if got := storedCase(t, s, good.Id); !proto.Equal(got, good) {
		t.Fatalf("stored %v, want %v", got, good)
	}
	checkDigest(t, s, good)
	counts, _ := s.CountByState()
	if counts[pb.State_STATE_DISPATCHED] != 1 || counts[pb.State_STATE_FILED] != 0 {
		t.Fatalf("state counts after repair: %v", counts)
	}
	// Same version: nothing for the neighbours.
	if n := len(outbox(t, s, "s-110105001")) + len(outbox(t, s, "city")); n != queued {
		t.Fatalf("a same-version repair queued %d entries", n-queued)
	}
}

func TestRepairNeverRollsBackAHeldCase(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	mustApply(t, f, 1, fedTopology("d-110105"))
	mustApply(t, f, 2, report("r1", stamp, "held here"))
	mustApply(t, f, 3, act("file", stamp+minute, &pb.CaseAction{CaseId: caseID(1), Action: pb.Action_ACTION_FILE, Role: pb.Role_ROLE_SHIFT_LEADER}))
	held := storedCase(t, s, caseID(1))
	if held.Holder != "d-110105" || held.Version != 2 {
		t.Fatalf("fixture: %v", held)
	}
	older := proto.Clone(held).(*pb.Case)
	older.Version, older.State, older.History = 1, pb.State_STATE_REPORTED, older.History[:1]
	before := records(t, s, true)
	r := mustApply(t, f, 4, repairCmd("city", stamp, []*pb.Case{older}))
	if r.Skipped != 1 {
		t.Fatalf("rollback of a held case: skipped %d", r.Skipped)
	}
	sameRecords(t, "after a refused rollback", before, records(t, s, true))
	// A newer copy of a case held here is taken (this node lost versions it
	// made; the neighbour's mirror has them).
	newer := proto.Clone(held).(*pb.Case)
	newer.Version, newer.State = 3, pb.State_STATE_DISPATCHED
	r = mustApply(t, f, 5, repairCmd("city", stamp, []*pb.Case{proto.Clone(newer).(*pb.Case)}))
	if r.Skipped != 0 || !proto.Equal(storedCase(t, s, newer.Id), newer) {
		t.Fatalf("newer copy of a held case: skipped %d, stored %v", r.Skipped, storedCase(t, s, newer.Id))
	}
}

func TestRepairDropsStrayMirrorsButNeverAHeldCase(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	mustApply(t, f, 1, fedTopology("d-110105"))
	mustApply(t, f, 2, report("r1", stamp, "held here"))
	stray := mirrorOf(2, 2, 3, "stray")
	mustApply(t, f, 3, deliverCmd("city", stamp, &pb.LinkEntry{Seq: 1, Case: stray, Origin: "city"}))
	if storedCase(t, s, stray.Id) == nil {
		t.Fatal("fixture: no mirror")
	}
	r := mustApply(t, f, 4, repairCmd("s-110105001", stamp, nil, stray.Id, caseID(1), "110100-"+date+"-999999", "bad/id", ""))
	if r.Skipped != 4 {
		t.Fatalf("skipped %d, want 4 (held, absent, two malformed)", r.Skipped)
	}
	if storedCase(t, s, stray.Id) != nil {
		t.Fatal("stray mirror still there")
	}
	if _, ok := digestOf(t, s, stray.Id); ok {
		t.Fatal("stray mirror's digest still there")
	}
	if storedCase(t, s, caseID(1)) == nil {
		t.Fatal("the held case was dropped")
	}
	counts, _ := s.CountByState()
	if counts[pb.State_STATE_DISPATCHED] != 0 || counts[pb.State_STATE_REPORTED] != 1 {
		t.Fatalf("state counts after drop: %v", counts)
	}
	// Nothing of the dropped mirror is left in any index.
	for k := range records(t, s, true) {
		if strings.Contains(k, stray.Id) && !strings.HasPrefix(k, "o/") {
			t.Fatalf("key %q of the dropped mirror is left", k)
		}
	}
}

func TestRepairSkipsMalformedCopies(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	mustApply(t, f, 1, fedTopology("d-110105"))
	noHolder := mirrorOf(1, 2, 3, "x")
	noHolder.Holder = ""
	noVersion := mirrorOf(2, 2, 0, "x")
	noEpoch := mirrorOf(3, 0, 1, "x")
	badID := mirrorOf(4, 2, 3, "x")
	badID.Id = "110100/x"
	longGrid := mirrorOf(5, 2, 3, "x")
	longGrid.GridCode = strings.Repeat("1", 5000)
	good := mirrorOf(6, 2, 3, "x")
	before := records(t, s, true)
	r := mustApply(t, f, 2, repairCmd("city", stamp, []*pb.Case{nil, noHolder, noVersion, noEpoch, badID, longGrid, good}))
	if r.Skipped != 6 {
		t.Fatalf("skipped %d, want 6", r.Skipped)
	}
	after := records(t, s, true)
	if storedCase(t, s, good.Id) == nil {
		t.Fatal("the good copy was not written")
	}
	for k := range after {
		if _, ok := before[k]; !ok && strings.Contains(k, "-00000") && !strings.Contains(k, good.Id) {
			t.Fatalf("a malformed copy left key %q", k)
		}
	}
}

func TestRepairOnlyFromANeighbour(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	refused(t, f, 1, repairCmd("city", stamp, []*pb.Case{mirrorOf(1, 2, 3, "x")}), fsm.ErrNotFederated)
	mustApply(t, f, 2, fedTopology("d-110105"))
	before := records(t, s, true)
	for i, from := range []string{"c-110105001001", "nowhere", "", "d-110105"} {
		refused(t, f, uint64(3+i), repairCmd(from, stamp, []*pb.Case{mirrorOf(1, 2, 3, "x")}, "110100-"+date+"-000001"), fsm.ErrBadCommand)
	}
	sameRecords(t, "after refused repairs", before, records(t, s, true))
}

// Two replicas applying the same log with repairs end with the same bytes.
func TestRepairIsDeterministic(t *testing.T) {
	log := []*pb.Command{
		fedTopology("d-110105"),
		report("r1", stamp, "x"),
		deliverCmd("city", stamp+1, &pb.LinkEntry{Seq: 1, Case: mirrorOf(1, 2, 3, "a"), Origin: "city"}),
		deliverCmd("city", stamp+2, &pb.LinkEntry{Seq: 2, Case: mirrorOf(2, 2, 3, "b"), Origin: "city"}),
		repairCmd("city", stamp+3, []*pb.Case{mirrorOf(1, 2, 4, "a2"), mirrorOf(3, 2, 1, "c"), mirrorOf(1, 2, 4, "a3")}, mirrorOf(2, 0, 0, "").Id, caseID(1)),
		repairCmd("s-110105001", stamp+4, []*pb.Case{mirrorOf(2, 3, 1, "b back")}),
	}
	var recs []map[string]string
	for k := 0; k < 2; k++ {
		s := openStore(t)
		f := newFSM(t, s)
		for i, c := range log {
			mustApply(t, f, uint64(i+1), proto.Clone(c).(*pb.Command))
		}
		recs = append(recs, records(t, s, false))
		if c := storedCase(t, s, mirrorOf(1, 0, 0, "").Id); c.GetDescription() != "a3" {
			t.Fatalf("later copy in one repair: %v", c)
		}
		if c := storedCase(t, s, mirrorOf(2, 0, 0, "").Id); c.GetDescription() != "b back" {
			t.Fatalf("dropped then restored: %v", c)
		}
	}
	sameRecords(t, "two replicas", recs[0], recs[1])
}
