package store_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

// Tests of the ownership and reconciliation records (ownership.go): case
// digests, the legacy-id and review indexes, DeleteCase, runs and their
// per-case records.

// digests reads every digest, in the order Digests walks them.
func digests(tb testing.TB, s *store.Store) ([]string, map[string]store.Digest) {
	tb.Helper()
	var order []string
	out := map[string]store.Digest{}
	if err := s.Digests(func(id string, d store.Digest) error {
		order = append(order, id)
		out[id] = d
		return nil
	}); err != nil {
		tb.Fatalf("digests: %v", err)
	}
	return order, out
}

func hashOf(tb testing.TB, c *pb.Case) uint64 {
	tb.Helper()
	h, err := store.HashCase(c)
	if err != nil {
		tb.Fatalf("hash %s: %v", c.Id, err)
	}
	return h
}

// checkDigest asserts the stored digest of c describes c.
func checkDigest(tb testing.TB, s *store.Store, c *pb.Case) store.Digest {
	tb.Helper()
	_, ds := digests(tb, s)
	d, ok := ds[c.Id]
	if !ok {
		tb.Fatalf("no digest for %s", c.Id)
	}
	want := store.Digest{Epoch: c.HolderEpoch, Version: c.Version, Hash: hashOf(tb, c), Holder: c.Holder, ReportedAt: c.ReportedAtNode}
	if d != want {
		tb.Fatalf("digest of %s = %+v, want %+v", c.Id, d, want)
	}
	return d
}

// fedCase is a case as a federated node stores it.
func fedCase(id string) *pb.Case {
	c := mkCase(id, pb.State_STATE_DISPATCHED, "unit-a", "110105001001001", t0+60*minute)
	c.Holder, c.HolderEpoch, c.ReportedAtNode = "d-110105", 2, "110105"
	c.Ownership = &pb.Ownership{Unit: "unit-a", Node: "d-110105", Tier: pb.Tier_TIER_DISTRICT, Rule: "r1", Reasons: []string{"first"}}
	return c
}

// changeField returns a copy of c with field fd set to another value: a
// scalar changed, a repeated field grown, a message cleared or set.
func changeField(c *pb.Case, fd protoreflect.FieldDescriptor) *pb.Case {
	out := clone(c)
	m := out.ProtoReflect()
	switch {
	case fd.IsMap():
		return nil
	case fd.IsList():
		l := m.Mutable(fd).List()
		switch fd.Kind() {
		case protoreflect.MessageKind:
			l.Append(protoreflect.ValueOfMessage(l.NewElement().Message()))
		case protoreflect.StringKind:
			l.Append(protoreflect.ValueOfString("more"))
		case protoreflect.EnumKind:
			l.Append(protoreflect.ValueOfEnum(1))
		default:
			return nil
		}
	case fd.Kind() == protoreflect.MessageKind:
		if m.Has(fd) {
			m.Clear(fd)
		} else {
			m.Set(fd, protoreflect.ValueOfMessage(m.NewField(fd).Message()))
		}
	default:
		v := m.Get(fd)
		switch fd.Kind() {
		case protoreflect.StringKind:
			m.Set(fd, protoreflect.ValueOfString(v.String()+"x"))
		case protoreflect.BoolKind:
			m.Set(fd, protoreflect.ValueOfBool(!v.Bool()))
		case protoreflect.EnumKind:
			m.Set(fd, protoreflect.ValueOfEnum(v.Enum()+1))
		case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Sint32Kind, protoreflect.Sint64Kind, protoreflect.Sfixed32Kind, protoreflect.Sfixed64Kind:
			m.Set(fd, protoreflect.ValueOf(addInt(v, fd)))
		case protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
			m.Set(fd, protoreflect.ValueOf(addUint(v, fd)))
		case protoreflect.DoubleKind:
			m.Set(fd, protoreflect.ValueOfFloat64(v.Float()+1))
		case protoreflect.FloatKind:
			m.Set(fd, protoreflect.ValueOfFloat32(float32(v.Float()+1)))
		case protoreflect.BytesKind:
			m.Set(fd, protoreflect.ValueOfBytes(append(v.Bytes(), 1)))
		default:
			return nil
		}
	}
	return out
}

func addInt(v protoreflect.Value, fd protoreflect.FieldDescriptor) any {
	if fd.Kind() == protoreflect.Int32Kind || fd.Kind() == protoreflect.Sint32Kind || fd.Kind() == protoreflect.Sfixed32Kind {
		return int32(v.Int() + 1)
	}
	return v.Int() + 1
}

func addUint(v protoreflect.Value, fd protoreflect.FieldDescriptor) any {
	if fd.Kind() == protoreflect.Uint32Kind || fd.Kind() == protoreflect.Fixed32Kind {
		return uint32(v.Uint() + 1)
	}
	return v.Uint() + 1
}

// The digest carries the hash of the stored case (store.HashCase) with its
// epoch, version, holder and reporting node, and changes when any field of
// the case does.
func TestDigestFollowsEveryField(t *testing.T) {
	s := openMem(t)
	c := fedCase(caseID("110105", 1))
	putCase(t, s, nil, c)
	seen := map[uint64]string{checkDigest(t, s, c).Hash: "original"}
	fields := c.ProtoReflect().Descriptor().Fields()
	changed := 0
	for i := range fields.Len() {
		fd := fields.Get(i)
		next := changeField(c, fd)
		if next == nil {
			t.Errorf("field %s: the test cannot change it (teach changeField its kind)", fd.Name())
			continue
		}
		if proto.Equal(next, c) {
			t.Fatalf("field %s: changeField changed nothing", fd.Name())
		}
		old := c
		putCase(t, s, old, next)
		d := checkDigest(t, s, next)
		if prev, dup := seen[d.Hash]; dup {
			t.Errorf("changing %s left the hash of %s", fd.Name(), prev)
		}
		seen[d.Hash] = string(fd.Name())
		c = next
		changed++
	}
	if changed < 30 {
		t.Fatalf("only %d fields changed: weak fixture", changed)
	}
	// The hash is of the case alone: an equal case hashes equally.
	if hashOf(t, clone(c)) != hashOf(t, c) {
		t.Fatal("HashCase differs for equal cases")
	}
}

// Digests walks the digest index in case id order, whatever the order of
// the writes, and stops at the first error of fn.
func TestDigestsInIDOrder(t *testing.T) {
	s := openMem(t)
	var cs []*pb.Case
	for i := 1; i <= 40; i++ {
		cs = append(cs, fedCase(caseID([]string{"110105", "110100", "110105001"}[i%3], i)))
	}
	shuffled := slices.Clone(cs)
	rand.New(rand.NewPCG(7, 7)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	putCases(t, s, shuffled[:25])
	for _, c := range shuffled[25:] {
		putCase(t, s, nil, c)
	}
	order, ds := digests(t, s)
	want := ids(cs)
	slices.Sort(want)
	if !slices.Equal(order, want) {
		t.Fatalf("digest order %q, want %q", order, want)
	}
	for _, c := range cs {
		if ds[c.Id].Hash != hashOf(t, c) {
			t.Errorf("digest of %s", c.Id)
		}
	}
	stop := errors.New("stop")
	n := 0
	err := s.Digests(func(string, store.Digest) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Fatalf("Digests after an error: err %v, %d calls", err, n)
	}
}

// snapshotMap is the store's records by key.
func snapshotMap(tb testing.TB, s *store.Store) map[string]string {
	tb.Helper()
	out := map[string]string{}
	for _, r := range parseSnapshot(tb, snapshotBytes(tb, s)) {
		out[r.key] = r.val
	}
	return out
}

// DeleteCase leaves the store as if the case had never been written: no
// case, index entry (state, unit, grid, due, overdue, legacy, review,
// handed up), digest, and one case fewer in its state.
func TestDeleteCaseRemovesEverything(t *testing.T) {
	// x1 has every index a case can have but overdue; x2 is overdue.
	x1 := fedCase(caseID("110105", 1))
	x1.State, x1.LegacyId = pb.State_STATE_FILED, "OLD-7"
	x1.Ownership.InReview = true
	x1.History = append(x1.History, &pb.HistoryEntry{Action: pb.Action_ACTION_TRANSFER_UP, ToState: pb.State_STATE_FILED, Version: 3})
	x2 := fedCase(caseID("110105", 2))
	x2.Overdue, x2.OwnerUnit = true, "unit-b"
	keep := fedCase(caseID("110105", 3))
	keep.LegacyId = "OLD-70"
	keep.Ownership.InReview = true

	a, b := openMem(t), openMem(t)
	putCases(t, a, []*pb.Case{x1, x2, keep})
	putCase(t, b, nil, keep)
	for _, q := range []store.Query{{InReview: true}, {Overdue: true}, {LegacyID: "OLD-7"}} {
		if got := listAll(t, a, q); len(got) == 0 {
			t.Fatalf("fixture: %+v lists nothing before the delete", q)
		}
	}

	if err := a.Update(func(tx *store.Tx) error {
		if err := tx.DeleteCase(x1.Id); err != nil {
			return err
		}
		return tx.DeleteCase(x2.Id)
	}); err != nil {
		t.Fatal(err)
	}
	got, want := snapshotMap(t, a), snapshotMap(t, b)
	for _, m := range []map[string]string{got, want} {
		for k := range m {
			if strings.HasPrefix(k, "k/") || strings.HasPrefix(k, "F/") { // counts (a zero stays), the change feed: checked below
				delete(m, k)
			}
		}
	}
	if ex, mi := diffKeys(got, want); len(ex) > 0 || len(mi) > 0 {
		t.Fatalf("after delete: extra %q, missing %q", ex, mi)
	}
	checkCounts(t, a, []*pb.Case{keep})
	// Each removal is a change watchers see, with the fields their
	// scope is decided on.
	removed, _, _, err := a.Changes(3, 10)
	if err != nil || len(removed) != 2 {
		t.Fatalf("changes after the three writes = %v, %v; want the two removals", removed, err)
	}
	for i, c := range []*pb.Case{x1, x2} {
		if r := removed[i]; r.Kind != pb.ChangeKind_CHANGE_KIND_REMOVED || r.CaseId != c.Id || r.OwnerUnit != c.OwnerUnit || r.GridCode != c.GridCode {
			t.Errorf("removal %d = %v, want %s removed", i, r, c.Id)
		}
	}
	_, err = a.GetCase(x1.Id)
	mustNotFound(t, err, "deleted case")
	if err := a.View(func(tx *store.Tx) error {
		_, err := tx.CaseByLegacyID(x1.ReportedAtNode, "OLD-7")
		mustNotFound(t, err, "legacy id of a deleted case")
		id, err := tx.CaseByLegacyID(keep.ReportedAtNode, "OLD-70")
		if err != nil || id != keep.Id {
			t.Fatalf("legacy id of the case kept: %q %v", id, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := ids(listAll(t, a, store.Query{InReview: true})); !slices.Equal(got, []string{keep.Id}) {
		t.Fatalf("review queue after delete: %q", got)
	}
	if order, _ := digests(t, a); !slices.Equal(order, []string{keep.Id}) {
		t.Fatalf("digests after delete: %q", order)
	}

	// Deleting an absent case is no error and changes nothing.
	before := snapshotBytes(t, a)
	if err := a.Update(func(tx *store.Tx) error { return tx.DeleteCase(x1.Id) }); err != nil {
		t.Fatalf("delete of an absent case: %v", err)
	}
	if string(snapshotBytes(t, a)) != string(before) {
		t.Fatal("deleting an absent case changed the store")
	}
}

func diffKeys(got, want map[string]string) (extra, missing []string) {
	for k, v := range got {
		if w, ok := want[k]; !ok || w != v {
			extra = append(extra, k)
		}
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			missing = append(missing, k)
		}
	}
	slices.Sort(extra)
	slices.Sort(missing)
	return extra, missing
}

// caseByLegacy finds the one case imported with legacyID, whichever node
// imported it (store.ErrNotFound when none).
func caseByLegacy(tb testing.TB, s *store.Store, legacyID string) (string, error) {
	tb.Helper()
	var got []*pb.Case
	if legacyID != "" { // an empty one is no filter at all
		got = listAll(tb, s, store.Query{LegacyID: legacyID})
	}
	switch len(got) {
	case 0:
		return "", fmt.Errorf("legacy id %q: %w", legacyID, store.ErrNotFound)
	case 1:
		var id string
		err := s.View(func(tx *store.Tx) (err error) {
			id, err = tx.CaseByLegacyID(got[0].ReportedAtNode, legacyID)
			return err
		})
		return id, err
	}
	return "", fmt.Errorf("legacy id %q names %d cases", legacyID, len(got))
}

// CaseByLegacyID finds the case imported with exactly that legacy id, and
// follows a case whose legacy id changes.
func TestCaseByLegacyID(t *testing.T) {
	s := openMem(t)
	c1 := mkCase(caseID("110105", 1), pb.State_STATE_FILED, "", "110105001001001", 0)
	c1.LegacyId = "HQ-1"
	c2 := mkCase(caseID("110105", 2), pb.State_STATE_CLOSED, "", "110105001001001", 0)
	c2.LegacyId = "HQ-10"
	c3 := mkCase(caseID("110105", 3), pb.State_STATE_FILED, "", "110105001001001", 0)
	putCases(t, s, []*pb.Case{c1, c2, c3})
	for legacy, want := range map[string]string{"HQ-1": c1.Id, "HQ-10": c2.Id} {
		if id, err := caseByLegacy(t, s, legacy); err != nil || id != want {
			t.Errorf("CaseByLegacyID(%q) = %q, %v; want %s", legacy, id, err, want)
		}
		if got := listAll(t, s, store.Query{LegacyID: legacy}); len(got) != 1 || got[0].Id != want {
			t.Errorf("List(legacy %q) = %q", legacy, ids(got))
		}
	}
	for _, absent := range []string{"HQ-", "HQ-2", "HQ-100", "hq-1", ""} {
		_, err := caseByLegacy(t, s, absent)
		mustNotFound(t, err, fmt.Sprintf("legacy id %q", absent))
	}
	// Other filters still apply.
	if got := listAll(t, s, store.Query{LegacyID: "HQ-10", State: pb.State_STATE_FILED}); len(got) != 0 {
		t.Errorf("legacy id with another state lists %q", ids(got))
	}
	// A changed legacy id moves the entry.
	moved := clone(c1)
	moved.LegacyId, moved.Version = "HQ-1b", c1.Version+1
	putCase(t, s, c1, moved)
	_, err := caseByLegacy(t, s, "HQ-1")
	mustNotFound(t, err, "the old legacy id")
	if id, err := caseByLegacy(t, s, "HQ-1b"); err != nil || id != c1.Id {
		t.Errorf("new legacy id: %q %v", id, err)
	}
}

// reviewKeys lists the review index (v/<case id>, keys.go).
func reviewKeys(tb testing.TB, s *store.Store) []string {
	tb.Helper()
	return keysWithPrefix(parseSnapshot(tb, snapshotBytes(tb, s)), "v/")
}

// The review index holds the open cases in review, and nothing else.
func TestReviewIndexFollowsOpenCasesInReview(t *testing.T) {
	s := openMem(t)
	a := fedCase(caseID("110105", 1))
	a.State = pb.State_STATE_FILED
	a.Ownership.InReview = true
	b := fedCase(caseID("110105", 2))
	closed := fedCase(caseID("110105", 3))
	closed.State = pb.State_STATE_CLOSED
	closed.Ownership.InReview = true
	putCases(t, s, []*pb.Case{a, b, closed})
	check := func(what string, want ...string) {
		t.Helper()
		if got := ids(listAll(t, s, store.Query{InReview: true})); !slices.Equal(got, want) {
			t.Fatalf("%s: review queue %q, want %q", what, got, want)
		}
		var keys []string
		for _, id := range want {
			keys = append(keys, "v/"+id)
		}
		if got := reviewKeys(t, s); !slices.Equal(got, keys) {
			t.Fatalf("%s: review index %q, want %q", what, got, keys)
		}
	}
	check("written", a.Id)

	// Referred: b joins the queue.
	b2 := clone(b)
	b2.Ownership.InReview, b2.Version = true, b.Version+1
	putCase(t, s, b, b2)
	check("b referred", a.Id, b2.Id)
	// Decided: a leaves it.
	a2 := clone(a)
	a2.Ownership.InReview, a2.Ownership.Decided, a2.State = false, true, pb.State_STATE_DISPATCHED
	putCase(t, s, a, a2)
	check("a decided", b2.Id)
	// Closed (voided) while in review: it leaves the queue, flag or not.
	b3 := clone(b2)
	b3.State = pb.State_STATE_VOIDED
	putCase(t, s, b2, b3)
	check("b voided")
}

func putRecords(tb testing.TB, s *store.Store, run string, recs ...*pb.ReconcileRecord) {
	tb.Helper()
	if err := s.Update(func(tx *store.Tx) error {
		for _, r := range recs {
			if err := tx.PutReconcileRecord(run, r); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
}

func readRecords(tb testing.TB, s *store.Store, run string) []*pb.ReconcileRecord {
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

func readRuns(tb testing.TB, s *store.Store) []*pb.ReconcileRun {
	tb.Helper()
	var out []*pb.ReconcileRun
	if err := s.View(func(tx *store.Tx) (err error) {
		out, err = tx.ReconcileRuns()
		return err
	}); err != nil {
		tb.Fatal(err)
	}
	return out
}

func TestReconcileRunsAndRecords(t *testing.T) {
	s := openMem(t)
	runs := []*pb.ReconcileRun{
		{RunId: "r2", Node: "d-110105", StartedUnixMs: t0},
		{RunId: "r1", Node: "d-110105", StartedUnixMs: t0 - minute, Finished: true, FinishedUnixMs: t0, Scanned: 9, InPlace: 4},
		{RunId: "r10", Node: "d-110105", StartedUnixMs: t0 + minute},
	}
	if err := s.Update(func(tx *store.Tx) error {
		for _, r := range runs {
			if err := tx.PutReconcileRun(r); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got := readRuns(t, s)
	if len(got) != 3 || got[0].RunId != "r1" || got[1].RunId != "r10" || got[2].RunId != "r2" || !proto.Equal(got[0], runs[1]) {
		t.Fatalf("runs %v", got)
	}
	if err := s.View(func(tx *store.Tx) error {
		r, err := tx.ReconcileRun("r10")
		if err != nil || !proto.Equal(r, runs[2]) {
			t.Fatalf("run r10: %v %v", r, err)
		}
		_, err = tx.ReconcileRun("r3")
		mustNotFound(t, err, "absent run")
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	rec := func(n int, outcome pb.ReconcileOutcome) *pb.ReconcileRecord {
		return &pb.ReconcileRecord{CaseId: caseID("110105", n), Kind: pb.Kind_KIND_EVENT, ClassCode: "0102", Unit: "unit-a",
			FromNode: "d-110105", ToNode: "city", Outcome: outcome, Rule: "r", Reason: fmt.Sprint("because ", n), Action: pb.Action_ACTION_TRANSFER_UP}
	}
	putRecords(t, s, "a", rec(3, pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED), rec(1, pb.ReconcileOutcome_RECONCILE_OUTCOME_PENDING), rec(2, pb.ReconcileOutcome_RECONCILE_OUTCOME_DISPUTED))
	// Runs whose ids extend "a" keep their own records.
	putRecords(t, s, "a-b", rec(4, pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED))
	putRecords(t, s, "a.", rec(5, pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED))
	// A record again replaces the run's earlier one.
	replaced := rec(1, pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED)
	putRecords(t, s, "a", replaced)

	recs := readRecords(t, s, "a")
	want := []*pb.ReconcileRecord{replaced, rec(2, pb.ReconcileOutcome_RECONCILE_OUTCOME_DISPUTED), rec(3, pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED)}
	if !slices.EqualFunc(recs, want, func(a, b *pb.ReconcileRecord) bool { return proto.Equal(a, b) }) {
		t.Fatalf("records of run a:\n got  %v\n want %v", recs, want)
	}
	if got := readRecords(t, s, "a-b"); len(got) != 1 || got[0].CaseId != caseID("110105", 4) {
		t.Fatalf("records of run a-b: %v", got)
	}
	if got := readRecords(t, s, "zzz"); len(got) != 0 {
		t.Fatalf("records of an absent run: %v", got)
	}
	if err := s.View(func(tx *store.Tx) error {
		for _, c := range []struct {
			run  string
			n    int
			want bool
		}{{"a", 1, true}, {"a", 3, true}, {"a", 4, false}, {"a-b", 4, true}, {"a-b", 1, false}, {"b", 1, false}} {
			ok, err := tx.HasReconcileRecord(c.run, caseID("110105", c.n))
			if err != nil || ok != c.want {
				t.Errorf("HasReconcileRecord(%s, %d) = %v, %v; want %v", c.run, c.n, ok, err, c.want)
			}
		}
		// fn's error stops the walk.
		stop := errors.New("stop")
		n := 0
		err := tx.ReconcileRecords("a", func(*pb.ReconcileRecord) error { n++; return stop })
		if !errors.Is(err, stop) || n != 1 {
			t.Errorf("ReconcileRecords after an error: %v, %d calls", err, n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// Two nodes' old systems may use the same legacy id: each node finds its
// own case, a node holding both keeps both, and listing finds both.
func TestLegacyIDsAreScopedByTheImportingNode(t *testing.T) {
	s := openMem(t)
	a := mkCase(caseID("320505", 1), pb.State_STATE_FILED, "", "320505001001001", 0)
	a.LegacyId, a.ReportedAtNode = "2019000123", "320505"
	b := mkCase(caseID("320506", 1), pb.State_STATE_FILED, "", "320506001001001", 0)
	b.LegacyId, b.ReportedAtNode = "2019000123", "320506"
	putCases(t, s, []*pb.Case{a, b})
	for node, want := range map[string]string{"320505": a.Id, "320506": b.Id} {
		if err := s.View(func(tx *store.Tx) error {
			id, err := tx.CaseByLegacyID(node, "2019000123")
			if err != nil || id != want {
				t.Errorf("node %s: %q %v, want %s", node, id, err, want)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if got := ids(listAll(t, s, store.Query{LegacyID: "2019000123"})); !slices.Equal(got, []string{a.Id, b.Id}) {
		t.Fatalf("listing by legacy id: %q", got)
	}
	// Deleting one leaves the other's entry.
	if err := s.Update(func(tx *store.Tx) error { return tx.DeleteCase(a.Id) }); err != nil {
		t.Fatal(err)
	}
	if got := ids(listAll(t, s, store.Query{LegacyID: "2019000123"})); !slices.Equal(got, []string{b.Id}) {
		t.Fatalf("after deleting %s: %q", a.Id, got)
	}
}

// The handed-up index holds filed cases whose last step was a transfer up,
// supervision entries since included (the sweeper may mark a case that
// waits), and drops them once they move on.
func TestHandedUpIndex(t *testing.T) {
	s := openMem(t)
	up := &pb.HistoryEntry{Action: pb.Action_ACTION_TRANSFER_UP}
	a := mkCase(caseID("110105", 1), pb.State_STATE_FILED, "", "110105001001001", 0)
	a.History = []*pb.HistoryEntry{{Action: pb.Action_ACTION_REPORT}, up}
	b := mkCase(caseID("110105", 2), pb.State_STATE_FILED, "", "110105001001001", 0)
	b.History = []*pb.HistoryEntry{up, {Action: pb.Action_ACTION_SUPERVISE}}
	c := mkCase(caseID("110105", 3), pb.State_STATE_FILED, "", "110105001001001", 0)
	c.History = []*pb.HistoryEntry{{Action: pb.Action_ACTION_FILE}}
	putCases(t, s, []*pb.Case{a, b, c})
	if got := ids(listAll(t, s, store.Query{HandedUp: true})); !slices.Equal(got, []string{a.Id, b.Id}) {
		t.Fatalf("handed up: %q, want %s and %s", got, a.Id, b.Id)
	}
	moved := clone(a)
	moved.State = pb.State_STATE_DISPATCHED
	moved.History = append(moved.History, &pb.HistoryEntry{Action: pb.Action_ACTION_DISPATCH})
	putCase(t, s, a, moved)
	if got := ids(listAll(t, s, store.Query{HandedUp: true})); !slices.Equal(got, []string{b.Id}) {
		t.Fatalf("after dispatching %s: %q", a.Id, got)
	}
}
