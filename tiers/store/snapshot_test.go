package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

// fixture is everything populate wrote, as the test expects to read it back.
type fixture struct {
	cases    map[string]*pb.Case
	requests map[string]*pb.RequestRecord
	nodes    []*pb.NodeInfo // sorted by id
	seqs     map[[2]string]uint64
	topology *pb.FederationTopology
	links    map[string]store.LinkState // by peer
	outbox   map[string][]*pb.LinkEntry
	counters map[string]int64                 // evaluation counters (e/)
	legacy   map[string]string                // legacy id → case id
	runs     []*pb.ReconcileRun               // sorted by id
	records  map[string][]*pb.ReconcileRecord // by run, sorted by case id
	index    uint64
	term     uint64
}

func (fx *fixture) caseList() []*pb.Case {
	out := make([]*pb.Case, 0, len(fx.cases))
	for _, c := range fx.cases {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Id < out[j].Id })
	return out
}

var allStates = []pb.State{
	pb.State_STATE_REPORTED, pb.State_STATE_VERIFIED, pb.State_STATE_FILED, pb.State_STATE_NOT_FILED,
	pb.State_STATE_DISPATCHED, pb.State_STATE_ACCEPTED, pb.State_STATE_RETURN_REQUESTED, pb.State_STATE_HANDLED,
	pb.State_STATE_CHECKED, pb.State_STATE_CLOSED, pb.State_STATE_SUSPENDED, pb.State_STATE_VOIDED,
}

var (
	units = []string{"", "unit-a", "unit-ab", "unit-b"}
	grids = []string{"", "110105001001001", "110105001001002", "110105002001001", "110106001001001", "120101001001001"}
)

// populate writes every record family through the Tx methods, including
// cases that later move between states, units, grids and deadlines.
func populate(t *testing.T, s *store.Store) *fixture {
	t.Helper()
	fx := &fixture{
		cases:    map[string]*pb.Case{},
		requests: map[string]*pb.RequestRecord{},
		seqs:     map[[2]string]uint64{},
	}
	for i := 1; i <= 48; i++ {
		var deadline int64
		if i%3 != 0 {
			deadline = t0 + int64(i%7)*minute // repeated deadlines: ties broken by id
		}
		c := mkCase(caseID("110105", i), allStates[i%len(allStates)], units[i%len(units)], grids[i%len(grids)], deadline)
		putCase(t, s, nil, c)
		fx.cases[c.Id] = c
	}
	// Move some cases: state, unit, grid and deadline change; some close
	// with a deadline still set (they must leave the due index).
	for i := 1; i <= 48; i += 5 {
		old := fx.cases[caseID("110105", i)]
		c := clone(old)
		c.State = allStates[(i+5)%len(allStates)]
		c.OwnerUnit = units[(i+1)%len(units)]
		c.GridCode = grids[(i+2)%len(grids)]
		c.Deadline = ts(t0 + int64(100+i)*minute)
		c.Version++
		putCase(t, s, old, c)
		fx.cases[c.Id] = c
	}
	for i := 2; i <= 48; i += 9 {
		old := fx.cases[caseID("110105", i)]
		c := clone(old)
		c.State = pb.State_STATE_CLOSED
		c.ClosedAt = ts(t0 + 2*minute)
		putCase(t, s, old, c)
		fx.cases[c.Id] = c
	}
	if err := s.Update(func(tx *store.Tx) error {
		for i := 1; i <= 20; i++ {
			id := fmt.Sprintf("req-%03d", i)
			r := &pb.RequestRecord{CaseId: caseID("110105", i), Version: uint64(i), Fingerprint: []byte{byte(i), 0, 0xff}, LogIndex: uint64(100 + i)}
			if err := tx.PutRequest(id, r); err != nil {
				return err
			}
			fx.requests[id] = r
		}
		for _, n := range []*pb.NodeInfo{
			{NodeId: "node-2", RaftAddr: "10.0.0.2:7000", GrpcAddr: "10.0.0.2:7001", HttpAddr: "10.0.0.2:7002"},
			{NodeId: "node-1", RaftAddr: "10.0.0.1:7000", GrpcAddr: "10.0.0.1:7001", HttpAddr: "10.0.0.1:7002"},
			{NodeId: "node-3", RaftAddr: "10.0.0.3:7000"},
		} {
			if err := tx.PutNode(n); err != nil {
				return err
			}
		}
		// Re-registering replaces the addresses.
		return tx.PutNode(&pb.NodeInfo{NodeId: "node-3", RaftAddr: "10.0.0.3:7000", GrpcAddr: "10.0.0.3:7101", HttpAddr: "10.0.0.3:7102"})
	}); err != nil {
		t.Fatalf("write requests and nodes: %v", err)
	}
	fx.nodes = []*pb.NodeInfo{
		{NodeId: "node-1", RaftAddr: "10.0.0.1:7000", GrpcAddr: "10.0.0.1:7001", HttpAddr: "10.0.0.1:7002"},
		{NodeId: "node-2", RaftAddr: "10.0.0.2:7000", GrpcAddr: "10.0.0.2:7001", HttpAddr: "10.0.0.2:7002"},
		{NodeId: "node-3", RaftAddr: "10.0.0.3:7000", GrpcAddr: "10.0.0.3:7101", HttpAddr: "10.0.0.3:7102"},
	}
	for _, sq := range []struct {
		prefix, date string
		n            int
	}{{"110105", "20260501", 5}, {"110105", "20260502", 2}, {"120101", "20260501", 1}} {
		for i := 1; i <= sq.n; i++ {
			if got := nextSeq(t, s, sq.prefix, sq.date); got != uint64(i) {
				t.Fatalf("NextSeq(%s, %s) #%d = %d", sq.prefix, sq.date, i, got)
			}
		}
		fx.seqs[[2]string{sq.prefix, sq.date}] = uint64(sq.n)
	}
	populateFederation(t, s, fx)
	populateOwnership(t, s, fx)
	// Evaluation counters, one zeroed again (gone), one negative.
	addCounters(t, s, "e/w\x07\xea\x00\x2fuunit-a\x00\x01", 3, "e/w\x07\xea\x00\x2fuunit-b\x00\x03", 1, "e/q\x07\xea\x00\x04r\x09110105001\x00\x01", -2)
	addCounters(t, s, "e/w\x07\xea\x00\x2fuunit-b\x00\x03", -1, "e/w\x07\xea\x00\x2fuunit-a\x00\x01", 1)
	fx.counters = map[string]int64{"e/w\x07\xea\x00\x2fuunit-a\x00\x01": 4, "e/q\x07\xea\x00\x04r\x09110105001\x00\x01": -2}
	fx.index, fx.term = 4242, 7
	setApplied(t, s, fx.index, fx.term)
	return fx
}

// populateFederation writes the federation families: topology, outboxes
// (one partly trimmed), sending and receiving marks.
func populateFederation(t *testing.T, s *store.Store, fx *fixture) {
	t.Helper()
	fx.topology = &pb.FederationTopology{Self: "d-110105", Nodes: []*pb.FederationNode{
		{Name: "city", Tier: pb.Tier_TIER_CITY, Jurisdiction: "110100", Replicas: []string{"10.0.0.1:7301"}, Units: []string{"u1"}},
		{Name: "d-110105", Tier: pb.Tier_TIER_DISTRICT, Jurisdiction: "110105", Parent: "city", Replicas: []string{"10.0.0.2:7301"}},
	}}
	fx.links, fx.outbox = map[string]store.LinkState{}, map[string][]*pb.LinkEntry{}
	if err := s.Update(func(tx *store.Tx) error {
		if err := tx.PutTopology(fx.topology); err != nil {
			return err
		}
		for _, peer := range []string{"city", "s-110105001", "s-110105001-x"} {
			for i := 1; i <= 5; i++ {
				e := &pb.LinkEntry{Case: fx.cases[caseID("110105", i)], Origin: "d-110105", EnqueuedUnixMs: t0 + int64(i)}
				if _, err := tx.Enqueue(peer, e); err != nil {
					return err
				}
				fx.outbox[peer] = append(fx.outbox[peer], e)
			}
		}
		if _, err := tx.Trim("city", 3); err != nil {
			return err
		}
		fx.outbox["city"] = fx.outbox["city"][3:]
		if err := tx.SetInHighWater("city", 77); err != nil {
			return err
		}
		return tx.SetInHighWater("s-110105001", 12)
	}); err != nil {
		t.Fatalf("write federation records: %v", err)
	}
	fx.links["city"] = store.LinkState{Out: &pb.OutLink{LastSeq: 5, Acked: 3}, InHighWater: 77, OldestUnacked: t0 + 4}
	fx.links["s-110105001"] = store.LinkState{Out: &pb.OutLink{LastSeq: 5}, InHighWater: 12, OldestUnacked: t0 + 1}
	fx.links["s-110105001-x"] = store.LinkState{Out: &pb.OutLink{LastSeq: 5}, OldestUnacked: t0 + 1}
}

// populateOwnership writes the ownership families: holders (digests),
// legacy ids, cases in review (some closed: not in the queue), runs and
// their records.
func populateOwnership(t *testing.T, s *store.Store, fx *fixture) {
	t.Helper()
	fx.legacy = map[string]string{}
	for i := 3; i <= 48; i += 4 {
		old := fx.cases[caseID("110105", i)]
		c := clone(old)
		c.Holder, c.HolderEpoch, c.ReportedAtNode = "d-110105", uint64(i%3), "110105"
		if i%8 == 3 {
			c.LegacyId = fmt.Sprintf("OLD-%d", i)
			fx.legacy[c.LegacyId] = c.Id
		}
		c.Ownership = &pb.Ownership{Unit: "unit-a", InReview: i%3 != 0, Reasons: []string{fmt.Sprint("reason ", i)}}
		putCase(t, s, old, c)
		fx.cases[c.Id] = c
	}
	fx.runs = []*pb.ReconcileRun{
		{RunId: "run-1", Node: "d-110105", StartedUnixMs: t0, Finished: true, FinishedUnixMs: t0 + minute, Scanned: 3, InPlace: 1},
		{RunId: "run-2", Node: "d-110105", StartedUnixMs: t0 + 2*minute},
	}
	fx.records = map[string][]*pb.ReconcileRecord{}
	if err := s.Update(func(tx *store.Tx) error {
		for _, r := range fx.runs {
			if err := tx.PutReconcileRun(r); err != nil {
				return err
			}
		}
		for i, run := range []string{"run-1", "run-1", "run-2"} {
			r := &pb.ReconcileRecord{CaseId: caseID("110105", 10+i), Kind: pb.Kind_KIND_EVENT, ClassCode: "0102", Unit: "unit-b",
				FromNode: "d-110105", ToNode: "city", Outcome: pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED, Action: pb.Action_ACTION_TRANSFER_UP}
			if err := tx.PutReconcileRecord(run, r); err != nil {
				return err
			}
			fx.records[run] = append(fx.records[run], r)
		}
		return nil
	}); err != nil {
		t.Fatalf("write runs: %v", err)
	}
}

// checkOwnership reads the ownership families back.
func checkOwnership(t *testing.T, s *store.Store, fx *fixture) {
	t.Helper()
	order, ds := digests(t, s)
	if want := ids(fx.caseList()); !slices.Equal(order, want) {
		t.Fatalf("digests of %q, want %q", order, want)
	}
	var review []string
	for _, c := range fx.caseList() {
		if d := ds[c.Id]; d.Hash != hashOf(t, c) || d.Epoch != c.HolderEpoch || d.Version != c.Version || d.Holder != c.Holder || d.ReportedAt != c.ReportedAtNode {
			t.Fatalf("digest of %s: %+v", c.Id, d)
		}
		if c.GetOwnership().GetInReview() && open(c.State) {
			review = append(review, c.Id)
		}
	}
	if got := ids(listAll(t, s, store.Query{InReview: true, PageSize: 7})); !slices.Equal(got, review) {
		t.Fatalf("review queue %q, want %q", got, review)
	}
	for legacy, want := range fx.legacy {
		if id, err := caseByLegacy(t, s, legacy); err != nil || id != want {
			t.Fatalf("legacy id %s: %q %v, want %s", legacy, id, err, want)
		}
	}
	if got := readRuns(t, s); !slices.EqualFunc(got, fx.runs, func(a, b *pb.ReconcileRun) bool { return proto.Equal(a, b) }) {
		t.Fatalf("runs %v, want %v", got, fx.runs)
	}
	for run, want := range fx.records {
		if got := readRecords(t, s, run); !slices.EqualFunc(got, want, func(a, b *pb.ReconcileRecord) bool { return proto.Equal(a, b) }) {
			t.Fatalf("records of %s: %v, want %v", run, got, want)
		}
	}
}

// checkFederation reads the federation families back.
func checkFederation(t *testing.T, s *store.Store, fx *fixture) {
	t.Helper()
	if fx.topology == nil {
		if _, err := s.Topology(); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("topology: %v, want not found", err)
		}
		return
	}
	if got, err := s.Topology(); err != nil || !proto.Equal(got, fx.topology) {
		t.Fatalf("topology: %v %v", got, err)
	}
	for peer, want := range fx.links {
		got, err := s.Link(peer)
		if err != nil || !proto.Equal(got.Out, want.Out) || got.InHighWater != want.InHighWater || got.OldestUnacked != want.OldestUnacked {
			t.Fatalf("link %s: got %+v %v, want %+v", peer, got, err, want)
		}
		es, err := s.Outbox(peer, 1, 100, 1<<30)
		if err != nil || len(es) != len(fx.outbox[peer]) {
			t.Fatalf("outbox %s: %d entries (%v), want %d", peer, len(es), err, len(fx.outbox[peer]))
		}
		for i := range es {
			if !proto.Equal(es[i], fx.outbox[peer][i]) {
				t.Fatalf("outbox %s[%d]: %v, want %v", peer, i, es[i], fx.outbox[peer][i])
			}
		}
	}
}

// fillJunk writes records of every family that a restore must remove,
// some under the same keys as the fixture's.
func fillJunk(t *testing.T, s *store.Store) {
	t.Helper()
	var junk []*pb.Case
	for i := 1; i <= 7; i++ {
		junk = append(junk, mkCase(caseID("999999", i), allStates[(i*5)%len(allStates)], "junk-unit", "999999999999999", t0-int64(i)*minute))
	}
	putCases(t, s, junk)
	// Same id as a fixture case, different state, unit, grid and deadline.
	putCase(t, s, nil, mkCase(caseID("110105", 4), pb.State_STATE_SUSPENDED, "junk-unit", "999999999999998", t0-99*minute))
	if err := s.Update(func(tx *store.Tx) error {
		if err := tx.PutRequest("junk-req", &pb.RequestRecord{CaseId: "x", Fingerprint: []byte("junk")}); err != nil {
			return err
		}
		if err := tx.PutRequest("req-001", &pb.RequestRecord{CaseId: "junk", LogIndex: 1}); err != nil {
			return err
		}
		if err := tx.PutReconcileRun(&pb.ReconcileRun{RunId: "run-1", Node: "junk"}); err != nil {
			return err
		}
		if err := tx.PutReconcileRecord("junk-run", &pb.ReconcileRecord{CaseId: caseID("110105", 4)}); err != nil {
			return err
		}
		return tx.PutNode(&pb.NodeInfo{NodeId: "junk-node", RaftAddr: "junk"})
	}); err != nil {
		t.Fatalf("write junk: %v", err)
	}
	for range 3 {
		nextSeq(t, s, "999", "20990101")
	}
	addCounters(t, s, "e/junk\x00\x01", 9, "e/w\x07\xea\x00\x2fuunit-a\x00\x01", 5)
	for range 9 {
		nextSeq(t, s, "110105", "20260501")
	}
	setApplied(t, s, 999_999, 99)
}

// checkFixture reads every key family back through the public API.
func checkFixture(t *testing.T, s *store.Store, fx *fixture) {
	t.Helper()
	all := fx.caseList()
	for _, want := range all {
		got, err := s.GetCase(want.Id)
		if err != nil {
			t.Fatalf("get %s: %v", want.Id, err)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("case %s:\n got  %v\n want %v", want.Id, got, want)
		}
	}
	if got := listAll(t, s, store.Query{WithHistory: true, PageSize: 11}); !equalCases(got, all) {
		t.Fatalf("unfiltered list: got %q, want %q", ids(got), ids(all))
	}
	for _, st := range allStates {
		checkList(t, s, store.Query{State: st, PageSize: 3}, all)
	}
	for _, u := range units[1:] {
		checkList(t, s, store.Query{OwnerUnit: u, PageSize: 4}, all)
	}
	for _, g := range []string{"1", "11", "110105", "110105001", "110105001001001", "12", "9"} {
		checkList(t, s, store.Query{GridPrefix: g, PageSize: 5}, all)
	}
	for _, d := range []int64{t0, t0 + 3*minute, t0 + 200*minute} {
		checkList(t, s, store.Query{DueBefore: msTime(d), PageSize: 4}, all)
	}
	checkIndexes(t, s, all)
	checkCounts(t, s, all)

	nodes, err := s.Nodes()
	if err != nil {
		t.Fatalf("nodes: %v", err)
	}
	if len(nodes) != len(fx.nodes) {
		t.Fatalf("nodes: got %v, want %v", nodes, fx.nodes)
	}
	for i := range nodes {
		if !proto.Equal(nodes[i], fx.nodes[i]) {
			t.Fatalf("node %d: got %v, want %v", i, nodes[i], fx.nodes[i])
		}
	}
	for id, want := range fx.requests {
		got, err := getRequest(t, s, id)
		if err != nil {
			t.Fatalf("request %s: %v", id, err)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("request %s: got %v, want %v", id, got, want)
		}
	}
	checkFederation(t, s, fx)
	checkOwnership(t, s, fx)
	if got := counters(t, s, "e/"); !equalMaps(got, fx.counters) {
		t.Fatalf("counters: got %v, want %v", got, fx.counters)
	}
	index, term, err := s.Applied()
	if err != nil || index != fx.index || term != fx.term {
		t.Fatalf("applied = %d, %d, %v; want %d, %d", index, term, err, fx.index, fx.term)
	}
}

func equalCases(a, b []*pb.Case) bool {
	return slices.EqualFunc(a, b, func(x, y *pb.Case) bool { return proto.Equal(x, y) })
}

func TestSnapshotRoundTrip(t *testing.T) {
	for _, disk := range []bool{false, true} {
		t.Run(fmt.Sprintf("disk=%v", disk), func(t *testing.T) {
			var src, dst *store.Store
			dstDir := t.TempDir()
			if disk {
				src = openDisk(t, t.TempDir())
				t.Cleanup(func() { _ = src.Close() })
				dst = openDisk(t, dstDir)
				t.Cleanup(func() { _ = dst.Close() }) // whichever dst is open at the end
			} else {
				src, dst = openMem(t), openMem(t)
			}
			fx := populate(t, src)
			checkFixture(t, src, fx) // the source itself reads back right

			fillJunk(t, dst)
			before := snapshotBytes(t, dst)

			stream := snapshotBytes(t, src)
			recs := parseSnapshot(t, stream)
			// Every family made it into the stream.
			for _, p := range []string{"c/", "s/", "u/", "g/", "d/", "r/", "n/", "q/", "k/", "e/", "m/applied", "h/", "x/", "v/", "y/", "z/", "N/o/"} {
				if len(keysWithPrefix(recs, p)) == 0 {
					t.Fatalf("snapshot has no %q records", p)
				}
			}
			if bytes.Equal(before, stream) {
				t.Fatal("junk store already equals the source")
			}
			if err := dst.Restore(bytes.NewReader(stream)); err != nil {
				t.Fatalf("restore: %v", err)
			}
			verifyRestored := func(dst *store.Store) {
				t.Helper()
				checkFixture(t, dst, fx)
				// Nothing of the junk survives: the whole state is the source's.
				if got := snapshotBytes(t, dst); !bytes.Equal(got, stream) {
					extra, missing := diff(recKeys(parseSnapshot(t, got)), recKeys(recs))
					t.Fatalf("restored store differs from the source: extra %q, missing %q", extra, missing)
				}
				_, err := dst.GetCase(caseID("999999", 1))
				mustNotFound(t, err, "junk case")
				_, err = getRequest(t, dst, "junk-req")
				mustNotFound(t, err, "junk request")
			}
			verifyRestored(dst)
			if disk {
				// Restore is durable: reopen and look again.
				if err := dst.Close(); err != nil {
					t.Fatalf("close: %v", err)
				}
				dst = openDisk(t, dstDir)
				verifyRestored(dst)
			}

			// Sequences continue from the restored values, not the junk ones.
			for k, n := range fx.seqs {
				if got := nextSeq(t, dst, k[0], k[1]); got != n+1 {
					t.Errorf("NextSeq(%s, %s) after restore = %d, want %d", k[0], k[1], got, n+1)
				}
			}
			if got := nextSeq(t, dst, "999", "20990101"); got != 1 {
				t.Errorf("junk sequence survived restore: next = %d, want 1", got)
			}
		})
	}
}

func recKeys(recs []record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.key
	}
	return out
}

func TestSnapshotOfEmptyStoreEmptiesTarget(t *testing.T) {
	empty := snapshotBytes(t, openMem(t))
	if recs := parseSnapshot(t, empty); len(recs) != 0 {
		t.Fatalf("empty store snapshot has %d records", len(recs))
	}
	dst := openMem(t)
	fillJunk(t, dst)
	if err := dst.Restore(bytes.NewReader(empty)); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if got := parseSnapshot(t, snapshotBytes(t, dst)); len(got) != 0 {
		t.Fatalf("%d records left after restoring an empty snapshot: %q", len(got), recKeys(got))
	}
	if idx, term, err := dst.Applied(); err != nil || idx != 0 || term != 0 {
		t.Fatalf("applied = %d, %d, %v; want 0, 0", idx, term, err)
	}
	if counts, err := dst.CountByState(); err != nil || len(counts) != 0 {
		t.Fatalf("counts = %v, %v; want none", counts, err)
	}
}

func TestRestoreRefusesDamagedSnapshot(t *testing.T) {
	// Small but with every record family: each damaged variant costs a
	// restore.
	src := openMem(t)
	putCase(t, src, nil, &pb.Case{Id: "1-1-1", State: pb.State_STATE_DISPATCHED, OwnerUnit: "u", GridCode: "1", Deadline: ts(t0), Version: 3})
	if err := src.Update(func(tx *store.Tx) error {
		if err := tx.PutRequest("r", &pb.RequestRecord{CaseId: "1-1-1", Fingerprint: []byte{1, 2, 3}}); err != nil {
			return err
		}
		return tx.PutNode(&pb.NodeInfo{NodeId: "n1", RaftAddr: "a:1"})
	}); err != nil {
		t.Fatal(err)
	}
	nextSeq(t, src, "1", "1")
	setApplied(t, src, 12, 2)
	good := snapshotBytes(t, src)
	if n := len(parseSnapshot(t, good)); n != 15 {
		t.Fatalf("fixture snapshot has %d records, want 15 (one of each family, a case digest, feed entry and feed bounds, the dashboard's unit counter and the count of request records included)", n)
	}

	dst := openMem(t)
	fillJunk(t, dst)
	dstBefore := snapshotBytes(t, dst)

	refuse := func(t *testing.T, what string, stream []byte) {
		t.Helper()
		err := dst.Restore(bytes.NewReader(stream))
		if !errors.Is(err, store.ErrBadSnapshot) {
			t.Fatalf("%s: restore err = %v, want ErrBadSnapshot", what, err)
		}
	}

	t.Run("header", func(t *testing.T) {
		wrongMagic := append([]byte("cityhub-state-v2\n"), good[len("cityhub-state-v1\n"):]...)
		for what, stream := range map[string][]byte{
			"wrong magic":   wrongMagic,
			"empty":         nil,
			"not ours":      []byte("PK\x03\x04 this is a zip file, not a snapshot"),
			"short header":  good[:5],
			"header, no \n": good[:len("cityhub-state-v1")],
		} {
			refuse(t, what, stream)
			// A stream refused at the header leaves the store untouched.
			if got := snapshotBytes(t, dst); !bytes.Equal(got, dstBefore) {
				t.Fatalf("%s: store changed by a refused restore", what)
			}
		}
	})
	// Every position (each costs a restore, which allocates a fresh
	// memtable); -short and -race take a sample.
	stride := 1
	switch {
	case testing.Short():
		stride = 7
	case raceEnabled:
		stride = 3
	}
	t.Run("truncated", func(t *testing.T) {
		for n := 0; n < len(good); n += stride {
			refuse(t, fmt.Sprintf("truncated to %d of %d bytes", n, len(good)), good[:n])
		}
	})
	t.Run("flipped", func(t *testing.T) {
		for i := 0; i < len(good); i += stride {
			mask := byte(0x01) << (i % 8) // every bit position, spread over the stream
			bad := bytes.Clone(good)
			bad[i] ^= mask
			refuse(t, fmt.Sprintf("byte %d of %d xor %#x", i, len(good), mask), bad)
		}
	})
	t.Run("trailing checksum altered", func(t *testing.T) {
		bad := bytes.Clone(good)
		copy(bad[len(bad)-4:], []byte{0, 0, 0, 0})
		refuse(t, "zeroed checksum", bad)
		refuse(t, "last checksum byte missing", good[:len(good)-1])
		refuse(t, "checksum missing", good[:len(good)-4])
	})
	t.Run("good stream still restores", func(t *testing.T) {
		if err := dst.Restore(bytes.NewReader(good)); err != nil {
			t.Fatalf("restore: %v", err)
		}
		if got := snapshotBytes(t, dst); !bytes.Equal(got, good) {
			t.Fatal("restored store differs from the source")
		}
	})
}

// A reader that fails mid-stream is a damaged snapshot too... or an I/O
// error; either way Restore must fail and say so.
func TestRestoreReaderError(t *testing.T) {
	src := openMem(t)
	putCase(t, src, nil, mkCase(caseID("1", 1), pb.State_STATE_REPORTED, "", "", 0))
	good := snapshotBytes(t, src)
	boom := errors.New("boom")
	r := io.MultiReader(bytes.NewReader(good[:len(good)/2]), &errReader{boom})
	if err := openMem(t).Restore(r); err == nil {
		t.Fatal("restore from a failing reader succeeded")
	}
}

type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }

func TestSnapshotIsolation(t *testing.T) {
	s := openMem(t)
	c1 := mkCase(caseID("110105", 1), pb.State_STATE_DISPATCHED, "unit-a", "110105001001001", t0+10*minute)
	putCase(t, s, nil, c1)
	if err := s.Update(func(tx *store.Tx) error { return tx.PutNode(&pb.NodeInfo{NodeId: "n1"}) }); err != nil {
		t.Fatal(err)
	}
	nextSeq(t, s, "110105", "20260501")
	setApplied(t, s, 5, 1)

	sn, err := s.Snapshot()
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	defer sn.Release()

	// Writes after the snapshot was taken.
	moved := clone(c1)
	moved.State, moved.OwnerUnit, moved.Deadline = pb.State_STATE_ACCEPTED, "unit-b", ts(t0+20*minute)
	putCase(t, s, c1, moved)
	putCase(t, s, nil, mkCase(caseID("110105", 2), pb.State_STATE_REPORTED, "", "", 0))
	if err := s.Update(func(tx *store.Tx) error {
		if err := tx.PutNode(&pb.NodeInfo{NodeId: "n2"}); err != nil {
			return err
		}
		return tx.PutRequest("late", &pb.RequestRecord{CaseId: "x"})
	}); err != nil {
		t.Fatal(err)
	}
	nextSeq(t, s, "110105", "20260501")
	setApplied(t, s, 9, 2)

	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatalf("write snapshot: %v", err)
	}
	dst := openMem(t)
	if err := dst.Restore(&buf); err != nil {
		t.Fatalf("restore: %v", err)
	}
	checkFixture(t, dst, &fixture{
		cases:    map[string]*pb.Case{c1.Id: c1},
		requests: map[string]*pb.RequestRecord{},
		nodes:    []*pb.NodeInfo{{NodeId: "n1"}},
		index:    5, term: 1,
	})
	_, err = dst.GetCase(caseID("110105", 2))
	mustNotFound(t, err, "case written after the snapshot")
	_, err = getRequest(t, dst, "late")
	mustNotFound(t, err, "request written after the snapshot")
	if got := nextSeq(t, dst, "110105", "20260501"); got != 2 {
		t.Fatalf("sequence after restore = %d, want 2 (the snapshot held 1)", got)
	}
	// The live store did take the later writes.
	if got, err := s.GetCase(c1.Id); err != nil || got.State != pb.State_STATE_ACCEPTED {
		t.Fatalf("live store: %v, %v", got, err)
	}
}
