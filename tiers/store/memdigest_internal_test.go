package store

import (
	"fmt"
	"testing"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// liveEntries is the sum of the live entries the writer counts in its
// blocks, and the entries of the published trees that live in blocks:
// the two must be equal, or a block is retired under a live entry (or
// never).
func liveEntries(s *Store) (counted, held int) {
	s.mem.writer.Lock()
	defer s.mem.writer.Unlock()
	for _, n := range s.mem.slab.live {
		counted += int(n)
	}
	v := s.mem.load()
	return counted, v.tree.Len() + v.dig.Len()
}

// digestEntry is the digest tree's entry of case id.
func digestEntry(t *testing.T, s *Store, id string) (digEntry, bool) {
	t.Helper()
	pr := probers.get()
	defer probers.put(pr)
	p, _ := pr.probe(string(digestKey(id)))
	return s.mem.load().dig.Get(digEntry{e: p})
}

// digests is every digest Digests reads, by case id.
func digests(t *testing.T, s *Store) map[string]Digest {
	t.Helper()
	out := map[string]Digest{}
	if err := s.Digests(func(id string, d Digest) error {
		out[id] = d
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDigestKeepsItsEntryWhileItsHolderHolds: a write of a case that
// keeps its holder and reporting node changes only the numbers of its
// digest (the entry in the block stays); one that changes the holder
// makes a new entry, and the old one's block counts it gone. Every
// digest reads back as digestOf makes it, before and after the store is
// opened again (the build), and the blocks' counts match the trees'.
func TestDigestKeepsItsEntryWhileItsHolderHolds(t *testing.T) {
	dir := t.TempDir()
	s := openNearTest(t, dir)
	put := func(c *pb.Case) {
		t.Helper()
		if err := s.Update(func(tx *Tx) error { return tx.PutCase(nil, c) }); err != nil {
			t.Fatal(err)
		}
		if counted, held := liveEntries(s); counted != held {
			t.Fatalf("blocks count %d live entries, the trees hold %d", counted, held)
		}
	}
	want := func(c *pb.Case) Digest {
		t.Helper()
		h, err := HashCase(c)
		if err != nil {
			t.Fatal(err)
		}
		return Digest{Epoch: c.HolderEpoch, Version: c.Version, Hash: h, Holder: c.Holder, ReportedAt: c.ReportedAtNode}
	}
	cases := make([]*pb.Case, 50)
	for i := range cases {
		cases[i] = arenaCase(i)
		cases[i].Holder, cases[i].ReportedAtNode = "320582", "320582100"
		put(cases[i])
	}
	c := cases[7]
	first, ok := digestEntry(t, s, c.Id)
	if !ok {
		t.Fatal("no digest entry after the case was written")
	}

	c.Version = 2
	put(c)
	second, _ := digestEntry(t, s, c.Id)
	if second.e != first.e {
		t.Errorf("a write with the same holder made a new entry in the blocks: %+v, then %+v", first.e, second.e)
	}
	if second.version != 2 || second.hash == first.hash {
		t.Errorf("the digest's numbers did not change: version %d, hash %x then %x", second.version, first.hash, second.hash)
	}

	c.Version, c.Holder, c.HolderEpoch = 3, "320583", 4
	put(c)
	third, _ := digestEntry(t, s, c.Id)
	if third.e == second.e {
		t.Error("a new holder kept the old entry")
	}
	for _, c := range cases {
		if got := digests(t, s)[c.Id]; got != want(c) {
			t.Fatalf("digest of %s: %+v, want %+v", c.Id, got, want(c))
		}
	}

	if err := s.Update(func(tx *Tx) error { return tx.DeleteCase(cases[3].Id) }); err != nil {
		t.Fatal(err)
	}
	if _, ok := digestEntry(t, s, cases[3].Id); ok {
		t.Error("the digest of a deleted case is still in the tree")
	}
	if counted, held := liveEntries(s); counted != held {
		t.Fatalf("after a deletion the blocks count %d live entries, the trees hold %d", counted, held)
	}
	before := digests(t, s)
	if len(before) != len(cases)-1 {
		t.Fatalf("%d digests, want %d", len(before), len(cases)-1)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openNearTest(t, dir)
	defer s.Close()
	after := digests(t, s)
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the digests built at open differ from those written:\n%v\n%v", after, before)
	}
	if counted, held := liveEntries(s); counted != held {
		t.Fatalf("after the build the blocks count %d live entries, the trees hold %d", counted, held)
	}
}

// TestShortDigestIsRefused: a digest too short for its numbers is an
// invalid write, and leaves the tree as it was.
func TestShortDigestIsRefused(t *testing.T) {
	s := openNearTest(t, t.TempDir())
	defer s.Close()
	err := s.Update(func(tx *Tx) error { return tx.set([]byte("h/x"), []byte("short")) })
	if err == nil {
		t.Fatal("a 5-byte digest was written")
	}
	if s.mem.load().dig.Len() != 0 {
		t.Error("the refused digest is in the tree")
	}
}
