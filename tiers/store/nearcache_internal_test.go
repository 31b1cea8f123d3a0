package store

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// openQuiet opens an in-memory store closed at the end of the test.
func openQuiet(t *testing.T) *Store {
	t.Helper()
	s, err := Open(Options{InMemory: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// walkNearby is the look-up without the cache: the tree alone.
func (s *Store) walkNearby(family string, k NearbyClass, until, since time.Time, fn func(NearbyEntry) bool) error {
	prefix := string(nearClassPrefix(family, k))
	sinceMs := since.UnixMilli()
	_, err := s.walkNear(prefix, "", nearListLen, func(e NearbyEntry) bool {
		if e.At.UnixMilli() < sinceMs {
			return false
		}
		if e.At.Before(since) || !until.IsZero() && e.At.After(until) {
			return true
		}
		return fn(e)
	})
	return err
}

// TestNearbyCacheAnswersAsTheTree: under random reports (some back-dated),
// moves, closings, reopenings, deletions and look-ups of every shape (a
// window, an upper bound, a caller stopping early), every look-up through
// the cache gives exactly the entries, in exactly the order, that a walk
// of the tree alone gives, with lists built, extended, cut and dropped on
// the way; and the lists are really used.
func TestNearbyCacheAnswersAsTheTree(t *testing.T) {
	s := openQuiet(t)
	rng := rand.New(rand.NewPCG(7, 13))
	const t0 = int64(1_780_000_000_000)
	grids := []string{"320505001002007", "320505001002008"}
	classes := []NearbyClass{}
	for _, g := range grids {
		for _, minor := range []string{"02", "04"} {
			classes = append(classes, NearbyClass{Grid: g, Kind: pb.Kind_KIND_EVENT, Major: "01", Minor: minor})
		}
	}
	cases := map[string]*pb.Case{}
	var ids []string
	seq := 0
	put := func(old, c *pb.Case) {
		t.Helper()
		if err := s.Update(func(tx *Tx) error { return tx.PutCase(old, c) }); err != nil {
			t.Fatal(err)
		}
		cases[c.Id] = c
	}
	at := func(ms int64) *timestamppb.Timestamp { return timestamppb.New(time.UnixMilli(ms)) }
	now := t0
	hits := 0
	for step := range 4000 {
		now += int64(rng.IntN(60_000))
		switch r := rng.IntN(10); {
		case r < 4 || len(ids) == 0: // a report, sometimes back-dated, sometimes in the same millisecond
			seq++
			k := classes[rng.IntN(len(classes))]
			when := now
			switch rng.IntN(6) {
			case 0:
				when -= int64(rng.IntN(48)) * 3_600_000
			case 1:
				when = cases[ids[max(0, len(ids)-1)]].GetReportedAt().AsTime().UnixMilli()
			}
			c := &pb.Case{Id: fmt.Sprintf("320505-20260501-%06d", seq), GridCode: k.Grid, Kind: k.Kind, MajorCode: k.Major,
				MinorCode: k.Minor, State: pb.State_STATE_REPORTED, Version: 1, ReportedAt: at(when),
				Location: &pb.Location{Lat: 31.3 + rng.Float64()/1000, Lng: 120.6 + rng.Float64()/1000}}
			put(nil, c)
			ids = append(ids, c.Id)
		case r < 6: // close, or reopen a closed one
			old := cases[ids[rng.IntN(len(ids))]]
			c := proto.Clone(old).(*pb.Case)
			c.Version++
			if old.State == pb.State_STATE_CLOSED {
				c.State, c.ClosedAt = pb.State_STATE_DISPATCHED, nil
			} else {
				c.State, c.ClosedAt = pb.State_STATE_CLOSED, at(now)
			}
			put(old, c)
		case r < 7: // moved a little (a new value under the same key)
			old := cases[ids[rng.IntN(len(ids))]]
			c := proto.Clone(old).(*pb.Case)
			c.Version++
			c.Location = &pb.Location{Lat: 31.3 + rng.Float64()/1000, Lng: 120.6 + rng.Float64()/1000}
			put(old, c)
		case r < 8: // deleted
			i := rng.IntN(len(ids))
			id := ids[i]
			if err := s.Update(func(tx *Tx) error { return tx.DeleteCase(id) }); err != nil {
				t.Fatal(err)
			}
			delete(cases, id)
			ids = slices.Delete(ids, i, i+1)
		default: // a look-up
		}
		if step%997 == 0 {
			s.near.reset() // as a rebuild does
		}
		// Look-ups of every shape, through the cache and through the tree.
		for range 2 {
			k := classes[rng.IntN(len(classes))]
			family := pfxNearOpen
			var until time.Time
			if rng.IntN(3) == 0 {
				family, until = pfxNearClosed, time.UnixMilli(now-int64(rng.IntN(3_600_000)))
			}
			since := time.UnixMilli(now - int64(rng.IntN(72))*3_600_000)
			stop := 1 + rng.IntN(100)
			collect := func(look func(string, NearbyClass, time.Time, time.Time, func(NearbyEntry) bool) error) []NearbyEntry {
				var out []NearbyEntry
				if err := look(family, k, until, since, func(e NearbyEntry) bool {
					out = append(out, e)
					return len(out) < stop
				}); err != nil {
					t.Fatal(err)
				}
				return out
			}
			if sn, _ := s.near.get(string(nearClassPrefix(family, k))); sn != nil {
				hits++
			}
			got, want := collect(s.nearby), collect(s.walkNearby)
			if !slices.EqualFunc(got, want, func(a, b NearbyEntry) bool {
				return a.ID == b.ID && a.At.Equal(b.At) && a.Lat == b.Lat && a.Lng == b.Lng && a.Located == b.Located
			}) {
				t.Fatalf("step %d, %s %+v since %v until %v, stop %d:\ncache %v\ntree  %v", step, family, k, since, until, stop, got, want)
			}
		}
	}
	if hits < 4000 {
		t.Fatalf("%d look-ups found a list: the cache is hardly used", hits)
	}
}

// TestNearbyCacheUnderConcurrentCommits: look-ups that build and extend
// lists while commits change the same classes leave every list exactly
// the newest part of its class in the tree (a list built from a tree
// older than a commit the cache already applied would miss that commit
// for good).
func TestNearbyCacheUnderConcurrentCommits(t *testing.T) {
	s := openQuiet(t)
	const t0 = int64(1_780_000_000_000)
	k := NearbyClass{Grid: "320505001002007", Kind: pb.Kind_KIND_EVENT, Major: "01", Minor: "02"}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 1))
			for {
				select {
				case <-done:
					return
				default:
				}
				n := 0
				stop := 1 + rng.IntN(80)
				if err := s.NearbyOpen(k, time.UnixMilli(t0), func(NearbyEntry) bool { n++; return n < stop }); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	var open []*pb.Case
	rng := rand.New(rand.NewPCG(3, 5))
	for i := range 1000 {
		c := &pb.Case{Id: fmt.Sprintf("320505-20260501-%06d", i+1), GridCode: k.Grid, Kind: k.Kind, MajorCode: k.Major,
			MinorCode: k.Minor, State: pb.State_STATE_REPORTED, Version: 1,
			ReportedAt: timestamppb.New(time.UnixMilli(t0 + int64(i)*1000 - int64(rng.IntN(200))*1000))}
		var old *pb.Case
		if len(open) > 0 && rng.IntN(3) == 0 { // or close one of the newest
			j := len(open) - 1 - rng.IntN(min(len(open), 80))
			old = open[j]
			c = proto.Clone(old).(*pb.Case)
			c.Version++
			c.State, c.ClosedAt = pb.State_STATE_CLOSED, timestamppb.New(time.UnixMilli(t0+int64(i)*1000))
			open = slices.Delete(open, j, j+1)
		} else {
			open = append(open, c)
		}
		if err := s.Update(func(tx *Tx) error { return tx.PutCase(old, c) }); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	prefix := string(nearClassPrefix(pfxNearOpen, k))
	sn, _ := s.near.get(prefix)
	if sn == nil {
		t.Fatal("no list after thousands of look-ups")
	}
	var tree []string
	end, err := s.walkNear(prefix, "", nearListLen, func(e NearbyEntry) bool {
		tree = append(tree, nearKey(prefix, e))
		return len(tree) <= len(sn.es)
	})
	if err != nil {
		t.Fatal(err)
	}
	var list []string // newest first, as the walk
	for i := len(sn.es) - 1; i >= 0; i-- {
		list = append(list, nearKey(prefix, sn.entry(&sn.es[i])))
	}
	if len(tree) < len(list) || !slices.Equal(tree[:len(list)], list) {
		t.Fatalf("the list is not the newest part of the class:\nlist %q\ntree %q", list, tree)
	}
	if sn.complete && (!end || len(tree) != len(list)) {
		t.Fatalf("the list says complete: %d entries, the tree has more", len(list))
	}
}

// TestNearbyCacheRefusesAListOlderThanACommit: a commit applied between a
// look-up's walk and its list's put (here, deterministically, from the
// hook between them) makes the put refused, so the report it brought is
// in the next look-up's answer.
func TestNearbyCacheRefusesAListOlderThanACommit(t *testing.T) {
	s := openQuiet(t)
	const t0 = int64(1_780_000_000_000)
	k := NearbyClass{Grid: "320505001002007", Kind: pb.Kind_KIND_EVENT, Major: "01", Minor: "02"}
	report := func(n int) {
		c := &pb.Case{Id: fmt.Sprintf("320505-20260501-%06d", n), GridCode: k.Grid, Kind: k.Kind, MajorCode: k.Major,
			MinorCode: k.Minor, State: pb.State_STATE_REPORTED, Version: 1, ReportedAt: timestamppb.New(time.UnixMilli(t0 + int64(n)))}
		if err := s.Update(func(tx *Tx) error { return tx.PutCase(nil, c) }); err != nil {
			t.Fatal(err)
		}
	}
	report(1)
	ids := func() []string {
		var out []string
		if err := s.NearbyOpen(k, time.UnixMilli(t0), func(e NearbyEntry) bool { out = append(out, e.ID); return true }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	nearBuilt = func() { nearBuilt = nil; report(2) }
	defer func() { nearBuilt = nil }()
	if got := ids(); !slices.Equal(got, []string{"320505-20260501-000001"}) {
		t.Fatalf("first look-up: %v", got)
	}
	if got := ids(); !slices.Equal(got, []string{"320505-20260501-000002", "320505-20260501-000001"}) {
		t.Fatalf("after a report committed while the list was built: %v, want both", got)
	}
}

// TestNearbyListAppendsInPlace: a report, its class's newest entry, is
// appended to the list's array rather than copied into a new one (the
// copy of 64 entries at every report was 1.8 KB of a leader's
// allocations a create), and what a version holds is never changed by
// the versions after it.
func TestNearbyListAppendsInPlace(t *testing.T) {
	const t0 = int64(1_780_000_000_000)
	k := NearbyClass{Grid: "320505001002007", Kind: pb.Kind_KIND_EVENT, Major: "01", Minor: "02"}
	change := func(i int) nearChange {
		c := &pb.Case{Id: fmt.Sprintf("320505-20260601-%05d", i), GridCode: k.Grid, Kind: k.Kind, MajorCode: k.Major, MinorCode: k.Minor,
			State: pb.State_STATE_REPORTED, ReportedAt: timestamppb.New(time.UnixMilli(t0 + int64(i)*1000))}
		es := nearbyEntries(c)
		if len(es) != 1 {
			t.Fatalf("case %d: %d nearby entries", i, len(es))
		}
		return nearChange{prefixLen: nearPrefixLen(es[0].key), key: es[0].key, val: es[0].val}
	}
	const n = 20 * nearListLen
	changes := make([]nearChange, n)
	for i := range changes {
		changes[i] = change(i)
	}
	sn := &nearSnap{complete: true}
	var kept []*nearSnap
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	for i, ch := range changes {
		next := sn.with(ch)
		if next == nil {
			t.Fatalf("report %d: the list took no change", i)
		}
		sn = next
		if i%97 == 0 {
			kept = append(kept, sn)
		}
	}
	runtime.ReadMemStats(&ms)
	if per := (ms.TotalAlloc - before) / n; per > 1024 {
		t.Errorf("%d bytes allocated a report: the list is copied, not appended to", per)
	}
	// The last version: the newest nearListLen, oldest first, incomplete.
	if len(sn.es) != nearListLen || sn.complete {
		t.Fatalf("%d entries, complete %v; want %d, incomplete", len(sn.es), sn.complete, nearListLen)
	}
	for j, r := range sn.es {
		e, i := sn.entry(&r), n-nearListLen+j
		if want := t0 + int64(i)*1000; e.At.UnixMilli() != want {
			t.Fatalf("entry %d at %d, want %d", j, e.At.UnixMilli(), want)
		}
		if want := fmt.Sprintf("320505-20260601-%05d", i); e.ID != want {
			t.Fatalf("entry %d: id %q, want %q", j, e.ID, want)
		}
	}
	// Every version kept on the way still holds what it held, ids too.
	for v, old := range kept {
		last := v * 97
		for j, r := range old.es {
			e, i := old.entry(&r), last-len(old.es)+1+j
			if want := t0 + int64(i)*1000; e.At.UnixMilli() != want {
				t.Fatalf("version after report %d, entry %d: at %d, want %d", last, j, e.At.UnixMilli(), want)
			}
			if want := fmt.Sprintf("320505-20260601-%05d", i); e.ID != want {
				t.Fatalf("version after report %d, entry %d: id %q, want %q", last, j, e.ID, want)
			}
		}
	}
}

// TestNearbyWalkReadsTheTreeWithoutACopy: a look-up that walks the tree
// (a class without a list, and one whose window reaches past its list)
// reads the committed tree under the index's lock, a chunk at a time:
// it takes no reader's copy, so the commits after it change the tree in
// place; and a class of several chunks comes whole and in order, from
// the newest and from a key in the middle.
func TestNearbyWalkReadsTheTreeWithoutACopy(t *testing.T) {
	s := openQuiet(t)
	const t0 = int64(1_780_000_000_000)
	k := NearbyClass{Grid: "320505001002007", Kind: pb.Kind_KIND_EVENT, Major: "01", Minor: "02"}
	const n = 3*nearChunk + 5
	var want []string // newest first
	for i := range n {
		c := &pb.Case{Id: fmt.Sprintf("320505-20260501-%06d", i), GridCode: k.Grid, Kind: k.Kind, MajorCode: k.Major,
			MinorCode: k.Minor, State: pb.State_STATE_REPORTED, Version: 1, ReportedAt: timestamppb.New(time.UnixMilli(t0 + int64(i/3)))}
		if err := s.Update(func(tx *Tx) error { return tx.PutCase(nil, c) }); err != nil {
			t.Fatal(err)
		}
		want = append(want, c.Id)
	}
	slices.Reverse(want) // three a millisecond, by id: newest first is the reverse
	copies := s.mem.copies.Load()
	for round := range 3 {
		var got []string
		if err := s.NearbyOpen(k, time.UnixMilli(t0), func(e NearbyEntry) bool { got = append(got, e.ID); return true }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: %d entries, want %d, in order", round, len(got), len(want))
		}
		// A commit between look-ups: the next one must not find a copy
		// taken before it.
		c := &pb.Case{Id: fmt.Sprintf("320505-20260502-%06d", round), GridCode: "320505001002008", State: pb.State_STATE_REPORTED, Version: 1,
			Kind: k.Kind, MajorCode: k.Major, MinorCode: k.Minor, ReportedAt: timestamppb.New(time.UnixMilli(t0))}
		if err := s.Update(func(tx *Tx) error { return tx.PutCase(nil, c) }); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.mem.copies.Load() - copies; got != 0 {
		t.Errorf("the look-ups took %d copies of the tree, want none", got)
	}
	prefix := string(nearClassPrefix(pfxNearOpen, k))
	mid := want[nearChunk+7]
	resume := ""
	// From a key in the middle (as a list's oldest entry resumes).
	var from []string
	if err := s.NearbyOpen(k, time.UnixMilli(t0), func(e NearbyEntry) bool {
		if e.ID == mid {
			resume = nearKey(prefix, e)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	end, err := s.walkNear(prefix, resume, 1, func(e NearbyEntry) bool { from = append(from, e.ID); return true })
	if err != nil || !end {
		t.Fatalf("walk from the middle: end %v, %v", end, err)
	}
	if !slices.Equal(from, want[nearChunk+8:]) {
		t.Fatalf("walk from the middle: %d entries, want the %d after it, in order", len(from), len(want)-nearChunk-8)
	}
}
