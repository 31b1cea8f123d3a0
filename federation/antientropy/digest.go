package antientropy

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

const (
	// MaxBuckets bounds the number of buckets of a comparison (a power of
	// two): enough for 16 million shared cases at 256 a bucket.
	MaxBuckets = 1 << 16
	// MinBuckets is the fewest buckets the automatic choice makes.
	MinBuckets = 64
	// PerBucket is how many cases the automatic choice puts in a bucket.
	PerBucket = 256
	// DigestSize is the length of a bucket digest.
	DigestSize = 32
)

// AutoBuckets is the number of buckets for a link sharing n cases: the
// smallest power of two at or above n/PerBucket, at least MinBuckets and
// at most MaxBuckets.
func AutoBuckets(n uint64) uint32 {
	b := uint32(MinBuckets)
	for uint64(b)*PerBucket < n && b < MaxBuckets {
		b <<= 1
	}
	return b
}

// ValidBuckets reports whether b can number a comparison's buckets.
func ValidBuckets(b uint32) bool { return b >= 1 && b <= MaxBuckets && b&(b-1) == 0 }

// BucketOf is the bucket of a case id among b (a power of two): both ends
// of a link place an id in the same bucket whatever they hold of it.
func BucketOf(id string, b uint32) uint32 { return uint32(idHash(id)) & (b - 1) }

// idHash is FNV-1a of the id with a final avalanche (so the low bits used
// for buckets depend on every byte).
func idHash(id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// Version is what two copies of a case are compared by: holder epoch,
// version and the hash of the whole stored case (store.HashCase).
type Version struct {
	Epoch, Version, Hash uint64
}

// Newer reports whether v supersedes w by the protocol's rule: a later
// holder epoch, or the same epoch and a higher version.
func (v Version) Newer(w Version) bool {
	if v.Epoch != w.Epoch {
		return v.Epoch > w.Epoch
	}
	return v.Version > w.Version
}

// caseHash is a 128-bit hash of (id, epoch, version, case hash): SHA-256,
// truncated, so that two different copies colliding is out of the question
// even summed over millions of cases.
type caseHash [2]uint64

func hashVersion(id string, v Version) caseHash {
	var buf [128]byte
	b := buf[:0]
	b = append(b, id...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, v.Epoch)
	b = binary.BigEndian.AppendUint64(b, v.Version)
	b = binary.BigEndian.AppendUint64(b, v.Hash)
	sum := sha256.Sum256(b)
	return caseHash{binary.BigEndian.Uint64(sum[0:8]), binary.BigEndian.Uint64(sum[8:16])}
}

// Bucket is the order-independent summary of the cases in one bucket: how
// many, the sum (two 64-bit lanes, carrying) and the XOR of their 128-bit
// hashes. Adding the same cases in any order gives the same Bucket.
type Bucket struct {
	Count    uint64
	Sum, Xor [2]uint64
}

func (b *Bucket) add(h caseHash) {
	b.Count++
	var carry uint64
	b.Sum[1], carry = bits.Add64(b.Sum[1], h[1], 0)
	b.Sum[0], _ = bits.Add64(b.Sum[0], h[0], carry)
	b.Xor[0] ^= h[0]
	b.Xor[1] ^= h[1]
}

func (b *Bucket) merge(o Bucket) {
	b.Count += o.Count
	var carry uint64
	b.Sum[1], carry = bits.Add64(b.Sum[1], o.Sum[1], 0)
	b.Sum[0], _ = bits.Add64(b.Sum[0], o.Sum[0], carry)
	b.Xor[0] ^= o.Xor[0]
	b.Xor[1] ^= o.Xor[1]
}

// Add puts one case version into the bucket.
func (b *Bucket) Add(id string, v Version) { b.add(hashVersion(id, v)) }

// Digest is the bucket's wire form (DigestSize bytes).
func (b Bucket) Digest() []byte {
	out := make([]byte, 0, DigestSize)
	for _, x := range [4]uint64{b.Sum[0], b.Sum[1], b.Xor[0], b.Xor[1]} {
		out = binary.BigEndian.AppendUint64(out, x)
	}
	return out
}

// Summary is the buckets of the cases one end shares on a link, kept at
// MaxBuckets so that it folds to any smaller number without a second scan.
type Summary struct {
	Shared uint64
	fine   []Bucket
}

func newSummary() *Summary { return &Summary{fine: make([]Bucket, MaxBuckets)} }

func (s *Summary) add(id string, v Version) {
	s.Shared++
	s.fine[BucketOf(id, MaxBuckets)].Add(id, v)
}

// Fold returns the summary in b buckets (a power of two ≤ MaxBuckets).
func (s *Summary) Fold(b uint32) []Bucket {
	out := make([]Bucket, b)
	for i := range s.fine {
		if s.fine[i].Count > 0 {
			out[uint32(i)&(b-1)].merge(s.fine[i])
		}
	}
	return out
}

// Wire lists the non-empty buckets in wire form.
func Wire(buckets []Bucket) []*pb.BucketDigest {
	var out []*pb.BucketDigest
	for i, b := range buckets {
		if b.Count > 0 {
			out = append(out, &pb.BucketDigest{Bucket: uint32(i), Count: b.Count, Digest: b.Digest()})
		}
	}
	return out
}

// Differing lists, in order, the buckets where mine and theirs (in wire
// form, from the peer) differ, including buckets only one side has.
func Differing(mine []Bucket, theirs []*pb.BucketDigest) ([]uint32, error) {
	seen := make([]bool, len(mine))
	var out []uint32
	for _, t := range theirs {
		i := t.GetBucket()
		if int(i) >= len(mine) {
			return nil, fmt.Errorf("peer's bucket %d out of %d", i, len(mine))
		}
		if seen[i] {
			return nil, fmt.Errorf("peer's bucket %d listed twice", i)
		}
		seen[i] = true
		if mine[i].Count != t.GetCount() || string(mine[i].Digest()) != string(t.GetDigest()) {
			out = append(out, i)
		}
	}
	for i, b := range mine {
		if !seen[i] && b.Count > 0 {
			out = append(out, uint32(i))
		}
	}
	slices.Sort(out)
	return out, nil
}

// scanShared calls fn for the digest of every case st shares on l, in id
// order, reading only the store's digest index.
func scanShared(st *store.Store, l *link, fn func(id string, d store.Digest) error) error {
	return st.Digests(func(id string, d store.Digest) error {
		if !l.shares(d.Holder, d.ReportedAt) {
			return nil
		}
		return fn(id, d)
	})
}

// summarize builds the Summary of what st shares on l.
func summarize(st *store.Store, l *link) (*Summary, error) {
	s := newSummary()
	err := scanShared(st, l, func(id string, d store.Digest) error {
		s.add(id, Version{d.Epoch, d.Version, d.Hash})
		return nil
	})
	return s, err
}

// bucketDigests is the peer's side of round 1: the non-empty buckets among
// b of what st shares on l.
func bucketDigests(st *store.Store, l *link, b uint32) ([]*pb.BucketDigest, error) {
	buckets := make([]Bucket, b)
	err := scanShared(st, l, func(id string, d store.Digest) error {
		buckets[BucketOf(id, b)].Add(id, Version{d.Epoch, d.Version, d.Hash})
		return nil
	})
	return Wire(buckets), err
}

// versionsIn is the peer's side of round 2: the versions of the shared
// cases in the buckets marked in want (len b), in id order.
func versionsIn(st *store.Store, l *link, b uint32, want []bool) ([]*pb.CaseVersion, error) {
	var out []*pb.CaseVersion
	err := scanShared(st, l, func(id string, d store.Digest) error {
		if want[BucketOf(id, b)] {
			out = append(out, &pb.CaseVersion{CaseId: id, HolderEpoch: d.Epoch, Version: d.Version, Hash: d.Hash, Holder: d.Holder})
		}
		return nil
	})
	return out, err
}

// copiesIn is the initiator's side of round 2: its own shared copies in the
// buckets marked in want.
func copiesIn(st *store.Store, l *link, b uint32, want []bool) (map[string]Copy, error) {
	out := map[string]Copy{}
	err := scanShared(st, l, func(id string, d store.Digest) error {
		if want[BucketOf(id, b)] {
			out[id] = Copy{Present: true, Version: Version{d.Epoch, d.Version, d.Hash}, Holder: d.Holder, ReportedAt: d.ReportedAt}
		}
		return nil
	})
	return out, err
}
