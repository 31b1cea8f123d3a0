package store_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

func msTime(ms int64) time.Time { return time.UnixMilli(ms) }

// expectList is the test's model of List: the cases matching every set
// filter, in the order of the index that answers the query (state, then
// owner unit, then grid prefix, then deadline, else case id); entries of the
// same state or unit are in id order, of the grid index in (grid, id)
// order and of the due index in (deadline, id) order.
func expectList(q store.Query, all []*pb.Case) []*pb.Case {
	var out []*pb.Case
	for _, c := range all {
		switch {
		case q.State != pb.State_STATE_UNSPECIFIED && c.State != q.State,
			q.OwnerUnit != "" && c.OwnerUnit != q.OwnerUnit,
			q.GridPrefix != "" && !strings.HasPrefix(c.GridCode, q.GridPrefix),
			!q.DueBefore.IsZero() && (c.Deadline == nil || !swept(c.State) || !c.Deadline.AsTime().Before(q.DueBefore)):
			continue
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		switch {
		case q.State != pb.State_STATE_UNSPECIFIED, q.OwnerUnit != "":
		case q.GridPrefix != "":
			if a.GridCode != b.GridCode {
				return a.GridCode < b.GridCode
			}
		case !q.DueBefore.IsZero():
			if da, db := a.Deadline.AsTime(), b.Deadline.AsTime(); !da.Equal(db) {
				return da.Before(db)
			}
		}
		return a.Id < b.Id
	})
	return out
}

// checkList pages through q and compares ids, order and content with the model.
func checkList(t *testing.T, s *store.Store, q store.Query, all []*pb.Case) {
	t.Helper()
	got := listAll(t, s, q)
	want := expectList(q, all)
	if !slices.Equal(ids(got), ids(want)) {
		t.Fatalf("list %s:\n got  %q\n want %q", describe(q), ids(got), ids(want))
	}
	for i, c := range got {
		w := want[i]
		if !q.WithHistory {
			if len(c.History) != 0 {
				t.Fatalf("list %s: case %s has history without WithHistory", describe(q), c.Id)
			}
			w = clone(w)
			w.History = nil
		}
		if !proto.Equal(c, w) {
			t.Fatalf("list %s: case %s:\n got  %v\n want %v", describe(q), c.Id, c, w)
		}
	}
}

func describe(q store.Query) string {
	var b strings.Builder
	if q.State != 0 {
		fmt.Fprintf(&b, "state=%s ", q.State)
	}
	if q.OwnerUnit != "" {
		fmt.Fprintf(&b, "unit=%q ", q.OwnerUnit)
	}
	if q.GridPrefix != "" {
		fmt.Fprintf(&b, "grid=%q ", q.GridPrefix)
	}
	if !q.DueBefore.IsZero() {
		fmt.Fprintf(&b, "due<%d ", q.DueBefore.UnixMilli())
	}
	fmt.Fprintf(&b, "size=%d", q.PageSize)
	return b.String()
}

// randomCases builds n cases with pseudo-random (seeded) attributes.
func randomCases(rng *rand.Rand, n int) []*pb.Case {
	out := make([]*pb.Case, n)
	for i := range out {
		out[i] = randomize(rng, mkCase(caseID("110105", i+1), 0, "", "", 0))
	}
	return out
}

// randomize gives c a random state, unit, grid and deadline (ties are common).
func randomize(rng *rand.Rand, c *pb.Case) *pb.Case {
	c.State = allStates[rng.IntN(len(allStates))]
	c.OwnerUnit = units[rng.IntN(len(units))]
	c.GridCode = grids[rng.IntN(len(grids))]
	c.Deadline = nil
	if rng.IntN(4) != 0 {
		c.Deadline = ts(t0 + int64(rng.IntN(40))*minute)
	}
	return c
}

func TestListPagesThroughEveryCaseOnce(t *testing.T) {
	s := openMem(t)
	all := randomCases(rand.New(rand.NewPCG(1, 2)), 1234)
	// Insert in a scrambled order: List order must not depend on it.
	scrambled := slices.Clone(all)
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(scrambled), func(i, j int) { scrambled[i], scrambled[j] = scrambled[j], scrambled[i] })
	putCases(t, s, scrambled)

	seen := map[string]bool{}
	var got []string
	q := store.Query{PageSize: 100}
	pages := 0
	for {
		page, next, err := s.List(q)
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		pages++
		wantLen := 100
		if pages == 13 {
			wantLen = 34
		}
		if len(page) != wantLen {
			t.Fatalf("page %d has %d cases, want %d", pages, len(page), wantLen)
		}
		for _, c := range page {
			if seen[c.Id] {
				t.Fatalf("case %s returned twice", c.Id)
			}
			seen[c.Id] = true
			got = append(got, c.Id)
		}
		if next == "" {
			break
		}
		if pages > 13 {
			t.Fatalf("more than 13 pages")
		}
		q.PageToken = next
	}
	if pages != 13 {
		t.Fatalf("%d pages, want 13", pages)
	}
	if !slices.Equal(got, ids(all)) {
		t.Fatalf("paging returned %d ids, not the %d ids in order", len(got), len(all))
	}

	// The same with a filter and a page size that does not divide evenly.
	for _, st := range allStates {
		checkList(t, s, store.Query{State: st, PageSize: 9}, all)
	}
}

func TestListFilters(t *testing.T) {
	s := openMem(t)
	rng := rand.New(rand.NewPCG(5, 6))
	all := randomCases(rng, 1234)
	putCases(t, s, all)
	// Move 400 random cases around so the indexes have history.
	for range 400 {
		i := rng.IntN(len(all))
		c := randomize(rng, clone(all[i]))
		c.Version++
		putCase(t, s, all[i], c)
		all[i] = c
	}
	checkIndexes(t, s, all)
	checkCounts(t, s, all)

	var queries []store.Query
	for _, st := range allStates {
		queries = append(queries, store.Query{State: st})
	}
	for _, u := range append(units[1:], "unit", "unit-c", "unit-a\x00") {
		queries = append(queries, store.Query{OwnerUnit: u})
	}
	prefixes := []string{"9", "110107", "1101050010010010", "110105001001001/"}
	for _, g := range grids[1:] {
		for _, n := range []int{1, 2, 5, 6, 8, 9, 12, 14, 15} {
			if !slices.Contains(prefixes, g[:n]) {
				prefixes = append(prefixes, g[:n])
			}
		}
	}
	for _, g := range prefixes {
		queries = append(queries, store.Query{GridPrefix: g})
	}
	dues := []int64{t0 - minute, t0, t0 + 1, t0 + 7*minute, t0 + 20*minute + 1, t0 + 39*minute, t0 + 40*minute, t0 + 1000*minute}
	for _, d := range dues {
		queries = append(queries, store.Query{DueBefore: msTime(d)})
	}
	// Combinations: the driving index answers one filter, the rest are checked.
	for _, st := range []pb.State{pb.State_STATE_DISPATCHED, pb.State_STATE_CLOSED, pb.State_STATE_ACCEPTED} {
		queries = append(queries,
			store.Query{State: st, OwnerUnit: "unit-a"},
			store.Query{State: st, GridPrefix: "110105"},
			store.Query{State: st, DueBefore: msTime(t0 + 20*minute)},
			store.Query{State: st, OwnerUnit: "unit-ab", GridPrefix: "11", DueBefore: msTime(t0 + 30*minute)},
		)
	}
	queries = append(queries,
		store.Query{OwnerUnit: "unit-b", GridPrefix: "110105001"},
		store.Query{OwnerUnit: "unit-a", DueBefore: msTime(t0 + 10*minute)},
		store.Query{GridPrefix: "1101", DueBefore: msTime(t0 + 25*minute)},
		store.Query{OwnerUnit: "unit-ab", GridPrefix: "12", DueBefore: msTime(t0 + 35*minute)},
	)
	nonEmpty := 0
	for i, q := range queries {
		if len(expectList(q, all)) > 0 {
			nonEmpty++
		}
		sizes := []int{7, 5000}
		if i%8 == 0 {
			sizes = append(sizes, 1) // a page per case: every token is used
		}
		for _, size := range sizes {
			q.PageSize = size
			checkList(t, s, q, all)
		}
	}
	if nonEmpty < len(queries)/2 {
		t.Fatalf("only %d of %d queries match anything: the fixture is too sparse", nonEmpty, len(queries))
	}
}

func TestListDefaultPageSize(t *testing.T) {
	s := openMem(t)
	all := randomCases(rand.New(rand.NewPCG(7, 8)), 60)
	putCases(t, s, all)
	page, next, err := s.List(store.Query{})
	if err != nil || len(page) != 50 || next == "" {
		t.Fatalf("first page: %d cases, token %q, %v; want 50 and a token", len(page), next, err)
	}
	page, next, err = s.List(store.Query{PageToken: next})
	if err != nil || len(page) != 10 || next != "" {
		t.Fatalf("second page: %d cases, token %q, %v; want 10 and no token", len(page), next, err)
	}
	if page[0].Id != all[50].Id {
		t.Fatalf("second page starts at %s, want %s", page[0].Id, all[50].Id)
	}
}

func TestListExactPageHasNoToken(t *testing.T) {
	s := openMem(t)
	all := randomCases(rand.New(rand.NewPCG(9, 10)), 20)
	putCases(t, s, all)
	page, next, err := s.List(store.Query{PageSize: 20})
	if err != nil || len(page) != 20 {
		t.Fatalf("list: %d cases, %v", len(page), err)
	}
	if next != "" {
		t.Fatalf("a page that ends the list handed out token %q", next)
	}
}

func TestListBadPageToken(t *testing.T) {
	s := openMem(t)
	all := randomCases(rand.New(rand.NewPCG(11, 12)), 200)
	for _, c := range all {
		c.State = pb.State_STATE_REPORTED
		c.OwnerUnit = "unit-a"
	}
	putCases(t, s, all)
	_, byID, err := s.List(store.Query{PageSize: 10})
	if err != nil || byID == "" {
		t.Fatalf("list: token %q, %v", byID, err)
	}
	_, byState, err := s.List(store.Query{State: pb.State_STATE_REPORTED, PageSize: 10})
	if err != nil || byState == "" {
		t.Fatalf("list by state: token %q, %v", byState, err)
	}
	for _, tc := range []struct {
		name string
		q    store.Query
	}{
		{"not base64", store.Query{PageToken: "!!not base64!!"}},
		{"padded base64", store.Query{PageToken: base64.URLEncoding.EncodeToString([]byte("c/xy"))}},
		{"other key family", store.Query{PageToken: base64.RawURLEncoding.EncodeToString([]byte("r/req-1"))}},
		{"id token on a state query", store.Query{State: pb.State_STATE_REPORTED, PageToken: byID}},
		{"state token on another state", store.Query{State: pb.State_STATE_FILED, PageToken: byState}},
		{"state token on a unit query", store.Query{OwnerUnit: "unit-a", PageToken: byState}},
		{"state token on an unfiltered query", store.Query{PageToken: byState}},
		{"unit token on a longer unit", store.Query{OwnerUnit: "unit-ab", PageToken: base64.RawURLEncoding.EncodeToString([]byte("u/unit-a\x00x"))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cases, next, err := s.List(tc.q)
			if !errors.Is(err, store.ErrBadPageToken) {
				t.Fatalf("err = %v, want ErrBadPageToken", err)
			}
			if len(cases) != 0 || next != "" {
				t.Fatalf("refused list returned %d cases and token %q", len(cases), next)
			}
		})
	}
	// The tokens are good for the query that issued them.
	if page, _, err := s.List(store.Query{State: pb.State_STATE_REPORTED, PageSize: 10, PageToken: byState}); err != nil || len(page) != 10 || page[0].Id != all[10].Id {
		t.Fatalf("state token: %v", err)
	}
}

func TestListWithHistory(t *testing.T) {
	s := openMem(t)
	all := randomCases(rand.New(rand.NewPCG(13, 14)), 30)
	putCases(t, s, all)
	for _, q := range []store.Query{{}, {State: all[0].State}, {DueBefore: msTime(t0 + time.Hour.Milliseconds())}} {
		q.PageSize = 100
		lean, _, err := s.List(q)
		if err != nil || len(lean) == 0 {
			t.Fatalf("list %s: %d, %v", describe(q), len(lean), err)
		}
		for _, c := range lean {
			if c.History != nil {
				t.Fatalf("list %s: %s has history", describe(q), c.Id)
			}
		}
		q.WithHistory = true
		full, _, err := s.List(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range full {
			if len(c.History) != 2 {
				t.Fatalf("list %s with history: %s has %d entries, want 2", describe(q), c.Id, len(c.History))
			}
		}
	}
	// Dropping history in a list never touches the stored case.
	if c, err := s.GetCase(all[0].Id); err != nil || !proto.Equal(c, all[0]) {
		t.Fatalf("stored case after lists: %v, %v", c, err)
	}
}

func TestListDueBeforeOrder(t *testing.T) {
	s := openMem(t)
	mk := func(seq int, st pb.State, deadline int64) *pb.Case {
		return mkCase(caseID("110105", seq), st, "unit-a", "110105001001001", deadline)
	}
	cases := []*pb.Case{
		mk(1, pb.State_STATE_DISPATCHED, t0+30*minute),
		mk(2, pb.State_STATE_ACCEPTED, t0+10*minute),
		mk(3, pb.State_STATE_DISPATCHED, t0+20*minute),
		mk(4, pb.State_STATE_SUSPENDED, t0+10*minute),   // suspended: its clock stands, never due
		mk(11, pb.State_STATE_DISPATCHED, t0+10*minute), // same deadline as 2: id order
		mk(5, pb.State_STATE_CLOSED, t0+5*minute),       // closed: never due
		mk(6, pb.State_STATE_VOIDED, t0+5*minute),       // voided: never due
		mk(7, pb.State_STATE_NOT_FILED, t0+5*minute),    // not filed: never due
		mk(8, pb.State_STATE_FILED, 0),                  // no deadline
		mk(9, pb.State_STATE_HANDLED, t0+40*minute),     // exactly at the cutoff below: not before it
		mk(10, pb.State_STATE_ACCEPTED, t0-1000*minute),
	}
	putCases(t, s, cases)
	want := []string{caseID("110105", 10), caseID("110105", 2), caseID("110105", 11), caseID("110105", 3), caseID("110105", 1)}
	for _, size := range []int{1, 2, 50} {
		got := listAll(t, s, store.Query{DueBefore: msTime(t0 + 40*minute), PageSize: size})
		if !slices.Equal(ids(got), want) {
			t.Fatalf("due before, page size %d: got %q, want %q", size, ids(got), want)
		}
	}
	got := listAll(t, s, store.Query{DueBefore: msTime(t0 + 40*minute + 1)})
	if len(got) != 6 || got[5].Id != caseID("110105", 9) {
		t.Fatalf("cutoff just after case 9: got %q", ids(got))
	}
	if got := listAll(t, s, store.Query{DueBefore: msTime(t0 - 1000*minute)}); len(got) != 0 {
		t.Fatalf("cutoff at the earliest deadline: got %q, want none", ids(got))
	}
}

// A cutoff with sub-millisecond precision (due_before comes from a
// protobuf Timestamp with nanos) still returns a case due within the same
// millisecond but before the cutoff.
func TestListDueBeforeSubMillisecond(t *testing.T) {
	s := openMem(t)
	c := mkCase(caseID("110105", 1), pb.State_STATE_DISPATCHED, "", "", t0)
	putCase(t, s, nil, c)
	cut := msTime(t0).Add(500 * time.Microsecond)
	if !c.Deadline.AsTime().Before(cut) {
		t.Fatal("fixture: deadline is not before the cutoff")
	}
	got, _, err := s.List(store.Query{DueBefore: cut})
	if err != nil || len(got) != 1 {
		t.Fatalf("due before %v: %q, %v; want the case due at %v", cut, ids(got), err, c.Deadline.AsTime())
	}
	// The same cutoff through another driving index agrees.
	got, _, err = s.List(store.Query{State: pb.State_STATE_DISPATCHED, DueBefore: cut})
	if err != nil || len(got) != 1 {
		t.Fatalf("state + due before: %q, %v", ids(got), err)
	}
}

// A filter the driving index cannot answer visits at most MaxScan entries
// per page and hands out a token to continue.
func TestListMaxScanBoundsAPage(t *testing.T) {
	if testing.Short() {
		t.Skip("writes more than MaxScan cases")
	}
	s := openMem(t)
	n := store.MaxScan + 50
	all := make([]*pb.Case, n)
	for i := range all {
		all[i] = mkCase(caseID("110105", i+1), pb.State_STATE_REPORTED, "unit-a", "", 0)
	}
	all[n-1].OwnerUnit = "unit-rare"
	putCases(t, s, all)

	q := store.Query{State: pb.State_STATE_REPORTED, OwnerUnit: "unit-rare", PageSize: 10}
	page, next, err := s.List(q)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 0 || next == "" {
		t.Fatalf("first page: %q, token %q; want no case yet and a token", ids(page), next)
	}
	q.PageToken = next
	page, next, err = s.List(q)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 1 || page[0].Id != all[n-1].Id || next != "" {
		t.Fatalf("second page: %q, token %q; want %s and no token", ids(page), next, all[n-1].Id)
	}
}
