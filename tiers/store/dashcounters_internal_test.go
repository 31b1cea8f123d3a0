package store

import (
	"encoding/binary"
	"errors"
	"maps"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dgraph-io/badger/v4"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// dashCounts reads every dashboard counter a transaction sees (from any
// goroutine: a bad value is an error of the test, not its end).
func dashCounts(t *testing.T, tx *Tx) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, p := range []string{pfxDashCount, pfxDashFlow} {
		it := tx.iterator(badger.IteratorOptions{Prefix: []byte(p)})
		for it.Rewind(); it.Valid(); it.Next() {
			n, err := counterValue(it.Item())
			if err != nil {
				t.Error(err)
			}
			out[string(it.Item().Key())] = n
		}
		it.Close()
	}
	return out
}

// TestDashCountersReaderKeepsItsCopy: the committed counters are changed
// in place, and a reader's copy never moves: a transaction that read them
// before a commit reads the same after it, a new one reads the commit's,
// and readers running beside commits (under -race) never see a node
// being changed.
func TestDashCountersReaderKeepsItsCopy(t *testing.T) {
	s := openNearTest(t, t.TempDir())
	defer s.Close()
	putCases(t, s, 0, 30, pb.State_STATE_REPORTED)
	key := dashCountKey(gridLevel, memCase(0, 0).GridCode, stateSuffix(pb.State_STATE_REPORTED))
	var before map[string]int64
	var n0 int64
	err := s.View(func(tx *Tx) error {
		before = dashCounts(t, tx)
		n0 = before[key]
		if n0 == 0 {
			t.Fatalf("no counter %s among %v", key, before)
		}
		// Commits while this transaction is open: a new case in the
		// grid, and every case of another grid moved on.
		putCases(t, s, 30, 7, pb.State_STATE_REPORTED)
		if err := s.Update(func(w *Tx) error {
			for i := 1; i < 30; i += 7 {
				c := memCase(i, pb.State_STATE_DISPATCHED)
				c.Version = 2
				if err := w.PutCase(memCase(i, pb.State_STATE_REPORTED), c); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
		if after := dashCounts(t, tx); !maps.Equal(after, before) {
			t.Errorf("a reader's counters moved with a commit:\nbefore %v\nafter  %v", before, after)
		}
		item, err := tx.get([]byte(key))
		if err != nil {
			return err
		}
		if n, _ := counterValue(item); n != n0 {
			t.Errorf("%s read %d after the commits, %d before", key, n, n0)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.View(func(tx *Tx) error {
		if n := dashCounts(t, tx)[key]; n != n0+1 {
			t.Errorf("a new reader: %s = %d, want %d", key, n, n0+1)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(VerifyOptions{}); err != nil {
		t.Fatalf("verify: %v", err)
	}

	// A failed transaction changes none.
	committed := map[string]int64{}
	_ = s.View(func(tx *Tx) error { committed = dashCounts(t, tx); return nil })
	boom := errors.New("boom")
	if err := s.Update(func(tx *Tx) error {
		if err := tx.PutCase(nil, memCase(99, pb.State_STATE_REPORTED)); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("update: %v", err)
	}
	_ = s.View(func(tx *Tx) error {
		if now := dashCounts(t, tx); !maps.Equal(now, committed) {
			t.Errorf("a failed transaction changed the counters:\nbefore %v\nafter  %v", committed, now)
		}
		return nil
	})

	// Readers beside commits: each reads its copy twice, alike, while
	// commits change the counters, until the readers have read twenty
	// times and thirty commits are in (however long either takes).
	var stop atomic.Bool
	var reads atomic.Int64
	var wg sync.WaitGroup
	fail := make(chan string, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				_ = s.viewDash(func(tx *Tx) error {
					a, b := dashCounts(t, tx), dashCounts(t, tx)
					if !maps.Equal(a, b) {
						select {
						case fail <- "a reader's copy moved under it":
						default:
						}
					}
					return nil
				})
				reads.Add(1)
			}
		}()
	}
	for i := 100; i < 400 || reads.Load() < 20; i += 10 {
		putCases(t, s, i, 10, pb.State_STATE_REPORTED)
	}
	stop.Store(true)
	wg.Wait()
	close(fail)
	if msg, ok := <-fail; ok {
		t.Fatal(msg)
	}
	if _, err := s.Verify(VerifyOptions{}); err != nil {
		t.Fatalf("verify after the readers: %v", err)
	}
}

// TestDashCountersChangedInPlaceOutsideCopies: a counter made since the
// last reader's copy is changed in place by the next commits, with no
// search of the counters' tree and no new object; a reader's copy makes
// the next change a new object again, and the copy keeps its value.
func TestDashCountersChangedInPlaceOutsideCopies(t *testing.T) {
	var compares atomic.Int64
	restore := CountMemCompares(&compares)
	s := openNearTest(t, t.TempDir())
	restore()
	defer s.Close()
	key := dashCountKey(gridLevel, memCase(0, 0).GridCode, stateSuffix(pb.State_STATE_REPORTED))
	entry := func() objEntry {
		t.Helper()
		d := &s.mem.dash
		d.mu.Lock()
		defer d.mu.Unlock()
		e, ok := d.tree.Get(objProbe(key))
		if !ok {
			t.Fatalf("no counter %s", key)
		}
		return e
	}
	value := func(e objEntry) int64 { return int64(binary.BigEndian.Uint64(bytesOf(e.val()))) }
	// putCases(s, i, 1, ...) puts case i, in the grid of case 0 when i
	// is a multiple of the grids' count: each adds one to key.
	grids := 1
	for memCase(grids, 0).GridCode != memCase(0, 0).GridCode {
		grids++
	}
	next := 0
	put := func() {
		putCases(t, s, next, 1, pb.State_STATE_REPORTED)
		next += grids
	}

	put()
	first := entry()
	compares.Store(0)
	put()
	inPlace := compares.Load()
	if e := entry(); e.p != first.p || value(e) != 2 {
		t.Fatalf("no reader since the counter was made: entry %p = %d, want %p changed in place to 2", e.p, value(e), first.p)
	}

	// A reader's copy: the next change makes a new object, the copy
	// keeps 2.
	var seen int64
	if err := s.viewDash(func(tx *Tx) error {
		put()
		item, err := tx.get([]byte(key))
		if err != nil {
			return err
		}
		seen, err = counterValue(item)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	second := entry()
	if second.p == first.p || value(second) != 3 || value(first) != 2 || seen != 2 {
		t.Fatalf("after a reader's copy: entry %p = %d (the copy's %p = %d, read %d); want a new entry of 3, the copy's 2",
			second.p, value(second), first.p, value(first), seen)
	}
	// And that one is changed in place again.
	put()
	if e := entry(); e.p != second.p || value(e) != 4 {
		t.Fatalf("entry %p = %d, want %p changed in place to 4", e.p, value(e), second.p)
	}

	// The in-place commit searched the counters' tree for none of its
	// counters: it compared as many keys as a commit with the counters
	// switched off (the other trees' searches), counted the same way.
	compares.Store(0)
	s.mem.dash.mu.Lock()
	s.mem.dash.fresh = nil
	s.mem.dash.mu.Unlock()
	put()
	searched := compares.Load()
	if inPlace >= searched {
		t.Errorf("a commit of fresh counters compared %d keys, one that searched the counters' tree %d", inPlace, searched)
	}
	t.Logf("key comparisons of a one-case commit: %d with its counters in place, %d with a search", inPlace, searched)
	if _, err := s.Verify(VerifyOptions{}); err != nil {
		t.Fatalf("verify: %v", err)
	}
}
