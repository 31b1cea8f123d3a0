package store

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// arenaCase is case i of the block tests: its grid, unit and id make keys
// of their own in every family.
func arenaCase(i int) *pb.Case {
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	return &pb.Case{Id: fmt.Sprintf("110105-20261123-%06d", i), State: pb.State_STATE_DISPATCHED, Kind: pb.Kind_KIND_EVENT,
		MajorCode: "01", MinorCode: "02", GridCode: fmt.Sprintf("110105%09d", i), OwnerUnit: fmt.Sprintf("unit-%06d", i),
		ReportedAt: timestamppb.New(at), Version: 1, StageDeadline: timestamppb.New(at.Add(time.Hour))}
}

// heldBlocks is the numbers of the blocks s's writer holds.
func heldBlocks(s *Store) []uint32 {
	s.mem.writer.Lock()
	defer s.mem.writer.Unlock()
	var out []uint32
	for n := range s.mem.slab.live {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func bound(n uint32) bool { return blocks.block(n) != nil }

// memKeys is every key and value of the in-memory families in tx's tree,
// read through its iterator.
func memKeys(t *testing.T, tx *Tx) []string {
	t.Helper()
	it := newMemIter(tx.mem, tx.memPin, badger.IteratorOptions{})
	defer it.Close()
	var out []string
	for it.Rewind(); it.Valid(); it.Next() {
		v, _ := it.Item().ValueCopy(nil)
		out = append(out, string(it.Item().Key())+"="+string(v))
	}
	return out
}

// TestBlocksOfDroppedEntriesAreUnboundOnceNoReaderHoldsThem: the entries
// of deleted cases leave their blocks empty; the writer retires them,
// a reader that had the tree from before still reads every entry of it
// from them (their numbers still bound, however many new blocks are
// bound meanwhile), and once that reader is gone the numbers are
// unbound.
func TestBlocksOfDroppedEntriesAreUnboundOnceNoReaderHoldsThem(t *testing.T) {
	s := openNearTest(t, t.TempDir())
	defer s.Close()
	applied := uint64(0)
	update := func(fn func(tx *Tx) error) {
		t.Helper()
		applied++
		if err := s.Update(func(tx *Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			return tx.SetApplied(applied, 1)
		}); err != nil {
			t.Fatal(err)
		}
	}
	const cases = 2000 // some 30 blocks of entries
	update(func(tx *Tx) error {
		for i := range cases {
			if err := tx.PutCase(nil, arenaCase(i)); err != nil {
				return err
			}
		}
		return nil
	})
	// The blocks filled so far, but the one still being filled (the new
	// cases' entries go there too).
	first := slices.DeleteFunc(heldBlocks(s), func(n uint32) bool { return n == s.mem.slab.n })
	if len(first) < 10 {
		t.Fatalf("%d cases hold %d blocks, want at least 10", cases, len(first))
	}

	// A reader takes the tree now, and reads it once.
	viewing, release := make(chan []string), make(chan struct{})
	reread := make(chan []string)
	go func() {
		_ = s.View(func(tx *Tx) error {
			viewing <- memKeys(t, tx)
			<-release
			reread <- memKeys(t, tx)
			return nil
		})
	}()
	before := <-viewing

	// Every case is deleted, then as many new ones are written: the old
	// blocks are empty, and new ones are bound.
	update(func(tx *Tx) error {
		for i := range cases {
			if err := tx.DeleteCase(arenaCase(i).Id); err != nil {
				return err
			}
		}
		return nil
	})
	for i := range cases {
		i += cases
		update(func(tx *Tx) error { return tx.PutCase(nil, arenaCase(i)) })
	}
	held := heldBlocks(s)
	for _, n := range first {
		if _, ok := slices.BinarySearch(held, n); ok {
			t.Errorf("block %d still held with every entry of it deleted", n)
		}
	}
	runtime.GC()
	runtime.GC()
	blocks.reclaim()
	for _, n := range first {
		if !bound(n) {
			t.Fatalf("block %d unbound while a reader holds a tree with entries in it", n)
		}
	}
	close(release)
	if after := <-reread; !slices.Equal(after, before) {
		t.Fatalf("the reader's tree changed under it: %d entries, then %d", len(before), len(after))
	}

	// The reader is gone: the next collection frees its pin.
	unbound := func() int {
		n := 0
		for _, b := range first {
			if !bound(b) {
				n++
			}
		}
		return n
	}
	collectUntil(func() bool { blocks.reclaim(); return unbound() == len(first) })
	if got := unbound(); got != len(first) {
		t.Fatalf("%d of %d retired blocks unbound after the reader left", got, len(first))
	}
}

// TestFailedTransactionsLeaveNoBlockBehind: a write transaction that
// fails after filling blocks leaves nothing counted in them, and the
// writer retires the blocks it will not fill again.
func TestFailedTransactionsLeaveNoBlockBehind(t *testing.T) {
	s := openNearTest(t, t.TempDir())
	defer s.Close()
	before := heldBlocks(s)
	for round := range 3 {
		err := s.Update(func(tx *Tx) error {
			for i := range 1000 {
				if err := tx.PutCase(nil, arenaCase(round*1000+i)); err != nil {
					return err
				}
			}
			return fmt.Errorf("refused")
		})
		if err == nil {
			t.Fatal("the transaction did not fail")
		}
	}
	// At most the block being filled is left.
	if held := heldBlocks(s); len(held) > len(before)+1 {
		t.Fatalf("failed transactions left %d blocks held (%d before)", len(held), len(before))
	}
	if err := s.View(func(tx *Tx) error {
		if got := memKeys(t, tx); len(got) != 0 {
			t.Errorf("the tree holds %d entries of failed transactions: %q", len(got), got[:min(3, len(got))])
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
