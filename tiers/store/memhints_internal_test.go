package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// TestHintGroup: a grid index key's group is its grid, a nearby entry's
// its class (the prefix nearClassPrefix makes); every other key, and a
// nearby key cut short, has none.
func TestHintGroup(t *testing.T) {
	id := "320582-20261207-000001"
	if g := hintGroup(gridKey("320582101001001", id)); string(g) != "g/320582101001001/" {
		t.Errorf("grid key's group %q, want g/320582101001001/", g)
	}
	c := memCase(1, pb.State_STATE_REPORTED)
	near := nearbyEntries(c)
	if len(near) != 1 {
		t.Fatalf("%d nearby entries, want 1", len(near))
	}
	want := nearClassPrefix(pfxNearOpen, NearbyClassOf(c))
	if g := hintGroup(near[0].key); !bytes.Equal(g, want) {
		t.Errorf("nearby key's group %q, want its class %q", g, want)
	}
	for _, k := range [][]byte{
		stateKey(pb.State_STATE_REPORTED, id), unitKey("u-1", id), dueKey(1, id), digestKey(id),
		near[0].key[:len(want)-1], []byte("g/no-slash"), []byte("N/o/\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"),
		[]byte("N/o/\x7f"), []byte("N/o/\x03a"), []byte("N/o/\x01a\x7f"), []byte("N/c/\x01a\x01b\x01c"),
	} {
		if g := hintGroup(k); g != nil {
			t.Errorf("key %q has group %q, want none", k, g)
		}
	}
}

// TestGridEntriesStartFromTheirGrid counts the comparisons of grid index
// inserts (g/) into a tree of 24,000 such entries from 240 grids, written
// as a district's reports come: each from a grid drawn at random, 24 a
// transaction. A new entry lands after the last one of its grid: from
// the grid's hint the search takes some 10 comparisons (two where the
// hint still holds at a level, a shorter search where a split moved it),
// from the family's (the last grid written) some 20. The inputs are
// fixed, so the count is too.
func TestGridEntriesStartFromTheirGrid(t *testing.T) {
	var n atomic.Int64
	memOrder = func(a, b memEntry) bool { n.Add(1); return memLess(a, b) }
	defer func() { memOrder = memLess }()
	s := openNearTest(t, t.TempDir())
	defer s.Close()
	const grids, per, batch = 240, 100, 24
	rng := rand.New(rand.NewPCG(1, 2))
	seq := 0
	put := func(gs []int) float64 {
		n.Store(0)
		if err := s.Update(func(tx *Tx) error {
			for _, g := range gs {
				seq++
				k := gridKey(fmt.Sprintf("320582%09d", 101001001+g), fmt.Sprintf("320582-20261207-%06d", seq))
				if err := tx.memSet(k, nil); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return float64(n.Load()) / float64(len(gs))
	}
	for range per {
		gs := rng.Perm(grids)
		for i := 0; i < grids; i += batch {
			put(gs[i : i+batch])
		}
	}
	var sum float64
	const rounds = 10
	for range rounds {
		sum += put(rng.Perm(grids)[:batch])
	}
	if got := sum / rounds; got > 13 {
		t.Errorf("%.1f comparisons a grid entry, want at most 13: the search does not start from the grid's last entry", got)
	}
}

// TestGroupHintsAreBounded: past maxGroupHints grids and classes, a new
// one uses its family's hint, and the groups held stay at the bound.
func TestGroupHintsAreBounded(t *testing.T) {
	var h memHints
	for i := range maxGroupHints + 10 {
		h.of(gridKey(fmt.Sprintf("%015d", i), "x"))
	}
	if len(h.group) != maxGroupHints {
		t.Fatalf("%d groups held, want %d", len(h.group), maxGroupHints)
	}
	k := gridKey(fmt.Sprintf("%015d", maxGroupHints+5), "x")
	if p := h.of(k); p != &h.family['g'] {
		t.Error("a grid past the bound got a hint of its own, want the family's")
	}
	held := gridKey(fmt.Sprintf("%015d", 7), "y")
	if p := h.of(held); p == &h.family['g'] || p != h.group[string(hintGroup(held))] {
		t.Error("a grid held lost its hint")
	}
}
