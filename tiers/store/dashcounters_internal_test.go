package store

import (
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
