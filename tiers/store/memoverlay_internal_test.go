package store

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// overlayKey is a grid index key (g/): grid g, case i.
func overlayKey(g, i int) string { return fmt.Sprintf("g/32058211015%04d/320582-20261123-%06d", g, i) }

// scanFamily lists the g/ entries tx sees, forwards or in reverse from
// seek (empty: from the family's end).
func scanFamily(t *testing.T, tx *Tx, reverse bool, seek string) []string {
	t.Helper()
	it := tx.iterator(badger.IteratorOptions{Prefix: []byte(pfxByGrid), Reverse: reverse})
	defer it.Close()
	var out []string
	switch {
	case seek == "" && reverse:
		it.Seek([]byte(pfxByGrid + "\xff")) // the family's last entry, as walkNear seeks
	case seek == "":
		it.Rewind()
	default:
		it.Seek([]byte(seek))
	}
	for ; it.Valid(); it.Next() {
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(it.Item().Key())+"="+string(v))
	}
	return out
}

// modelScan is scanFamily over the model m.
func modelScan(m map[string]string, reverse bool, seek string) []string {
	keys := slices.Sorted(maps.Keys(m))
	var out []string
	for _, k := range keys {
		if seek != "" && k < seek {
			continue
		}
		out = append(out, k+"="+m[k])
	}
	if !reverse {
		return out
	}
	out = out[:0]
	for i := len(keys) - 1; i >= 0; i-- {
		if seek != "" && keys[i] > seek {
			continue
		}
		out = append(out, keys[i]+"="+m[keys[i]])
	}
	return out
}

// TestWriteTransactionSeesItsChangesBeforeTheTreeDoes: a write transaction
// changes the committed tree only once it commits (memOverlay). Until
// then its own point reads and iterators see its sets, overwrites and
// deletes, before and after it first iterates (its own copy from then
// on); a reader's copy taken before a commit keeps what it held; a
// failed transaction leaves the tree as it was; and a reader after a
// commit sees exactly what the model holds. Random operations against a
// map, with a fixed seed.
func TestWriteTransactionSeesItsChangesBeforeTheTreeDoes(t *testing.T) {
	s := openNearTest(t, t.TempDir())
	defer s.Close()
	rng := rand.New(rand.NewPCG(7, 13))
	committed := map[string]string{}
	boom := errors.New("boom")
	type held struct {
		v    *memVersion
		want []string
	}
	var readers []held
	for round := range 60 {
		pending := maps.Clone(committed)
		fail := round%7 == 3
		err := s.Update(func(tx *Tx) error {
			for op := range 40 {
				k := overlayKey(rng.IntN(6), rng.IntN(60))
				switch r := rng.IntN(10); {
				case r < 5:
					v := fmt.Sprintf("r%d.%d", round, op)
					if err := tx.set([]byte(k), []byte(v)); err != nil {
						return err
					}
					pending[k] = v
				case r < 7:
					if err := tx.del([]byte(k)); err != nil {
						return err
					}
					delete(pending, k)
				case r < 9:
					item, err := tx.get([]byte(k))
					want, ok := pending[k]
					if !ok {
						if !errors.Is(err, badger.ErrKeyNotFound) {
							return fmt.Errorf("round %d: get %s: %v, want not found", round, k, err)
						}
						continue
					}
					if err != nil {
						return fmt.Errorf("round %d: get %s: %w", round, k, err)
					}
					got, _ := item.ValueCopy(nil)
					if string(got) != want {
						return fmt.Errorf("round %d: get %s = %q, want %q", round, k, got, want)
					}
				default:
					reverse := rng.IntN(2) == 0
					seek := ""
					if rng.IntN(2) == 0 {
						seek = overlayKey(rng.IntN(6), rng.IntN(60))
					}
					if got, want := scanFamily(t, tx, reverse, seek), modelScan(pending, reverse, seek); !slices.Equal(got, want) {
						return fmt.Errorf("round %d: scan (reverse %v, seek %q):\n got %q\nwant %q", round, reverse, seek, got, want)
					}
				}
			}
			if fail {
				return boom
			}
			return nil
		})
		if fail {
			if !errors.Is(err, boom) {
				t.Fatalf("round %d: %v", round, err)
			}
		} else {
			if err != nil {
				t.Fatal(err)
			}
			committed = pending
		}
		for _, r := range readers {
			tx := s.tx(nil, r.v.tree, r.v.dig, false)
			if got := scanFamily(t, tx, false, ""); !slices.Equal(got, r.want) {
				t.Fatalf("round %d: a reader's copy changed under it:\n got %q\nwant %q", round, got, r.want)
			}
		}
		// A reader now sees the model; every third keeps its copy.
		want := modelScan(committed, false, "")
		if err := s.View(func(tx *Tx) error {
			if got := scanFamily(t, tx, false, ""); !slices.Equal(got, want) {
				return fmt.Errorf("round %d: a reader sees\n%q\nwant %q", round, got, want)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if round%3 == 0 {
			readers = append(readers, held{v: s.mem.load(), want: want})
		}
	}
	if s.mem.over.len() != 0 {
		t.Fatalf("%d changes left in the overlay", s.mem.over.len())
	}
}

// TestCommitsWithoutReadersCopyNoNodes: a commit changes the committed
// tree in place, so commits that no reader followed copy none of its
// nodes, while a reader's copy between two commits makes the next one
// copy the nodes it changes (the copy-on-write every transaction did
// before). Counted as the bytes the process allocates over the same
// commits both ways: each commit changes entries in tens of nodes.
func TestCommitsWithoutReadersCopyNoNodes(t *testing.T) {
	s := openNearTest(t, t.TempDir())
	defer s.Close()
	const grids, perGrid = 200, 250
	if err := s.Update(func(tx *Tx) error {
		for g := range grids {
			for i := range perGrid {
				if err := tx.set([]byte(overlayKey(g, i)), nil); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	commits := func(withReader bool, seed uint64) uint64 {
		rng := rand.New(rand.NewPCG(seed, 1))
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range 100 {
			if withReader {
				if err := s.View(func(*Tx) error { return nil }); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Update(func(tx *Tx) error {
				for range 40 {
					if err := tx.set([]byte(overlayKey(rng.IntN(grids), rng.IntN(perGrid))), []byte("x")); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	commits(false, 1) // the hints and the overlay grown once
	alone := commits(false, 2)
	read := commits(true, 2)
	// 100 commits of 40 changes in a tree of 50,000 entries: with a
	// reader between commits, some 40 leaves (and their parents) copied
	// each, about 3.5 MB in all; without, none.
	if read < alone+2<<20 || read < 2*alone {
		t.Fatalf("100 commits allocated %d KB with a reader between them and %d KB without: want over 2 MB and twice as much with one (each copies the nodes it changes) as without (none copied)", read>>10, alone>>10)
	}
	t.Logf("100 commits of 40 changes: %d KB allocated with a reader between them, %d KB without", read>>10, alone>>10)
}

// TestViewRecordsTakesTheTreeOnlyWhenRead: a ViewRecords transaction that
// reads no index takes no copy of the tree (the commit after it copies
// nothing); one that reads an index gets the tree of its view's moment
// when no commit came between, and ErrIndexMoved, with nothing found,
// when one did.
func TestViewRecordsTakesTheTreeOnlyWhenRead(t *testing.T) {
	s := openNearTest(t, t.TempDir())
	defer s.Close()
	set := func(k string) {
		t.Helper()
		if err := s.Update(func(tx *Tx) error { return tx.set([]byte(k), []byte("v")) }); err != nil {
			t.Fatal(err)
		}
	}
	set(overlayKey(1, 1))
	copies := s.mem.copies.Load()
	for range 5 {
		if err := s.ViewRecords(func(tx *Tx) error {
			_, err := tx.GetCase("320582-20261123-000001")
			if !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("a case never stored: %v", err)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		set(overlayKey(1, 2))
	}
	if got := s.mem.copies.Load(); got != copies {
		t.Fatalf("records-only views took %d copies of the tree", got-copies)
	}

	// Reads an index, nothing committed since the view began.
	if err := s.ViewRecords(func(tx *Tx) error {
		if got := scanFamily(t, tx, false, ""); len(got) != 2 {
			return fmt.Errorf("scan: %q, want 2 entries", got)
		}
		_, err := tx.get([]byte(overlayKey(1, 1)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if s.mem.copies.Load() != copies+1 {
		t.Fatalf("a view that read the index: %d copies, want 1", s.mem.copies.Load()-copies)
	}

	// A commit between the view's start and its first index read.
	set(overlayKey(1, 3))
	err := s.ViewRecords(func(tx *Tx) error {
		set(overlayKey(1, 4))
		if _, err := tx.get([]byte(overlayKey(1, 1))); !errors.Is(err, ErrIndexMoved) {
			t.Errorf("get after a commit: %v, want ErrIndexMoved", err)
		}
		if got := scanFamily(t, tx, false, ""); len(got) != 0 {
			t.Errorf("scan after a commit: %q, want nothing", got)
		}
		return nil
	})
	if !errors.Is(err, ErrIndexMoved) {
		t.Fatalf("ViewRecords after a commit moved the index: %v, want ErrIndexMoved", err)
	}
	// With a reader's copy already taken, it is used as View uses it.
	_ = s.mem.load()
	if err := s.ViewRecords(func(tx *Tx) error {
		set(overlayKey(1, 5))
		if got := scanFamily(t, tx, false, ""); len(got) != 4 {
			return fmt.Errorf("scan: %q, want the 4 entries of the copy", got)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
