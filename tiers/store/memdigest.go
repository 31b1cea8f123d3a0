package store

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/tidwall/btree"
)

// The digests in memory (h/, one a case: what anti-entropy compares). A
// digest's numbers change at every write of its case; its key never does,
// and its holder and reporting node seldom. So a digest is an entry of a
// block (memEntry: the key, then the holder and the reporting node as
// digest.encode writes them) beside the three numbers, held in the tree
// itself: no pointer for the collector to read, no object a digest, and a
// write that only changes the numbers keeps the block's entry (the block
// lives as long as the case, as the index entries' do). A million cases
// stored were a million digest objects, half the objects of a replica's
// heap (BENCHMARKS.md, "Digests without a pointer").
type digEntry struct {
	e                    memEntry
	epoch, version, hash uint64
}

// digestNums is the length of the numbers that begin an encoded digest.
const digestNums = 24

func (d digEntry) key() string { return d.e.key() }

// block is the block that holds the digest's key, holder and node.
func (d digEntry) block() uint32 { return d.e.block() }

// val is the digest as digest.encode writes it (a new string).
func (d digEntry) val() string {
	rest := d.e.val()
	b := make([]byte, digestNums, digestNums+len(rest))
	binary.BigEndian.PutUint64(b[0:], d.epoch)
	binary.BigEndian.PutUint64(b[8:], d.version)
	binary.BigEndian.PutUint64(b[16:], d.hash)
	b = append(b, rest...)
	return string(b)
}

func digLess(a, b digEntry) bool { return a.e.key() < b.e.key() }

// digOrder is the order new digest trees are built with (see memOrder).
var digOrder = digLess

// digTree is the ordered set of the digests.
type digTree = btree.BTreeG[digEntry]

func newDigTree() *digTree {
	return btree.NewBTreeGOptions(digOrder, btree.Options{NoLocks: true})
}

// makeDigest makes the entry of an encoded digest val under key, its key
// and the rest of val in slab (ok false: val is no digest, or the two are
// longer than a block).
func makeDigest(slab *memSlab, key, val []byte) (digEntry, bool) {
	if len(val) < digestNums {
		return digEntry{}, false
	}
	e, ok := slab.entry(key, val[digestNums:])
	if !ok {
		return digEntry{}, false
	}
	return withNums(digEntry{e: e}, val), true
}

// withNums is d with the numbers of the encoded digest val.
func withNums(d digEntry, val []byte) digEntry {
	d.epoch = binary.BigEndian.Uint64(val[0:])
	d.version = binary.BigEndian.Uint64(val[8:])
	d.hash = binary.BigEndian.Uint64(val[16:])
	return d
}

// setDigest sets the digest of key to val in the transaction's digest
// tree. A digest whose holder and reporting node are the ones held keeps
// its entry in the block and changes only its numbers.
func (tx *Tx) setDigest(key, val []byte, hint *btree.PathHint) error {
	if len(val) < digestNums {
		return fmt.Errorf("write %q: a digest of %d bytes: %w", key, len(val), badger.ErrInvalidRequest)
	}
	pr := probers.get()
	p, whole := pr.probe(string(key))
	var old digEntry
	var had bool
	if whole {
		old, had = tx.dig.GetHint(digEntry{e: p}, hint)
	}
	probers.put(pr)
	if had && old.e.val() == string(val[digestNums:]) {
		tx.dig.SetHint(withNums(old, val), hint)
		return nil
	}
	d, ok := makeDigest(tx.memSlab, key, val)
	if !ok {
		return fmt.Errorf("write %q: %d bytes of key and value, a block holds %d: %w", key[:min(len(key), 64)], len(key)+len(val), memBlockSize, badger.ErrInvalidRequest)
	}
	tx.memDeltas = append(tx.memDeltas, blockDelta{n: d.e.block(), d: 1})
	if old, had := tx.dig.SetHint(d, hint); had {
		tx.memDeltas = append(tx.memDeltas, blockDelta{n: old.e.block(), d: -1})
	}
	return nil
}

// getDigest reads the digest of key.
func (tx *Tx) getDigest(key []byte, hint *btree.PathHint) (kvItem, error) {
	pr := probers.get()
	defer probers.put(pr)
	p, whole := pr.probe(string(key))
	if !whole {
		return nil, badger.ErrKeyNotFound // longer than any entry
	}
	d, ok := tx.dig.GetHint(digEntry{e: p}, hint)
	if !ok {
		return nil, badger.ErrKeyNotFound
	}
	return memItem{k: d.key(), v: d.val(), pin: tx.memPin}, nil
}

// eachDigest calls fn for every digest in key order, made from the tree's
// entries: no encoded digest built to be parsed again, no item a digest
// (anti-entropy walks a million of them a run). fn's strings are its own.
func (tx *Tx) eachDigest(fn func(id string, d Digest) error) error {
	if err := tx.memReady(); err != nil {
		return err
	}
	var err error
	tx.dig.Scan(func(e digEntry) bool {
		if tx.stats != nil {
			tx.stats.Scanned.Add(1)
		}
		key, rest := e.key(), e.e.val()
		i := strings.IndexByte(rest, 0)
		if i < 0 {
			err = fmt.Errorf("digest of %s: without separator", key[len(pfxDigest):])
			return false
		}
		rest = strings.Clone(rest) // one string for the holder and the node
		err = fn(strings.Clone(key[len(pfxDigest):]), Digest{
			Epoch: e.epoch, Version: e.version, Hash: e.hash,
			Holder: rest[:i], ReportedAt: rest[i+1:],
		})
		return err == nil
	})
	return err
}

// newDigIter iterates the digest tree.
func newDigIter(tree *digTree, pin *memPin, opts badger.IteratorOptions) *memIter[digEntry] {
	return &memIter[digEntry]{it: tree.Iter(), pin: pin, prefix: string(opts.Prefix), reverse: opts.Reverse, probeOf: digProbe}
}

// digProbe is a probe of the digest tree, in the iterator's prober.
func digProbe(pr **memProber, key string) (digEntry, bool) {
	e, whole := blockProbe(pr, key)
	return digEntry{e: e}, whole
}
