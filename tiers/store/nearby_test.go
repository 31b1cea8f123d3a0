package store_test

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"slices"
	"strings"
	"testing"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

const grid = "320582110152102"

func nearCase(id string, st pb.State, minor string, reportedMs int64) *pb.Case {
	c := mkCase(id, st, "u", grid, 0)
	c.MinorCode = minor
	c.ReportedAt = ts(reportedMs)
	return c
}

var class02 = store.NearbyClass{Grid: grid, Kind: pb.Kind_KIND_EVENT, Major: "01", Minor: "02"}

func openIDs(tb testing.TB, s *store.Store, k store.NearbyClass, since int64) []string {
	tb.Helper()
	var out []string
	if err := s.NearbyOpen(k, time.UnixMilli(since), func(e store.NearbyEntry) bool {
		out = append(out, e.ID)
		return true
	}); err != nil {
		tb.Fatal(err)
	}
	return out
}

func closedIDs(tb testing.TB, s *store.Store, k store.NearbyClass, since, until int64) []string {
	tb.Helper()
	var out []string
	if err := s.NearbyClosed(k, time.UnixMilli(since), time.UnixMilli(until), func(e store.NearbyEntry) bool {
		out = append(out, e.ID)
		return true
	}); err != nil {
		tb.Fatal(err)
	}
	return out
}

// TestNearbyIndexFollowsTheCase: an open case is found by its class, grid
// and report time, newest first, never across classes or outside the
// window; closing it moves it to the closed entries (by closing time),
// voiding or deleting it removes it.
func TestNearbyIndexFollowsTheCase(t *testing.T) {
	s := openMem(t)
	a := nearCase("a-1", pb.State_STATE_REPORTED, "02", t0)
	b := nearCase("b-1", pb.State_STATE_DISPATCHED, "02", t0+10*minute)
	other := nearCase("c-1", pb.State_STATE_DISPATCHED, "04", t0+5*minute)
	before1970 := nearCase("d-1", pb.State_STATE_DISPATCHED, "02", -5*minute)
	noGrid := nearCase("e-1", pb.State_STATE_DISPATCHED, "02", t0)
	noGrid.GridCode = ""
	unlocated := nearCase("f-1", pb.State_STATE_DISPATCHED, "02", t0+20*minute)
	unlocated.Location = nil
	putCases(t, s, []*pb.Case{a, b, other, before1970, noGrid, unlocated})

	if got, want := openIDs(t, s, class02, t0), []string{"f-1", "b-1", "a-1"}; !slices.Equal(got, want) {
		t.Fatalf("open since t0: %v, want %v", got, want)
	}
	if got, want := openIDs(t, s, class02, t0+minute), []string{"f-1", "b-1"}; !slices.Equal(got, want) {
		t.Fatalf("open since t0+1m: %v, want %v", got, want)
	}
	if got, want := openIDs(t, s, class02, -10*minute), []string{"f-1", "b-1", "a-1", "d-1"}; !slices.Equal(got, want) {
		t.Fatalf("open since before 1970: %v, want %v", got, want)
	}
	k04 := class02
	k04.Minor = "04"
	if got := openIDs(t, s, k04, 0); !slices.Equal(got, []string{"c-1"}) {
		t.Fatalf("class 04: %v", got)
	}
	// The entry carries the time and the coordinates; an unlocated case has none.
	var entries []store.NearbyEntry
	if err := s.NearbyOpen(class02, time.UnixMilli(t0), func(e store.NearbyEntry) bool { entries = append(entries, e); return true }); err != nil {
		t.Fatal(err)
	}
	if entries[0].Located || !entries[1].Located || entries[1].Lat != 31.25 || entries[1].Lng != 121.5 || !entries[1].At.Equal(time.UnixMilli(t0+10*minute)) {
		t.Fatalf("entries %+v", entries)
	}
	// fn stops the walk.
	n := 0
	if err := s.NearbyOpen(class02, time.UnixMilli(0), func(store.NearbyEntry) bool { n++; return false }); err != nil || n != 1 {
		t.Fatalf("stopped walk visited %d, %v", n, err)
	}

	// Closing moves it to the closed entries, by closing time.
	closed := clone(a)
	closed.State, closed.ClosedAt = pb.State_STATE_CLOSED, ts(t0+60*minute)
	putCase(t, s, a, closed)
	if got := openIDs(t, s, class02, t0); !slices.Equal(got, []string{"f-1", "b-1"}) {
		t.Fatalf("open after close: %v", got)
	}
	if got := closedIDs(t, s, class02, t0, t0+60*minute); !slices.Equal(got, []string{"a-1"}) {
		t.Fatalf("closed in window: %v", got)
	}
	if got := closedIDs(t, s, class02, t0, t0+60*minute-1); len(got) != 0 {
		t.Fatalf("closed before it closed: %v", got)
	}
	if got := closedIDs(t, s, class02, t0+60*minute+1, t0+120*minute); len(got) != 0 {
		t.Fatalf("closed after the window: %v", got)
	}
	// Voided: in neither.
	voided := clone(b)
	voided.State = pb.State_STATE_VOIDED
	putCase(t, s, b, voided)
	if got := openIDs(t, s, class02, t0); !slices.Equal(got, []string{"f-1"}) {
		t.Fatalf("open after void: %v", got)
	}
	// Deleted (anti-entropy drops a stray mirror): gone.
	if err := s.Update(func(tx *store.Tx) error { return tx.DeleteCase("a-1") }); err != nil {
		t.Fatal(err)
	}
	if got := closedIDs(t, s, class02, 0, t0+120*minute); len(got) != 0 {
		t.Fatalf("closed after delete: %v", got)
	}
}

// TestNearbyIndexReadsOnlyTheWindow: a look-up visits the entries inside
// its window, however many cases of the class lie outside it.
func TestNearbyIndexReadsOnlyTheWindow(t *testing.T) {
	s := openMem(t)
	var cs []*pb.Case
	for i := 0; i < 5000; i++ {
		cs = append(cs, nearCase(caseID("old", i), pb.State_STATE_DISPATCHED, "02", t0-int64(i+10)*minute))
		c := nearCase(caseID("shut", i), pb.State_STATE_CLOSED, "02", t0-int64(i+10)*minute)
		c.ClosedAt = ts(t0 - int64(i+10)*minute)
		cs = append(cs, c)
	}
	for i := 0; i < 3; i++ {
		cs = append(cs, nearCase(caseID("new", i), pb.State_STATE_DISPATCHED, "02", t0+int64(i)*minute))
	}
	putCases(t, s, cs)
	stats := s.EnableStats()
	look := func() store.StatsSnapshot {
		t.Helper()
		before := stats.Snapshot()
		if got := openIDs(t, s, class02, t0); len(got) != 3 {
			t.Fatalf("open in window: %v", got)
		}
		if got := closedIDs(t, s, class02, t0-9*minute, t0); len(got) != 0 {
			t.Fatalf("closed in window: %v", got)
		}
		return stats.Snapshot().Sub(before)
	}
	// The first look-ups also read the class's newest entries into the
	// cache's lists, 64 a class (nearcache.go), past their windows: a
	// bound of its own, not the 5,000 outside.
	if d := look(); d.Reads() > 2*64 || d.Decoded != 0 {
		t.Fatalf("first look-ups read %+v, want at most 128 reads (two lists) and no case decoded", d)
	}
	// Then three entries in the window, one past it (where the open walk
	// stops); one for the closed one, whose first entry lies past its
	// window.
	if d := look(); d.Scanned < 3 || d.Reads() > 5 || d.Decoded != 0 {
		t.Fatalf("look-ups read %+v, want at most 5 reads and no case decoded", d)
	}
}

// TestNearbyIndexRestoredFromOldSnapshot: a snapshot of a replica that did
// not keep the nearby index (no N/ records) restores into a store whose
// look-ups find its cases.
func TestNearbyIndexRestoredFromOldSnapshot(t *testing.T) {
	src := openMem(t)
	putCases(t, src, []*pb.Case{nearCase("a-1", pb.State_STATE_REPORTED, "02", t0), nearCase("b-1", pb.State_STATE_REPORTED, "02", t0+minute)})
	setApplied(t, src, 7, 1)
	var old []record
	for _, r := range parseSnapshot(t, snapshotBytes(t, src)) {
		if !strings.HasPrefix(r.key, "N/") {
			old = append(old, r)
		}
	}
	dst := openMem(t)
	if err := dst.Restore(bytes.NewReader(encodeSnapshot(old))); err != nil {
		t.Fatal(err)
	}
	if got := openIDs(t, dst, class02, t0); !slices.Equal(got, []string{"b-1", "a-1"}) {
		t.Fatalf("after restoring an old snapshot: %v", got)
	}
	// And the rebuilt index is whole: the restored store snapshots like
	// the source.
	if a, b := parseSnapshot(t, snapshotBytes(t, dst)), parseSnapshot(t, snapshotBytes(t, src)); !slices.Equal(a, b) {
		t.Fatalf("restored store differs from its source:\n%q\n%q", recKeys(a), recKeys(b))
	}
}

// encodeSnapshot writes records in the snapshot format.
func encodeSnapshot(recs []record) []byte {
	b := []byte("cityhub-state-v1\n")
	for _, r := range recs {
		b = binary.AppendUvarint(b, uint64(len(r.key)))
		b = append(b, r.key...)
		b = binary.AppendUvarint(b, uint64(len(r.val)))
		b = append(b, r.val...)
	}
	b = append(b, 0)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}
