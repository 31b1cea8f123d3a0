package antientropy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

func TestBucketDigestIsOrderIndependent(t *testing.T) {
	type cv struct {
		id string
		v  Version
	}
	var cases []cv
	for i := range 500 {
		cases = append(cases, cv{fmt.Sprintf("320501-20261122-%06d", i), Version{1, uint64(1 + i%7), uint64(i) * 0x9e3779b97f4a7c15}})
	}
	var a Bucket
	for _, c := range cases {
		a.Add(c.id, c.v)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5 {
		rng.Shuffle(len(cases), func(i, j int) { cases[i], cases[j] = cases[j], cases[i] })
		var b Bucket
		for _, c := range cases {
			b.Add(c.id, c.v)
		}
		if b != a || string(b.Digest()) != string(a.Digest()) {
			t.Fatal("same cases in another order give another digest")
		}
	}
	if len(a.Digest()) != DigestSize || a.Count != 500 {
		t.Fatalf("digest %d bytes, count %d", len(a.Digest()), a.Count)
	}
	// Any change of one case's epoch, version or hash, or of its id, shows.
	for i, mod := range []func(*cv){
		func(c *cv) { c.v.Epoch++ },
		func(c *cv) { c.v.Version++ },
		func(c *cv) { c.v.Hash ^= 1 },
		func(c *cv) { c.id += "x" },
	} {
		var b Bucket
		for k, c := range cases {
			if k == 42 {
				mod(&c)
			}
			b.Add(c.id, c.v)
		}
		if b.Count != a.Count || string(b.Digest()) == string(a.Digest()) {
			t.Fatalf("change %d: digest unchanged", i)
		}
	}
	// Two swapped versions (same multiset of versions, other ids) differ:
	// the version is hashed with its id.
	var x, y Bucket
	x.Add("a", Version{1, 1, 1})
	x.Add("b", Version{1, 2, 2})
	y.Add("a", Version{1, 2, 2})
	y.Add("b", Version{1, 1, 1})
	if string(x.Digest()) == string(y.Digest()) {
		t.Fatal("swapped versions collide")
	}
}

func TestFoldEqualsDirectBucketing(t *testing.T) {
	s := newSummary()
	direct := map[uint32][]Bucket{}
	for _, b := range []uint32{1, 64, 1024, MaxBuckets} {
		direct[b] = make([]Bucket, b)
	}
	for i := range 3000 {
		id, v := fmt.Sprintf("320501001-20261122-%06d", i), Version{2, uint64(i), uint64(i) * 31}
		s.add(id, v)
		for b, bs := range direct {
			bs[BucketOf(id, b)].Add(id, v)
		}
	}
	for b, bs := range direct {
		if got := s.Fold(b); !slices.Equal(got, bs) {
			t.Fatalf("fold to %d buckets differs from bucketing directly", b)
		}
	}
	// Ids spread over the buckets: no bucket of 64 holds more than twice
	// its share.
	for i, b := range direct[64] {
		if b.Count > 2*3000/64 {
			t.Fatalf("bucket %d holds %d of 3000", i, b.Count)
		}
	}
}

func TestDifferingFindsExactlyTheChangedBuckets(t *testing.T) {
	const B = 64
	mine, theirs := make([]Bucket, B), make([]Bucket, B)
	changed := map[uint32]bool{}
	for i := range 2000 {
		id, v := fmt.Sprintf("320502-20261122-%06d", i), Version{1, 3, uint64(i)}
		mine[BucketOf(id, B)].Add(id, v)
		switch {
		case i%397 == 0: // missing there
			changed[BucketOf(id, B)] = true
		case i%401 == 1: // divergent
			v.Version++
			changed[BucketOf(id, B)] = true
			fallthrough
		default:
			theirs[BucketOf(id, B)].Add(id, v)
		}
	}
	// A bucket only the peer has.
	extra := "320502-20261122-999999"
	theirs[BucketOf(extra, B)].Add(extra, Version{1, 1, 1})
	changed[BucketOf(extra, B)] = true
	wire := Wire(theirs)
	got, err := Differing(mine, wire)
	if err != nil {
		t.Fatal(err)
	}
	var want []uint32
	for b := range changed {
		want = append(want, b)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("differing %v, want %v", got, want)
	}
	// A bucket the peer does not list but this end has counts too.
	wire = slices.DeleteFunc(wire, func(b *pb.BucketDigest) bool { return b.Bucket == 3 })
	if got, _ := Differing(mine, wire); !slices.Contains(got, 3) {
		t.Fatalf("bucket 3 missing at the peer not found: %v", got)
	}
	if _, err := Differing(mine, []*pb.BucketDigest{{Bucket: B}}); err == nil {
		t.Fatal("a bucket out of range is accepted")
	}
	if _, err := Differing(mine, []*pb.BucketDigest{{Bucket: 1}, {Bucket: 1}}); err == nil {
		t.Fatal("a bucket listed twice is accepted")
	}
}

func TestAutoBuckets(t *testing.T) {
	for _, tc := range []struct {
		n    uint64
		want uint32
	}{{0, 64}, {1000, 64}, {64 * 256, 64}, {64*256 + 1, 128}, {1_000_000, 4096}, {1 << 40, MaxBuckets}} {
		if got := AutoBuckets(tc.n); got != tc.want || !ValidBuckets(got) {
			t.Errorf("AutoBuckets(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
	for _, b := range []uint32{0, 3, 100, MaxBuckets * 2} {
		if ValidBuckets(b) {
			t.Errorf("ValidBuckets(%d)", b)
		}
	}
}
