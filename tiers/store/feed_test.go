package store_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

func openFeed(tb testing.TB, o store.FeedOptions) *store.Store {
	tb.Helper()
	s, err := store.Open(store.Options{InMemory: true, Logger: quietLogger(), Feed: o})
	if err != nil {
		tb.Fatalf("open in-memory store: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// changes reads every change after after.
func allChanges(tb testing.TB, s *store.Store, after uint64) []*pb.CaseChange {
	tb.Helper()
	var out []*pb.CaseChange
	for {
		page, _, _, err := s.Changes(after, 7)
		if err != nil {
			tb.Fatalf("changes after %d: %v", after, err)
		}
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		after = page[len(page)-1].Revision
	}
}

// TestFeedRecordsEveryCaseWrite: each PutCase and DeleteCase is one change
// at the next revision, with what watchers filter on, the command's index
// and stamped time, in the same transaction as the case.
func TestFeedRecordsEveryCaseWrite(t *testing.T) {
	s := openMem(t)
	a := mkCase(caseID("320582", 1), pb.State_STATE_REPORTED, "", "320582110152102", 0)
	a.ReportedBy = "key:app"
	b := mkCase(caseID("320582", 2), pb.State_STATE_FILED, "", "320582110152103", 0)
	err := s.Update(func(tx *store.Tx) error {
		tx.SetChangeContext(7, t0)
		if err := tx.PutCase(nil, a); err != nil {
			return err
		}
		return tx.PutCase(nil, b)
	})
	if err != nil {
		t.Fatal(err)
	}
	a2 := clone(a)
	a2.State, a2.OwnerUnit, a2.Version, a2.Overdue, a2.Holder = pb.State_STATE_DISPATCHED, "huanwei-01", 3, true, "c-1"
	a2.History = append(a2.History, &pb.HistoryEntry{Action: pb.Action_ACTION_DISPATCH, Version: 3})
	err = s.Update(func(tx *store.Tx) error {
		tx.SetChangeContext(9, t0+minute)
		if err := tx.PutCase(a, a2); err != nil {
			return err
		}
		return tx.DeleteCase(b.Id)
	})
	if err != nil {
		t.Fatal(err)
	}
	// A refused transaction leaves the feed as it was.
	boom := errors.New("boom")
	if err := s.Update(func(tx *store.Tx) error {
		if err := tx.PutCase(a2, a2); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("update: %v", err)
	}

	got := allChanges(t, s, 0)
	if len(got) != 4 {
		t.Fatalf("%d changes, want 4: %v", len(got), got)
	}
	want := []struct {
		rev     uint64
		id      string
		kind    pb.ChangeKind
		state   pb.State
		version uint64
		index   uint64
		at      int64
	}{
		{1, a.Id, pb.ChangeKind_CHANGE_KIND_CREATED, pb.State_STATE_REPORTED, 2, 7, t0},
		{2, b.Id, pb.ChangeKind_CHANGE_KIND_CREATED, pb.State_STATE_FILED, 2, 7, t0},
		{3, a.Id, pb.ChangeKind_CHANGE_KIND_UPDATED, pb.State_STATE_DISPATCHED, 3, 9, t0 + minute},
		{4, b.Id, pb.ChangeKind_CHANGE_KIND_REMOVED, pb.State_STATE_FILED, 2, 9, t0 + minute},
	}
	for i, w := range want {
		g := got[i]
		if g.Revision != w.rev || g.CaseId != w.id || g.Kind != w.kind || g.State != w.state || g.Version != w.version ||
			g.LogIndex != w.index || g.At.AsTime().UnixMilli() != w.at {
			t.Errorf("change %d = %v, want %+v", i, g, w)
		}
	}
	if g := got[0]; g.ReportedBy != "key:app" || g.GridCode != a.GridCode || g.Action != pb.Action_ACTION_SUPERVISE {
		t.Errorf("first change lost its fields: %v", g)
	}
	if g := got[2]; g.OwnerUnit != "huanwei-01" || !g.Overdue || g.Holder != "c-1" || g.Action != pb.Action_ACTION_DISPATCH {
		t.Errorf("dispatch change lost its fields: %v", g)
	}
	head, oldest, err := s.FeedBounds()
	if err != nil || head != 4 || oldest != 1 {
		t.Fatalf("bounds = %d, %d, %v; want 4, 1", head, oldest, err)
	}
	if page, _, _, err := s.Changes(4, 10); err != nil || len(page) != 0 {
		t.Fatalf("changes after the head = %v, %v; want none", page, err)
	}
	if page, _, _, err := s.Changes(99, 10); err != nil || len(page) != 0 {
		t.Fatalf("changes past the head (a replica behind) = %v, %v; want none", page, err)
	}
}

// TestFeedWindowTrimsAndRefusesOldPositions: the feed keeps the last
// Window changes; a position before them is ErrCompacted with the bounds.
// A store reopened with a smaller window catches up a few changes at a
// time, never in one long transaction.
func TestFeedWindowTrimsAndRefusesOldPositions(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(store.Options{Dir: dir, Logger: quietLogger(), Feed: store.FeedOptions{Window: 10}})
	if err != nil {
		t.Fatal(err)
	}
	c := mkCase(caseID("320582", 1), pb.State_STATE_REPORTED, "", "320582110152102", 0)
	for i := 0; i < 25; i++ {
		next := clone(c)
		next.Version++
		putCase(t, s, c, next)
		c = next
	}
	head, oldest, err := s.FeedBounds()
	if err != nil || head != 25 || oldest != 16 {
		t.Fatalf("bounds = %d, %d, %v; want 25, 16", head, oldest, err)
	}
	if got := allChanges(t, s, 15); len(got) != 10 || got[0].Revision != 16 || got[9].Revision != 25 {
		t.Fatalf("kept changes: %d from %v", len(got), got)
	}
	_, _, _, err = s.Changes(14, 10)
	var ce *store.CompactedError
	if !errors.As(err, &ce) || !errors.Is(err, store.ErrCompacted) || ce.Oldest != 16 || ce.Head != 25 || ce.After != 14 {
		t.Fatalf("position 14 = %v, want ErrCompacted naming oldest 16 and head 25", err)
	}
	if page, _, _, err := s.Changes(15, 1); err != nil || len(page) != 1 || page[0].Revision != 16 {
		t.Fatalf("the position just before the oldest kept = %v, %v; want revision 16", page, err)
	}

	// Reopened with a window of 3: each new change trims a few more,
	// until 3 are left; the numbering goes on.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = store.Open(store.Options{Dir: dir, Logger: quietLogger(), Feed: store.FeedOptions{Window: 3}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	oldests := []uint64{}
	for i := 0; i < 3; i++ {
		next := clone(c)
		next.Version++
		putCase(t, s, c, next)
		c = next
		_, oldest, err := s.FeedBounds()
		if err != nil {
			t.Fatal(err)
		}
		oldests = append(oldests, oldest)
	}
	if want := []uint64{20, 24, 26}; !slices.Equal(oldests, want) {
		t.Fatalf("oldest after each change with the smaller window = %v, want %v (4 at a time, then the window)", oldests, want)
	}
	if got := allChanges(t, s, 25); len(got) != 3 || got[0].Revision != 26 || got[2].Revision != 28 {
		t.Fatalf("kept changes: %v", got)
	}
}

// TestFeedMaxAgeTrimsByStampedTime: changes older than MaxAge, measured
// on the stamped time of the newest change (never a clock), are dropped.
func TestFeedMaxAgeTrimsByStampedTime(t *testing.T) {
	s := openFeed(t, store.FeedOptions{Window: 1000, MaxAge: time.Hour})
	c := mkCase(caseID("320582", 1), pb.State_STATE_REPORTED, "", "320582110152102", 0)
	write := func(atMs int64) {
		t.Helper()
		next := clone(c)
		next.Version++
		if err := s.Update(func(tx *store.Tx) error {
			tx.SetChangeContext(uint64(next.Version), atMs)
			return tx.PutCase(c, next)
		}); err != nil {
			t.Fatal(err)
		}
		c = next
	}
	for i := int64(0); i < 3; i++ {
		write(t0 + i*minute)
	}
	write(t0 + 62*minute) // the first three are now more than an hour old
	_, oldest, err := s.FeedBounds()
	if err != nil || oldest != 3 {
		t.Fatalf("oldest = %d, %v; want 3 (revisions 1 and 2 older than an hour)", oldest, err)
	}
}
