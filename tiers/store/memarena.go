package store

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"weak"
)

// The blocks the in-memory index entries are carved from (DESIGN.md, "The
// case indexes in memory"). The garbage collector reads every pointer of
// the tree on every cycle, and marks what each one points at: with one
// heap object an entry, a million cases stored were some seven million
// objects and pointers, and a collector that took a fifth of a replica's
// CPU (BENCHMARKS.md). An entry of a block is a block number, an offset
// and two lengths instead, no pointer for the collector to read (a key or
// value too long to share a block has one of its own); the blocks are a
// few thousand objects.
//
// A block is written by one store's writer only, at offsets nobody reads
// yet, and never written again below them. The writer counts its live
// entries; once a block it no longer fills has none, the block is retired:
// the trees published before may still hold its entries, so its number
// stays bound to it until every reader of those trees is gone. A reader
// holds a pin (memPin) from the moment it loads a tree; each retirement
// starts a new pin, and every older pin reaches the newer ones. The
// writer keeps a weak pointer to the pin that was current when it retired
// the block: once the collector has freed that pin, no reader of a tree
// that held the block is left, and the number is free for a new block.

const (
	memBlockSize = 16 << 10
	// An entry in a block: offset (14 bits), key length (9), value length
	// (9). A longer key or value has a block of its own (bigEntry).
	blockOffShift = 18
	blockLenBits  = 9
	blockMaxLen   = 1<<blockLenBits - 1
)

// memBlock is one block of entries' bytes.
type memBlock struct {
	b [memBlockSize]byte
}

// blocks binds block numbers to blocks, for every store of the process.
var blocks memBlocks

type memBlocks struct {
	// table: a reader loads it, then the block it needs (both atomic: a
	// freed number is bound again by a writer while readers of other
	// numbers read the table).
	table atomic.Pointer[[]atomic.Pointer[memBlock]]
	mu    sync.Mutex
	free  []uint32 // numbers no reader can hold (under mu)
	used  int      // numbers bound (under mu)
	// waiting: blocks retired, each with the pin that was current then
	// (under mu).
	waiting []retiredBlock
}

// block is block number n.
func (m *memBlocks) block(n uint32) *memBlock { return (*m.table.Load())[n].Load() }

// bind binds a new block to a free number.
func (m *memBlocks) bind() (uint32, *memBlock) {
	blk := new(memBlock)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.used++
	if k := len(m.free); k > 0 {
		n := m.free[k-1]
		m.free = m.free[:k-1]
		(*m.table.Load())[n].Store(blk)
		return n, blk
	}
	var old []atomic.Pointer[memBlock]
	if t := m.table.Load(); t != nil {
		old = *t
	}
	n := uint32(len(old))
	if len(old) == cap(old) {
		grown := make([]atomic.Pointer[memBlock], len(old), max(64, 2*cap(old)))
		for i := range old {
			grown[i].Store(old[i].Load())
		}
		old = grown
	}
	t := append(old, atomic.Pointer[memBlock]{})
	t[n].Store(blk)
	m.table.Store(&t)
	return n, blk
}

// retire records blocks retired while pin was current, then unbinds
// the numbers of every block retired before whose pin is gone.
func (m *memBlocks) retire(ns []uint32, pin *memPin) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range ns {
		m.waiting = append(m.waiting, retiredBlock{n: n, pin: weak.Make(pin)})
	}
	m.reclaimLocked()
}

// reclaim unbinds the numbers of the retired blocks no reader can hold.
func (m *memBlocks) reclaim() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reclaimLocked()
}

func (m *memBlocks) reclaimLocked() {
	t := *m.table.Load()
	m.waiting = slices.DeleteFunc(m.waiting, func(r retiredBlock) bool {
		if r.pin.Value() != nil {
			return false
		}
		t[r.n].Store(nil)
		m.free = append(m.free, r.n)
		m.used--
		return true
	})
}

// bound is the number of blocks bound in the process (a metric).
func (m *memBlocks) bound() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.used
}

// memPin keeps the blocks a tree may hold bound while a reader has it.
// next is the pin after the next retirement: holding an older pin holds
// every newer one (set once, by the writer).
type memPin struct {
	next *memPin
	_    byte // never of size zero: weak pointers to zero-size objects alias
}

// memSlab is one store's side of the blocks (held by its writer): the
// block it fills and the live entries of every block it holds.
type memSlab struct {
	n    uint32
	blk  *memBlock
	used int
	live map[uint32]int32 // every block held, by number
	// sealed: blocks filled since the last settle, not filled again.
	sealed []uint32
}

type retiredBlock struct {
	n   uint32
	pin weak.Pointer[memPin]
}

// entry copies key and val into the block being filled, or into a block
// of their own when either is too long for that (ok false: the two are
// longer than a block).
func (s *memSlab) entry(key, val []byte) (e memEntry, ok bool) {
	size := len(key) + len(val)
	if len(key) == 0 || size > memBlockSize {
		return memEntry{}, false
	}
	if len(key) > blockMaxLen || len(val) > blockMaxLen {
		// A block of its own, retired once the entry is gone (sealed: the
		// writer fills it no more).
		n, blk := blocks.bind()
		s.track(n)
		s.sealed = append(s.sealed, n)
		copy(blk.b[copy(blk.b[:], key):], val)
		return memEntry{a: n | bigEntry, b: uint32(len(key))<<16 | uint32(len(val))}, true
	}
	if s.blk == nil || s.used+size > memBlockSize {
		if s.blk != nil {
			s.sealed = append(s.sealed, s.n)
		}
		s.n, s.blk = blocks.bind()
		s.used = 0
		s.track(s.n)
	}
	off := s.used
	copy(s.blk.b[off+copy(s.blk.b[off:], key):], val)
	s.used += size
	return memEntry{a: s.n, b: uint32(off)<<blockOffShift | uint32(len(key))<<blockLenBits | uint32(len(val))}, true
}

// make is entry, with an error for a key and value longer than a block.
func (s *memSlab) make(key, val []byte) (memEntry, error) {
	if e, ok := s.entry(key, val); ok {
		return e, nil
	}
	return memEntry{}, fmt.Errorf("index key %q…: %d bytes of key and value, a block holds %d", key[:min(len(key), 64)], len(key)+len(val), memBlockSize)
}

// track starts counting block n's live entries.
func (s *memSlab) track(n uint32) {
	if s.live == nil {
		s.live = map[uint32]int32{}
	}
	s.live[n] = 0
}

// hold takes block n over from a build's slab, sealed.
func (s *memSlab) hold(n uint32) {
	s.track(n)
	s.sealed = append(s.sealed, n)
}

// blockDelta is a change of one block's live entries by a transaction,
// counted once it commits.
type blockDelta struct {
	n uint32
	d int32
}

// settle counts a transaction's changes (committed: false, it failed and
// its entries are garbage) and retires every block held that is no
// longer filled and has no live entry: returned, for the writer to
// publish its next tree with a new pin (retire).
func (s *memSlab) settle(deltas []blockDelta, committed bool) []uint32 {
	var out []uint32
	empty := func(n uint32) {
		if c, held := s.live[n]; held && c == 0 && (s.blk == nil || n != s.n) {
			delete(s.live, n)
			out = append(out, n)
		}
	}
	if committed {
		for _, d := range deltas {
			if _, held := s.live[d.n]; held {
				s.live[d.n] += d.d
			}
		}
		for _, d := range deltas {
			if d.d < 0 {
				empty(d.n)
			}
		}
	}
	for _, n := range s.sealed {
		empty(n)
	}
	s.sealed = s.sealed[:0]
	return out
}

// all is every block held, the one being filled included: what a store
// that drops its tree (Restore, Close) retires.
func (s *memSlab) all() []uint32 {
	out := make([]uint32, 0, len(s.live))
	for n := range s.live {
		out = append(out, n)
	}
	clear(s.live)
	s.blk, s.sealed = nil, s.sealed[:0]
	return out
}

// count counts the entries of tree and of the digests dig, every one in
// a block (after a build).
func (s *memSlab) count(tree *memTree, dig *digTree) {
	tree.Scan(func(e memEntry) bool {
		s.live[e.block()]++
		return true
	})
	dig.Scan(func(d digEntry) bool {
		s.live[d.e.block()]++
		return true
	})
}
