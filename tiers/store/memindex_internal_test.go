package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// memCase is a case with an entry in every in-memory family it can have.
func memCase(i int, st pb.State) *pb.Case {
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
	return &pb.Case{Id: fmt.Sprintf("320582-20261123-%06d", i), State: st, Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02",
		GridCode: fmt.Sprintf("3205821101521%02d", i%7), OwnerUnit: fmt.Sprintf("u-%d", i%3), ReportedAt: timestamppb.New(at),
		Version: 1, StageDeadline: timestamppb.New(at.Add(time.Hour)), Overdue: i%5 == 0, Ownership: &pb.Ownership{InReview: i%4 == 0}}
}

// memDump lists the in-memory families' entries a read transaction sees.
func memDump(t *testing.T, s *Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	if err := s.View(func(tx *Tx) error {
		for _, p := range memFamilies {
			it := tx.iterator(badger.IteratorOptions{Prefix: []byte(p)})
			for it.Rewind(); it.Valid(); it.Next() {
				v, err := it.Item().ValueCopy(nil)
				if err != nil {
					return err
				}
				out[string(it.Item().Key())] = string(v)
			}
			it.Close()
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// badgerHoldsMemFamilies reports whether any key of the in-memory
// families is stored in badger.
func badgerHoldsMemFamilies(t *testing.T, s *Store) bool {
	t.Helper()
	found := false
	if err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if isMemKey(it.Item().Key()) {
				found = true
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return found
}

func putCases(t *testing.T, s *Store, from, n int, st pb.State) {
	t.Helper()
	if err := s.Update(func(tx *Tx) error {
		for i := from; i < from+n; i++ {
			if err := tx.PutCase(nil, memCase(i, st)); err != nil {
				return err
			}
		}
		idx, _, err := tx.Applied()
		if err != nil {
			return err
		}
		return tx.SetApplied(idx+1, 1)
	}); err != nil {
		t.Fatal(err)
	}
}

// TestMemIndexIsRebuiltAsItWasKept: the families kept in memory by the
// writes are exactly those rebuilt from the cases when the store opens
// again, and after a snapshot is restored into another store; badger
// holds none of them, the snapshot stream holds all of them (for a
// replica of an earlier release), and an older store's copies in badger
// are dropped when it opens.
func TestMemIndexIsRebuiltAsItWasKept(t *testing.T) {
	dir := t.TempDir()
	s := openNearTest(t, dir)
	putCases(t, s, 0, 40, pb.State_STATE_DISPATCHED)
	putCases(t, s, 40, 20, pb.State_STATE_REPORTED)
	// Some cases move on: entries are deleted and set.
	if err := s.Update(func(tx *Tx) error {
		for i := 0; i < 40; i += 3 {
			old := memCase(i, pb.State_STATE_DISPATCHED)
			c := memCase(i, pb.State_STATE_CLOSED)
			c.Version, c.OwnerUnit, c.Overdue = 2, "", false
			if err := tx.PutCase(old, c); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	kept := memDump(t, s)
	if len(kept) < 60*3 {
		t.Fatalf("%d entries kept for 60 cases", len(kept))
	}
	if badgerHoldsMemFamilies(t, s) {
		t.Fatal("badger holds a key of the in-memory families")
	}
	if _, err := s.Verify(VerifyOptions{}); err != nil {
		t.Fatalf("verify: %v", err)
	}

	// The snapshot carries them, in key order with the rest.
	sn, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var stream bytes.Buffer
	if _, err := sn.WriteTo(&stream); err != nil {
		t.Fatal(err)
	}
	sn.Release()
	inStream := map[string]string{}
	var last []byte
	if _, err := ReadSnapshot(bytes.NewReader(stream.Bytes()), func(key, val []byte) error {
		if last != nil && bytes.Compare(last, key) >= 0 {
			return fmt.Errorf("%q after %q: not in key order", key, last)
		}
		last = append(last[:0], key...)
		if isMemKey(key) {
			inStream[string(key)] = string(val)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sameEntries(t, "the snapshot stream", inStream, kept)

	// Reopened: rebuilt from the cases.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openNearTest(t, dir)
	sameEntries(t, "after a reopen", memDump(t, s), kept)

	// Restored into another store: rebuilt from the cases, not copied.
	other := openNearTest(t, t.TempDir())
	defer other.Close()
	putCases(t, other, 100, 5, pb.State_STATE_REPORTED)
	if err := other.Restore(bytes.NewReader(stream.Bytes())); err != nil {
		t.Fatal(err)
	}
	sameEntries(t, "after a restore", memDump(t, other), kept)
	if badgerHoldsMemFamilies(t, other) {
		t.Fatal("a restore wrote the in-memory families to badger")
	}

	// A store of an earlier release kept them in badger: dropped at open
	// (they would go stale), rebuilt in memory.
	if err := s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set([]byte("s/05/stale-case"), nil); err != nil {
			return err
		}
		return txn.Set(digestKey("stale-case"), []byte("x"))
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openNearTest(t, dir)
	defer s.Close()
	if badgerHoldsMemFamilies(t, s) {
		t.Fatal("an earlier release's index entries were left in badger")
	}
	sameEntries(t, "after opening a store with stale entries in badger", memDump(t, s), kept)
}

func sameEntries(t *testing.T, when string, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d entries, want %d", when, len(got), len(want))
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Fatalf("%s: %q = %q (present %v), want %q", when, k, g, ok, v)
		}
	}
}

// TestMemIndexFollowsTheTransaction: a transaction reads its own writes of
// the in-memory families, a failed one leaves them as they were, a read
// transaction cannot write them, and a reader never sees index entries
// without their case.
func TestMemIndexFollowsTheTransaction(t *testing.T) {
	s := openNearTest(t, t.TempDir())
	defer s.Close()
	putCases(t, s, 0, 10, pb.State_STATE_REPORTED)
	before := memDump(t, s)

	boom := errors.New("boom")
	err := s.Update(func(tx *Tx) error {
		if err := tx.PutCase(nil, memCase(10, pb.State_STATE_REPORTED)); err != nil {
			return err
		}
		if _, err := tx.get(stateKey(pb.State_STATE_REPORTED, memCase(10, 0).Id)); err != nil {
			return fmt.Errorf("own write not read back: %w", err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("update: %v", err)
	}
	sameEntries(t, "after a failed transaction", memDump(t, s), before)
	if err := s.View(func(tx *Tx) error { return tx.set(stateKey(pb.State_STATE_REPORTED, "x"), nil) }); !errors.Is(err, badger.ErrReadOnlyTxn) {
		t.Fatalf("a write in a read transaction: %v", err)
	}

	// Readers while cases are written: each sees every case it can read
	// in the state index and every indexed case readable.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads atomic.Int64
	fail := make(chan error, 2)
	enough := make(chan struct{})
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				err := s.View(func(tx *Tx) error {
					indexed := 0
					it := tx.iterator(badger.IteratorOptions{Prefix: statePrefix(pb.State_STATE_REPORTED)})
					defer it.Close()
					for it.Rewind(); it.Valid(); it.Next() {
						id := idFromIndexKey(statePrefix(pb.State_STATE_REPORTED), it.Item().Key())
						if _, err := tx.GetCase(id); err != nil {
							return fmt.Errorf("indexed case %s: %w", id, err)
						}
						indexed++
					}
					cases := 0
					ci := tx.txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxCase)})
					defer ci.Close()
					for ci.Rewind(); ci.Valid(); ci.Next() {
						cases++
					}
					// The tree is never newer than the view; it may miss
					// the entries of commits made since it was loaded.
					if cases < indexed {
						return fmt.Errorf("%d cases, %d in the state index", cases, indexed)
					}
					return nil
				})
				if err != nil {
					fail <- err
					return
				}
				if reads.Add(1) == 20 {
					close(enough)
				}
			}
		}()
	}
	for i := 10; i < 210; i += 5 {
		putCases(t, s, i, 5, pb.State_STATE_REPORTED)
	}
	// Twenty reads, however long they take (a reader that failed ends
	// the wait too).
	select {
	case <-enough:
	case err := <-fail:
		fail <- err
	}
	stop.Store(true)
	wg.Wait()
	close(fail)
	if err := <-fail; err != nil {
		t.Fatal(err)
	}
	if reads.Load() < 20 {
		t.Fatalf("only %d reads", reads.Load())
	}
}

// TestMemIterSeeksAsBadger: the in-memory iterator lands where badger's
// does, forwards and in reverse, with and without a prefix.
func TestMemIterSeeksAsBadger(t *testing.T) {
	s := openNearTest(t, t.TempDir())
	defer s.Close()
	keys := []string{"g/1/a", "g/1/c", "g/2/a", "g/3/b", "h/x", "h/y1", "h/z", "s/01/a", "s/01/b", "s/05/a"}
	if err := s.Update(func(tx *Tx) error {
		for _, k := range keys {
			// A value as long as a digest's numbers at least (h/).
			v := []byte(fmt.Sprintf("%-24s", "v"+k))
			if err := tx.set([]byte(k), v); err != nil {
				return err
			}
			// The same keys under a badger family, to compare with.
			if err := tx.set([]byte("z/"+k), v); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	walk := func(tx *Tx, prefix string, reverse bool, seek string) []string {
		it := tx.iterator(badger.IteratorOptions{Prefix: []byte(prefix), Reverse: reverse})
		defer it.Close()
		var out []string
		if seek == "" {
			it.Rewind()
		} else {
			it.Seek([]byte(seek))
		}
		for ; it.Valid(); it.Next() {
			k := string(it.Item().Key())
			if len(k) > 2 && k[:2] == "z/" {
				k = k[2:]
			}
			out = append(out, k)
		}
		return out
	}
	if err := s.View(func(tx *Tx) error {
		for _, c := range []struct {
			prefix, seek string
			reverse      bool
		}{
			{"g/", "", false}, {"g/", "g/2", false}, {"g/", "g/1/b", false}, {"g/1/", "", false},
			{"g/", "g/2/z", true}, {"g/", "g/3/b", true}, {"g/", "g/\xff", true}, {"g/", "", true},
			{"s/01/", "s/01/\xff", true}, {"s/", "s/02", false}, {"h/", "", false},
			{"h/", "h/y", false}, {"h/", "h/y", true}, {"h/", "h/\xff", true}, {"h/", "", true},
		} {
			mem := walk(tx, c.prefix, c.reverse, c.seek)
			seek := c.seek
			if seek != "" {
				seek = "z/" + seek
			}
			bad := walk(tx, "z/"+c.prefix, c.reverse, seek)
			if fmt.Sprint(mem) != fmt.Sprint(bad) {
				return fmt.Errorf("prefix %q seek %q reverse %v: memory %q, badger %q", c.prefix, c.seek, c.reverse, mem, bad)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkMemIndexBuild: what opening a store costs to rebuild the
// in-memory families, and the memory they hold, per stored case
// (CITYHUB_BENCH_CASES cases, 100,000 by default).
func BenchmarkMemIndexBuild(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("CITYHUB_BENCH_CASES")); err == nil && v > 0 {
		n = v
	}
	s, err := Open(Options{Dir: b.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for from := 0; from < n; from += 1000 {
		if err := s.Update(func(tx *Tx) error {
			for i := from; i < min(from+1000, n); i++ {
				c := memCase(i, []pb.State{pb.State_STATE_REPORTED, pb.State_STATE_DISPATCHED, pb.State_STATE_CLOSED}[i%3])
				c.Description = "人行道上有破损的井盖，需要尽快处理"
				c.Location = &pb.Location{Lat: 31.25, Lng: 121.5, Address: "某某路 100 号"}
				c.History = []*pb.HistoryEntry{{Action: pb.Action_ACTION_REPORT, Actor: "insp-1", At: c.ReportedAt}}
				if err := tx.PutCase(nil, c); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	var (
		heap    int64
		entries int
	)
	for range b.N {
		s.mem.replace(newMemTree(), newDigTree(), newObjTree(), nil)
		runtime.GC()
		if err := s.buildMemIndex(); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		// The tree's heap: what dropping it frees, measured between two
		// collections close together (a difference against the heap
		// before the build could take in what the store's own
		// goroutines freed meanwhile, and even fall below zero).
		b.StopTimer()
		var with, without runtime.MemStats
		runtime.ReadMemStats(&with)
		entries = s.mem.load().tree.Len() + s.mem.dash.len()
		s.mem.replace(newMemTree(), newDigTree(), newObjTree(), nil)
		runtime.GC() // the pin of the tree dropped
		blocks.reclaim()
		runtime.GC()
		runtime.ReadMemStats(&without)
		heap = int64(with.HeapAlloc) - int64(without.HeapAlloc)
		b.StartTimer()
	}
	if heap <= 0 {
		b.Fatalf("dropping the tree freed %d bytes", heap)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/case")
	b.ReportMetric(float64(heap)/float64(n), "heap-bytes/case")
	b.ReportMetric(float64(entries)/float64(n), "entries/case")
}
