package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

func TestEmptyStore(t *testing.T) {
	s := openMem(t)
	_, err := s.GetCase("nope")
	mustNotFound(t, err, "get case")
	_, err = getRequest(t, s, "nope")
	mustNotFound(t, err, "get request")
	if idx, term, err := s.Applied(); err != nil || idx != 0 || term != 0 {
		t.Fatalf("applied = %d, %d, %v; want 0, 0, nil", idx, term, err)
	}
	if nodes, err := s.Nodes(); err != nil || len(nodes) != 0 {
		t.Fatalf("nodes = %v, %v", nodes, err)
	}
	if counts, err := s.CountByState(); err != nil || len(counts) != 0 {
		t.Fatalf("counts = %v, %v", counts, err)
	}
	if cases, next, err := s.List(store.Query{}); err != nil || len(cases) != 0 || next != "" {
		t.Fatalf("list = %v, %q, %v", cases, next, err)
	}
}

func TestUpdateErrorWritesNothing(t *testing.T) {
	s := openMem(t)
	boom := errors.New("boom")
	err := s.Update(func(tx *store.Tx) error {
		if err := tx.PutCase(nil, mkCase("c1", pb.State_STATE_REPORTED, "u", "g", t0)); err != nil {
			return err
		}
		if _, err := tx.NextSeq("p", "d"); err != nil {
			return err
		}
		if err := tx.SetApplied(3, 1); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("update err = %v, want boom", err)
	}
	if recs := parseSnapshot(t, snapshotBytes(t, s)); len(recs) != 0 {
		t.Fatalf("failed update left records: %q", recKeys(recs))
	}
}

func TestTxReadsItsOwnWrites(t *testing.T) {
	s := openMem(t)
	c := mkCase("c1", pb.State_STATE_REPORTED, "", "", 0)
	if err := s.Update(func(tx *store.Tx) error {
		if err := tx.PutCase(nil, c); err != nil {
			return err
		}
		got, err := tx.GetCase("c1")
		if err != nil || !proto.Equal(got, c) {
			return fmt.Errorf("read back in tx: %v, %v", got, err)
		}
		if err := tx.PutRequest("r1", &pb.RequestRecord{CaseId: "c1"}); err != nil {
			return err
		}
		if r, err := tx.GetRequest("r1"); err != nil || r.CaseId != "c1" {
			return fmt.Errorf("request in tx: %v, %v", r, err)
		}
		if err := tx.SetApplied(8, 3); err != nil {
			return err
		}
		if idx, term, err := tx.Applied(); err != nil || idx != 8 || term != 3 {
			return fmt.Errorf("applied in tx: %d %d %v", idx, term, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestNextSeqPerPrefixAndDate(t *testing.T) {
	s := openMem(t)
	for i := uint64(1); i <= 3; i++ {
		if got := nextSeq(t, s, "110105", "20260501"); got != i {
			t.Fatalf("110105/20260501 #%d = %d", i, got)
		}
	}
	if got := nextSeq(t, s, "110105", "20260502"); got != 1 {
		t.Fatalf("a new date starts at 1, got %d", got)
	}
	if got := nextSeq(t, s, "110106", "20260501"); got != 1 {
		t.Fatalf("a new prefix starts at 1, got %d", got)
	}
	// "2201" + "0520260501" and "220105" + "20260501" would share a key
	// if the separator were missing; they must not share a sequence.
	a := nextSeq(t, s, "2201", "0520260501")
	b := nextSeq(t, s, "220105", "20260501")
	if a != 1 || b != 1 {
		t.Fatalf("distinct prefix/date pairs share a sequence: %d, %d", a, b)
	}
	// A sequence allocated in a transaction that fails is given back.
	_ = s.Update(func(tx *store.Tx) error {
		if _, err := tx.NextSeq("110105", "20260501"); err != nil {
			return err
		}
		return errors.New("refused")
	})
	if got := nextSeq(t, s, "110105", "20260501"); got != 4 {
		t.Fatalf("after a rolled-back allocation: %d, want 4", got)
	}
}

func TestAppliedRoundTrip(t *testing.T) {
	s := openMem(t)
	for _, v := range [][2]uint64{{1, 1}, {1 << 40, 7}, {^uint64(0), ^uint64(0) - 1}} {
		setApplied(t, s, v[0], v[1])
		if idx, term, err := s.Applied(); err != nil || idx != v[0] || term != v[1] {
			t.Fatalf("applied = %d, %d, %v; want %d, %d", idx, term, err, v[0], v[1])
		}
	}
}

func TestNodesSortedAndReplaced(t *testing.T) {
	s := openMem(t)
	if err := s.Update(func(tx *store.Tx) error {
		for _, id := range []string{"n3", "n1", "n2"} {
			if err := tx.PutNode(&pb.NodeInfo{NodeId: id, RaftAddr: id + ":1"}); err != nil {
				return err
			}
		}
		return tx.PutNode(&pb.NodeInfo{NodeId: "n2", RaftAddr: "moved:1", GrpcAddr: "moved:2"})
	}); err != nil {
		t.Fatal(err)
	}
	nodes, err := s.Nodes()
	if err != nil {
		t.Fatal(err)
	}
	want := []*pb.NodeInfo{{NodeId: "n1", RaftAddr: "n1:1"}, {NodeId: "n2", RaftAddr: "moved:1", GrpcAddr: "moved:2"}, {NodeId: "n3", RaftAddr: "n3:1"}}
	if !slices.EqualFunc(nodes, want, func(a, b *pb.NodeInfo) bool { return proto.Equal(a, b) }) {
		t.Fatalf("nodes = %v, want %v", nodes, want)
	}
}

// PutCase moves every index entry and the per-state counters with the case.
func TestPutCaseMovesIndexEntries(t *testing.T) {
	s := openMem(t)
	other := mkCase(caseID("110105", 2), pb.State_STATE_REPORTED, "unit-b", "110105001001002", 0)
	putCase(t, s, nil, other)

	c := mkCase(caseID("110105", 1), pb.State_STATE_REPORTED, "", "110105001001001", 0)
	putCase(t, s, nil, c)
	state := []*pb.Case{other, c}
	check := func(step string) {
		t.Helper()
		checkIndexes(t, s, state)
		checkCounts(t, s, state)
		for _, q := range []store.Query{
			{State: pb.State_STATE_REPORTED}, {State: pb.State_STATE_DISPATCHED}, {State: pb.State_STATE_ACCEPTED}, {State: pb.State_STATE_CLOSED},
			{OwnerUnit: "unit-a"}, {OwnerUnit: "unit-b"},
			{GridPrefix: "110105001001001"}, {GridPrefix: "110105001001002"}, {GridPrefix: "110105"},
			{DueBefore: msTime(t0 + 11*minute)}, {DueBefore: msTime(t0 + 21*minute)},
		} {
			got := listAll(t, s, q)
			want := expectList(q, state)
			if !slices.Equal(ids(got), ids(want)) {
				t.Fatalf("%s: list %s = %q, want %q", step, describe(q), ids(got), ids(want))
			}
		}
	}
	check("reported")
	if got := listAll(t, s, store.Query{State: pb.State_STATE_REPORTED}); len(got) != 2 {
		t.Fatalf("fixture: %d reported, want 2", len(got))
	}

	move := func(step string, f func(c *pb.Case)) {
		t.Helper()
		old := c
		c = clone(old)
		f(c)
		c.Version++
		putCase(t, s, old, c)
		state[1] = c
		check(step)
	}
	move("dispatched", func(c *pb.Case) {
		c.State, c.OwnerUnit, c.Deadline = pb.State_STATE_DISPATCHED, "unit-a", ts(t0+10*minute)
	})
	if got := listAll(t, s, store.Query{State: pb.State_STATE_REPORTED}); len(got) != 1 || got[0].Id != other.Id {
		t.Fatalf("old state still lists the case: %q", ids(got))
	}
	move("same state, new unit, grid and deadline", func(c *pb.Case) {
		c.OwnerUnit, c.GridCode, c.Deadline = "unit-b", "110105001001002", ts(t0+20*minute)
	})
	if got := listAll(t, s, store.Query{DueBefore: msTime(t0 + 11*minute)}); len(got) != 0 {
		t.Fatalf("old deadline still lists the case: %q", ids(got))
	}
	move("accepted", func(c *pb.Case) { c.State = pb.State_STATE_ACCEPTED })
	move("unit dropped", func(c *pb.Case) { c.OwnerUnit = "" })
	move("grid dropped", func(c *pb.Case) { c.GridCode = "" })
	move("deadline dropped", func(c *pb.Case) { c.Deadline = nil })
	move("back in work", func(c *pb.Case) {
		c.State, c.OwnerUnit, c.GridCode, c.Deadline = pb.State_STATE_DISPATCHED, "unit-a", "110105001001001", ts(t0+5*minute)
	})
	move("closed", func(c *pb.Case) { c.State = pb.State_STATE_CLOSED }) // keeps its deadline
	if got := listAll(t, s, store.Query{DueBefore: msTime(t0 + 1000*minute)}); len(got) != 0 {
		t.Fatalf("closed case still in the due index: %q", ids(got))
	}
	counts, err := s.CountByState()
	if err != nil {
		t.Fatal(err)
	}
	if counts[pb.State_STATE_CLOSED] != 1 || counts[pb.State_STATE_DISPATCHED] != 0 || counts[pb.State_STATE_ACCEPTED] != 0 || counts[pb.State_STATE_REPORTED] != 1 {
		t.Fatalf("counts after closing: %v", counts)
	}
	// The case itself is the last version written.
	if got, err := s.GetCase(c.Id); err != nil || !proto.Equal(got, c) {
		t.Fatalf("get: %v, %v", got, err)
	}
}

// Many random moves in one transaction keep the indexes and counters exact.
func TestPutCaseRandomMovesInOneTransaction(t *testing.T) {
	s := openMem(t)
	rng := rand.New(rand.NewPCG(21, 22))
	all := randomCases(rng, 100)
	putCases(t, s, all)
	if err := s.Update(func(tx *store.Tx) error {
		for range 500 {
			i := rng.IntN(len(all))
			c := randomize(rng, clone(all[i]))
			if err := tx.PutCase(all[i], c); err != nil {
				return err
			}
			all[i] = c
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	checkIndexes(t, s, all)
	checkCounts(t, s, all)
}

func TestReopenKeepsState(t *testing.T) {
	dir := t.TempDir()
	s := openDisk(t, dir)
	fx := populate(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openDisk(t, dir)
	defer s.Close()
	checkFixture(t, s, fx)
}

// NodesGeneration moves with a commit that registers a replica and with a
// restore, not with other commits: what the leader keeps of Nodes until
// it moves (the version gate) is never older than the store.
func TestNodesGenerationMovesWithTheReplicas(t *testing.T) {
	s := openMem(t)
	g0 := s.NodesGeneration()
	put := func(fn func(tx *store.Tx) error) {
		t.Helper()
		if err := s.Update(fn); err != nil {
			t.Fatal(err)
		}
	}
	put(func(tx *store.Tx) error {
		return tx.PutCase(nil, mkCase("110105-20261206-000001", pb.State_STATE_REPORTED, "", "", t0))
	})
	if g := s.NodesGeneration(); g != g0 {
		t.Fatalf("a case moved the generation: %d → %d", g0, g)
	}
	put(func(tx *store.Tx) error { return tx.PutNode(&pb.NodeInfo{NodeId: "n1", LogVersion: 3}) })
	g1 := s.NodesGeneration()
	if g1 == g0 {
		t.Fatal("registering a replica left the generation")
	}
	// A failed transaction wrote nothing.
	_ = s.Update(func(tx *store.Tx) error {
		_ = tx.PutNode(&pb.NodeInfo{NodeId: "n2"})
		return errors.New("refused")
	})
	if g := s.NodesGeneration(); g != g1 {
		t.Fatalf("a failed registration moved the generation: %d → %d", g1, g)
	}
	if err := s.Restore(bytes.NewReader(snapshotBytes(t, openMem(t)))); err != nil {
		t.Fatal(err)
	}
	if g := s.NodesGeneration(); g == g1 {
		t.Fatal("a restore left the generation")
	}
	if nodes, err := s.Nodes(); err != nil || len(nodes) != 0 {
		t.Fatalf("after restoring an empty store: %v %v", nodes, err)
	}
}
