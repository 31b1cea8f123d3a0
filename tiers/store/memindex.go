package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/dgraph-io/badger/v4"
	"github.com/tidwall/btree"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// The case indexes in memory (DESIGN.md, "The case indexes in memory").
//
// The families below are a function of the stored cases alone: the
// secondary indexes (by state, owner unit, grid, deadline, overdue, joint
// review, handed up), the digests anti-entropy compares, the nearby
// index the duplicate and recurrence look-ups read (nearby.go) and the
// command centre's counters and overdue lists (dashboard.go). A create
// wrote eight of them to badger on every replica, each a memtable insert
// and a memtable-log write, later flushed and compacted: most of the
// write path's cost (BENCHMARKS.md). They live in an ordered in-memory tree
// instead, rebuilt from the cases when the store opens and after a
// restore, as etcd rebuilds its key index from its backend; badger holds
// none of them. Transactions see them exactly as they see badger's keys
// (tx.get, tx.iterator, tx.set, tx.del route them): a write transaction
// changes a copy-on-write copy of the tree (O(1) to take) that replaces
// the published one once the badger transaction has committed; a read
// transaction loads the tree before it begins its badger view (memIndex).
// The dashboard's counters (D/c/, D/f/) are routed to a tree of their own,
// changed in place once a transaction commits (dashcounters.go).
var memFamilies = []string{pfxByState, pfxByUnit, pfxByGrid, pfxByDue, pfxOverdue, pfxReview, pfxHandedUp, pfxDigest, pfxNearOpen, pfxNearClosed,
	pfxDashCount, pfxDashFlow, pfxDashOver, pfxDashUnitO}

// isMemKey reports whether key belongs to one of memFamilies.
func isMemKey(key []byte) bool {
	if len(key) < 2 || key[1] != '/' {
		return false
	}
	switch key[0] {
	case 's', 'u', 'g', 'd', 'w', 'v', 't', 'h':
		return true
	case 'N':
		return len(key) >= 4 && (key[2] == 'o' || key[2] == 'c') && key[3] == '/'
	case 'D':
		return len(key) >= 4 && (key[2] == 'c' || key[2] == 'f' || key[2] == 'o' || key[2] == 'p') && key[3] == '/'
	}
	return false
}

// memEntry is one key of the in-memory families and its value (empty for
// an index entry), in a block (memarena.go): a block's number and where
// in it. Eight bytes and no pointer: every transaction copies the tree
// nodes it changes (copy-on-write), so a smaller entry is a smaller copy,
// and the collector, which reads every pointer of the heap on every
// cycle, skips a node's entries whole.
//
// Most entries share a block: a is its number, b the offset, the key's
// length and the value's (the key's bytes, then the value's). An entry
// whose key or value is too long for that (bigEntry set in a) has a block
// of its own from offset 0, b the key's length and the value's, 16 bits
// each. The probes a search is made with are entries too (memprobe.go).
type memEntry struct {
	a, b uint32
}

// bigEntry marks an entry with a block of its own.
const bigEntry = 1 << 31

// block is the number of the entry's block.
func (e memEntry) block() uint32 { return e.a &^ bigEntry }

func (e memEntry) key() string {
	if e.a&bigEntry != 0 {
		return unsafe.String(blockAt(e.a&^bigEntry, 0), e.b>>16)
	}
	off, kl := e.b>>blockOffShift, e.b>>blockLenBits&blockMaxLen
	return unsafe.String(blockAt(e.a, off), kl)
}

func (e memEntry) val() string {
	if e.a&bigEntry != 0 {
		kl, vl := e.b>>16, e.b&0xffff
		if vl == 0 {
			return ""
		}
		return unsafe.String(blockAt(e.a&^bigEntry, kl), vl)
	}
	vl := e.b & blockMaxLen
	if vl == 0 {
		return ""
	}
	off, kl := e.b>>blockOffShift, e.b>>blockLenBits&blockMaxLen
	return unsafe.String(blockAt(e.a, off+kl), vl)
}

// blockAt is the address of byte off (within the block: an entry's
// lengths say so) of block n, computed without reading the block: an
// index expression would check the block pointer for nil by loading its
// first byte, a cache miss of its own on every comparison of a search in
// a big tree, beside the one for the key (BENCHMARKS.md, "Digests and
// nearby lists without a pointer").
func blockAt(n, off uint32) *byte {
	return (*byte)(unsafe.Add(unsafe.Pointer(blocks.block(n)), off))
}

func memLess(a, b memEntry) bool { return a.key() < b.key() }

// objEntry is an entry of an object of its own: the key's bytes then the
// value's, p the first byte, a and b the two lengths. The trees of the
// entries whose values are replaced again and again hold them (the
// digests, the dashboard's counters: in a block, each old value would
// stay as long as anything else of its block).
type objEntry struct {
	p    *byte
	a, b uint32
}

func newObjEntry(key, val []byte) objEntry {
	// One allocation: the entry holds the only reference to it. Never
	// written again once built, except a dashboard counter's value while
	// no reader's copy holds it (dashCounters.fresh).
	b := make([]byte, len(key)+len(val))
	copy(b[copy(b, key):], val)
	return objEntry{p: unsafe.SliceData(b), a: uint32(len(key)), b: uint32(len(val))}
}

// objProbe is an entry to search by key with (no copy of key).
func objProbe(key string) objEntry {
	return objEntry{p: unsafe.StringData(key), a: uint32(len(key))}
}

func (e objEntry) key() string { return unsafe.String(e.p, e.a) }

func (e objEntry) val() string {
	if e.b == 0 {
		return ""
	}
	return unsafe.String((*byte)(unsafe.Add(unsafe.Pointer(e.p), e.a)), e.b)
}

func objLess(a, b objEntry) bool { return a.key() < b.key() }

// memOrder and objOrder are the orders new trees are built with: memLess
// and objLess, or a benchmark's counting copies of them (export_test.go).
// Read when a tree is made, so the trees' comparisons never go through
// them.
var (
	memOrder = memLess
	objOrder = objLess
)

// memTree is the ordered set of the in-memory families' entries but the
// digests; objTree the digests' (h/) and the dashboard's counters'
// (dashcounters.go).
type (
	memTree = btree.BTreeG[memEntry]
	objTree = btree.BTreeG[objEntry]
)

func newMemTree() *memTree {
	return btree.NewBTreeGOptions(memOrder, btree.Options{NoLocks: true})
}

func newObjTree() *objTree {
	return btree.NewBTreeGOptions(objOrder, btree.Options{NoLocks: true})
}

// isDigestKey reports whether key (or a prefix) is of the digests' family.
func isDigestKey(key []byte) bool { return len(key) >= 2 && key[0] == 'h' && key[1] == '/' }

// memIndex holds the committed tree and the readers' copy of it.
//
// The committed tree (tree) is changed in place: a write transaction keeps
// its changes to it aside (memOverlay: read back by its own reads), and
// once its badger transaction has committed, the writer applies them to
// the tree in the order they were made, under mu. A reader never reads the committed
// tree: it takes a copy of it under mu (O(1): a copy shares every node),
// at most one a commit, which every reader until the next commit shares
// (cur). A commit copies only the nodes it changes that such a copy
// shares (btree copy-on-write), and a commit that no reader followed
// copies none: a follower under write load, which has no readers,
// changes its tree in place, where every transaction used to copy the
// path of every entry it changed (BENCHMARKS.md, "Update, 2026-12-07
// 07:05 UTC").
//
// A reader takes its tree before it begins its badger view: the tree is
// never newer than the view (every index entry it finds names a case the
// view holds), though a case committed a moment ago may not be in it yet.
// A view never waits for a badger commit: badger may hold a commit while
// it compacts, and every reader of the node would wait with it. It waits
// at most for the changes of one commit to be applied in memory.
//
// The digests (dig) are kept as before: a write transaction changes a
// copy, which replaces them at its commit.
type memIndex struct {
	// cur is the readers' copy of the committed tree, with the digests
	// and the pin of that commit; nil: no reader took one since the last
	// commit.
	cur atomic.Pointer[memVersion]
	// writer serializes write transactions: each reads the committed
	// tree and changes a copy of the digests, so two at once would lose
	// one's changes. Snapshot and Verify take it too, for a tree and a
	// view of exactly the same moment.
	writer sync.Mutex
	// mu orders a commit's changes of tree and the readers' copies of it
	// (under dash.mu where both are held). tree, dig and pin are changed
	// under writer and mu: a write transaction, which holds writer, reads
	// them without mu.
	mu   sync.Mutex
	tree *memTree
	dig  *digTree
	pin  *memPin // the pin of a copy taken now (memarena.go)
	// over holds the write transaction's changes of tree until it
	// commits (under writer).
	over memOverlay
	// hints remember where the writer's last change of a family, or of
	// a grid's entries, landed (memhints.go). Held by the writer (under
	// writer).
	hints memHints
	// slab: the blocks the writer's entries are in (memarena.go; under
	// writer).
	slab memSlab
	// buildNanos is how long the last buildMemIndex took; commits
	// counts the commits applied to tree, copies the readers' copies of
	// it (metrics).
	buildNanos      atomic.Int64
	commits, copies atomic.Uint64
	// dash holds the dashboard's counters (dashcounters.go): committed
	// with the tree each commit changes.
	dash dashCounters
}

// memVersion is a reader's copy of the tree, the digests of the same
// commit and the pin its readers hold while they read it (memarena.go):
// every block it holds stays bound.
type memVersion struct {
	tree *memTree
	dig  *digTree // the digests (h/, memdigest.go)
	pin  *memPin
}

// load is the readers' copy of the committed tree, taken now if no
// reader took one since the last commit.
func (m *memIndex) load() *memVersion {
	if v := m.cur.Load(); v != nil {
		return v
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.loadLocked()
}

// loadLocked is load under mu.
func (m *memIndex) loadLocked() *memVersion {
	if v := m.cur.Load(); v != nil {
		return v
	}
	v := &memVersion{tree: m.tree.Copy(), dig: m.dig, pin: m.pin}
	m.cur.Store(v)
	m.copies.Add(1)
	return v
}

// view begins a badger read transaction and returns it with a tree no
// newer than it.
func (m *memIndex) view(db *badger.DB) (*badger.Txn, *memVersion) {
	v := m.load()
	return db.NewTransaction(false), v
}

// exactView is view with the tree and the dashboard's counters of exactly
// the view's moment: it holds writes back while it begins (Snapshot,
// Verify).
func (m *memIndex) exactView(db *badger.DB) (*badger.Txn, *memVersion, *objTree) {
	m.writer.Lock()
	defer m.writer.Unlock()
	return db.NewTransaction(false), m.load(), m.dash.view()
}

// commit commits txn, then applies the write transaction's changes of the
// tree (over) to it and publishes the digests dig, their blocks' live
// entries changed by digDeltas, with the dashboard's counters changed by
// dash: a reader that takes both under the counters' lock (viewDash) has
// them of the same commit. Under writer.
func (m *memIndex) commit(txn *badger.Txn, dig *digTree, digDeltas []blockDelta, dash []dashDelta) error {
	if err := txn.Commit(); err != nil {
		m.abort()
		return err
	}
	m.dash.mu.Lock()
	defer m.dash.mu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	deltas := m.over.apply(m.tree, &m.hints, digDeltas)
	m.commits.Add(1)
	m.dash.applyLocked(dash)
	m.publishLocked(dig, m.slab.settle(deltas, true))
	return nil
}

// viewDash is view with a copy of the dashboard's counters of the same
// commit as the tree.
func (m *memIndex) viewDash(db *badger.DB) (*badger.Txn, *memVersion, *objTree) {
	m.dash.mu.Lock()
	v, dash := m.load(), m.dash.copyLocked()
	m.dash.mu.Unlock()
	return db.NewTransaction(false), v, dash
}

// abort drops a write transaction's changes (its entries in blocks are
// garbage). Under writer.
func (m *memIndex) abort() {
	m.over.reset()
	if retired := m.slab.settle(nil, false); len(retired) > 0 {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.publishLocked(m.dig, retired)
	}
}

// publish makes tree and dig the committed ones. Blocks retired (none of
// tree's entries in them) wait for the readers of the copies before.
// Under writer, or before the store is shared (Open).
func (m *memIndex) publish(tree *memTree, dig *digTree, retired []uint32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.over.reset()
	m.tree = tree
	m.publishLocked(dig, retired)
}

// publishLocked makes dig the committed digests and drops the readers'
// copy, which no longer is the committed tree's. Blocks retired wait
// for the readers of the copies taken before: the pin they hold is the
// one the blocks are retired under, and the copies taken from now get a
// new one. Under writer and mu.
func (m *memIndex) publishLocked(dig *digTree, retired []uint32) {
	m.dig = dig
	if m.pin == nil {
		m.pin = &memPin{}
	}
	if len(retired) > 0 {
		pin := &memPin{}
		m.pin.next = pin
		blocks.retire(retired, m.pin)
		m.pin = pin
	}
	m.cur.Store(nil)
}

// replace publishes tree, the digests dig and the dashboard's counters
// dash, built from the stored cases in the blocks of built (the build's
// workers'), instead of every entry held so far (Open, Restore, Close).
func (m *memIndex) replace(tree *memTree, dig *digTree, dash *objTree, built []memSlab) {
	m.writer.Lock()
	defer m.writer.Unlock()
	m.dash.replace(dash)
	retired := m.slab.all()
	for i := range built {
		for n := range built[i].live {
			m.slab.hold(n)
		}
	}
	m.slab.count(tree, dig)
	// A block of built without an entry in tree (none: the build makes
	// every key once) would never be counted again: retired now.
	m.publish(tree, dig, append(retired, m.slab.settle(nil, false)...))
}

// entries is the number of entries in memory (a metric).
func (m *memIndex) entries() int {
	m.mu.Lock()
	n := m.tree.Len() + m.dig.Len()
	m.mu.Unlock()
	return n + m.dash.len()
}

// bytesOf is s's bytes without a copy: the caller must not change them
// (badger's item keys and values carry the same rule).
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// memWritten, when set (by a test of this package), sees every key a
// transaction sets or deletes in the in-memory families.
var memWritten func(key string, del bool)

// memSet and memDel change a write transaction's trees.
func (tx *Tx) memSet(key, val []byte) error {
	if !tx.memWrite {
		return fmt.Errorf("write %q: %w", key, badger.ErrReadOnlyTxn)
	}
	if isDigestKey(key) {
		if err := tx.setDigest(key, val, tx.memHints.of(key)); err != nil {
			return err
		}
	} else {
		e, ok := tx.memSlab.entry(key, val)
		if !ok {
			return fmt.Errorf("write %q: %d bytes of key and value, a block holds %d: %w", key[:min(len(key), 64)], len(key)+len(val), memBlockSize, badger.ErrInvalidRequest)
		}
		tx.memOver.set(e)
		if tx.memOwn != nil {
			tx.memOwn.Set(e)
		}
	}
	if key[0] == 'N' {
		tx.noteNear(key, val, false)
	}
	if memWritten != nil {
		memWritten(string(key), false)
	}
	return nil
}

func (tx *Tx) memDel(key []byte) error {
	if !tx.memWrite {
		return fmt.Errorf("delete %q: %w", key, badger.ErrReadOnlyTxn)
	}
	if isDigestKey(key) {
		deleteProbed(tx, tx.dig, key, tx.memHints.of(key), digProbe)
	} else {
		tx.memOver.del(key)
		if tx.memOwn != nil {
			deleteKey(tx.memOwn, string(key), nil)
		}
	}
	if key[0] == 'N' {
		tx.noteNear(key, nil, true)
	}
	if memWritten != nil {
		memWritten(string(key), true)
	}
	return nil
}

// deleteProbed deletes key from tree, the digests', whose entries probeOf
// probes, and notes the block its entry held.
func deleteProbed[E interface{ block() uint32 }](tx *Tx, tree *btree.BTreeG[E], key []byte, hint *btree.PathHint, probeOf func(**memProber, string) (E, bool)) {
	var pr *memProber
	if p, whole := probeOf(&pr, string(key)); whole { // else longer than any entry
		if old, had := tree.DeleteHint(p, hint); had {
			tx.memDeltas = append(tx.memDeltas, blockDelta{n: old.block(), d: -1})
		}
	}
	if pr != nil {
		probers.put(pr) // after the delete: the probe's bytes are the prober's
	}
}

// memGet reads one key of the in-memory families.
func (tx *Tx) memGet(key []byte) (kvItem, error) {
	// The writer's hint: the family's (or the grid's) last change, where
	// the next one mostly lands.
	var hint *btree.PathHint
	if tx.memWrite {
		hint = tx.memHints.of(key)
	}
	if isDigestKey(key) {
		return tx.getDigest(key, hint)
	}
	if tx.memWrite && tx.memOwn == nil {
		// This transaction's change of key, if it made one; else the
		// committed tree's entry (its own copy holds both).
		if c, ok := tx.memOver.get(key); ok {
			if c.del {
				return nil, badger.ErrKeyNotFound
			}
			return memItem{k: c.e.key(), v: c.e.val()}, nil
		}
	}
	pr := probers.get()
	defer probers.put(pr)
	p, whole := pr.probe(string(key))
	if !whole {
		return nil, badger.ErrKeyNotFound // longer than any entry
	}
	tree := tx.mem
	if tx.memOwn != nil {
		tree, hint = tx.memOwn, nil // the hints are the committed tree's
	}
	e, ok := tree.GetHint(p, hint)
	if !ok {
		return nil, badger.ErrKeyNotFound
	}
	return memItem{k: e.key(), v: e.val(), pin: tx.memPin}, nil
}

// kvItem is what the store reads of a key: a badger item, or an entry of
// the in-memory families.
type kvItem interface {
	Key() []byte
	KeyCopy(dst []byte) []byte
	Value(fn func(val []byte) error) error
	ValueCopy(dst []byte) ([]byte, error)
	ValueSize() int64
}

// memItem is an entry's key and value and the pin of the tree it was
// read from (nil: the entry is an object of its own): an item outlives
// the call that found it.
type memItem struct {
	k, v string
	pin  *memPin
}

// The item's pin stays alive until its entry is read.
func (i memItem) Key() []byte {
	k := bytesOf(i.k)
	runtime.KeepAlive(i.pin)
	return k
}

func (i memItem) KeyCopy(dst []byte) []byte {
	k := append(dst[:0], i.k...)
	runtime.KeepAlive(i.pin)
	return k
}

func (i memItem) Value(fn func([]byte) error) error {
	v := bytesOf(i.v)
	runtime.KeepAlive(i.pin)
	return fn(v)
}

func (i memItem) ValueCopy(dst []byte) ([]byte, error) {
	v := append(dst[:0], i.v...)
	runtime.KeepAlive(i.pin)
	return v, nil
}

func (i memItem) ValueSize() int64 { return int64(len(i.v)) }

// kvIterator is what the store iterates: badger's iterator, or one over
// the in-memory families, with badger's semantics (Seek lands on the
// first key at or after the key given, at or before it in reverse; Rewind
// seeks the prefix; Valid is false past the prefix).
type kvIterator interface {
	Rewind()
	Seek(key []byte)
	Next()
	Valid() bool
	ValidForPrefix(prefix []byte) bool
	Item() kvItem
	Close()
}

// badgerIter adapts badger's iterator (its Item is a *badger.Item).
type badgerIter struct{ *badger.Iterator }

func (it badgerIter) Item() kvItem { return it.Iterator.Item() }

// treeEntry is an entry of either tree.
type treeEntry interface {
	memEntry | objEntry | digEntry
	key() string
	val() string
}

// memIter iterates a tree of the in-memory families.
type memIter[E treeEntry] struct {
	it      btree.IterG[E]
	pin     *memPin
	prefix  string
	reverse bool
	ok      bool
	// probeOf makes the entry Seek searches with (whole: it holds all of
	// key); prober is the iterator's, taken at its first Seek.
	probeOf func(pr **memProber, key string) (e E, whole bool)
	prober  *memProber
}

func newMemIter(tree *memTree, pin *memPin, opts badger.IteratorOptions) *memIter[memEntry] {
	return &memIter[memEntry]{it: tree.Iter(), pin: pin, prefix: string(opts.Prefix), reverse: opts.Reverse, probeOf: blockProbe}
}

func newObjIter(tree *objTree, opts badger.IteratorOptions) *memIter[objEntry] {
	return &memIter[objEntry]{it: tree.Iter(), prefix: string(opts.Prefix), reverse: opts.Reverse, probeOf: objProbeOf}
}

// blockProbe is a probe of the main tree, in the iterator's prober.
func blockProbe(pr **memProber, key string) (memEntry, bool) {
	if *pr == nil {
		*pr = probers.get()
	}
	return (*pr).probe(key)
}

func objProbeOf(_ **memProber, key string) (objEntry, bool) { return objProbe(key), true }

func (m *memIter[E]) Rewind() { m.Seek(nil) }

func (m *memIter[E]) Seek(key []byte) {
	if len(key) == 0 {
		key = bytesOf(m.prefix)
	}
	if len(key) == 0 {
		if m.reverse {
			m.ok = m.it.Last()
		} else {
			m.ok = m.it.First()
		}
		return
	}
	// A probe may hold only the beginning of a key longer than any
	// entry: no entry lies between the two, and the one equal to the
	// beginning lies before key.
	p, _ := m.probeOf(&m.prober, string(key))
	m.ok = m.it.Seek(p)
	if !m.reverse {
		for m.ok && m.it.Item().key() < string(key) {
			m.ok = m.it.Next()
		}
		return
	}
	// The last key at or before key.
	if !m.ok {
		m.ok = m.it.Last()
	} else if m.it.Item().key() > string(key) {
		m.ok = m.it.Prev()
	}
}

func (m *memIter[E]) Next() {
	if !m.ok {
		return
	}
	if m.reverse {
		m.ok = m.it.Prev()
	} else {
		m.ok = m.it.Next()
	}
}

func (m *memIter[E]) Valid() bool { return m.ok && strings.HasPrefix(m.it.Item().key(), m.prefix) }

func (m *memIter[E]) ValidForPrefix(prefix []byte) bool {
	return m.Valid() && strings.HasPrefix(m.it.Item().key(), string(prefix))
}

func (m *memIter[E]) Item() kvItem {
	e := m.it.Item()
	return memItem{k: e.key(), v: e.val(), pin: m.pin}
}

func (m *memIter[E]) Close() {
	m.it.Release()
	if m.prober != nil {
		probers.put(m.prober)
		m.prober = nil
	}
}

// memEntriesOf appends the in-memory families' entries of case c (stored
// as val) to out: what PutCase keeps for it.
func memEntriesOf(out []memEntry, slab *memSlab, c *pb.Case) ([]memEntry, error) {
	for _, k := range indexKeys(c) {
		e, err := slab.make(k, nil)
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
	for _, n := range nearbyEntries(c) {
		e, err := slab.make(n.key, n.val)
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
	return out, nil
}

// buildMemIndex builds the in-memory families from the stored cases (at
// Open and after Restore) and publishes them. Workers decode the cases;
// the entries are sorted once and loaded in order.
func (s *Store) buildMemIndex() error {
	var start time.Time
	if s.now != nil {
		start = s.now()
	}
	type rec struct {
		id  string
		val []byte
	}
	workers := max(1, runtime.GOMAXPROCS(0))
	batches := make(chan []rec, workers)
	outs := make([][]memEntry, workers)
	digs := make([][]digEntry, workers)
	slabs := make([]memSlab, workers)
	counts := make([]map[string]int64, workers) // the D/ counters, summed
	floor := s.flowFloor.Load()
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		counts[w] = map[string]int64{}
		go func() {
			defer wg.Done()
			slab := &slabs[w]
			for batch := range batches {
				for _, r := range batch {
					c := &pb.Case{}
					if err := proto.Unmarshal(r.val, c); err != nil {
						if errs[w] == nil {
							errs[w] = fmt.Errorf("%w: decode case %s: %v", ErrDamaged, r.id, err)
						}
						continue
					}
					var err error
					if outs[w], err = memEntriesOf(outs[w], slab, c); err != nil {
						if errs[w] == nil {
							errs[w] = fmt.Errorf("%w: case %s: %v", ErrDamaged, r.id, err)
						}
						continue
					}
					dg, ok := makeDigest(slab, digestKey(c.Id), digestOf(c, r.val).encode())
					if !ok {
						if errs[w] == nil {
							errs[w] = fmt.Errorf("%w: case %s: a digest longer than a block", ErrDamaged, r.id)
						}
						continue
					}
					digs[w] = append(digs[w], dg)
					d := dashOf(c, false, 0, floor)
					for _, k := range d.counters {
						counts[w][k]++
					}
					for _, k := range d.index {
						e, err := slab.make([]byte(k), nil)
						if err != nil {
							if errs[w] == nil {
								errs[w] = fmt.Errorf("%w: case %s: %v", ErrDamaged, r.id, err)
							}
							break
						}
						outs[w] = append(outs[w], e)
					}
				}
			}
		}()
	}
	const batchSize = 256
	batch := make([]rec, 0, batchSize)
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxCase), PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			val, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("%w: read %q: %v", ErrDamaged, item.Key(), err)
			}
			batch = append(batch, rec{id: string(item.Key()[len(pfxCase):]), val: val})
			if len(batch) == batchSize {
				batches <- batch
				batch = make([]rec, 0, batchSize)
			}
		}
		return nil
	})
	if len(batch) > 0 {
		batches <- batch
	}
	close(batches)
	wg.Wait()
	if err == nil {
		err = errors.Join(errs...)
	}
	if err != nil {
		return fmt.Errorf("build the case indexes: %w", err)
	}
	for _, m := range counts[1:] {
		for k, n := range m {
			counts[0][k] += n
		}
	}
	counters := make([]objEntry, 0, len(counts[0]))
	for k, n := range counts[0] {
		counters = append(counters, newObjEntry([]byte(k), binary.BigEndian.AppendUint64(nil, uint64(n))))
	}
	tree := loadSorted(newMemTree(), slices.Concat(outs...))
	dig := loadSorted(newDigTree(), slices.Concat(digs...))
	dash := loadSorted(newObjTree(), counters)
	s.mem.replace(tree, dig, dash, slabs)
	s.near.reset()
	var took time.Duration
	if s.now != nil {
		took = s.now().Sub(start)
	}
	s.mem.buildNanos.Store(int64(took))
	s.log.Info("case indexes built in memory", "entries", tree.Len()+dig.Len()+dash.Len(), "took", took.Round(time.Millisecond))
	return nil
}

// loadSorted loads es into tree (empty) in key order.
func loadSorted[E treeEntry](tree *btree.BTreeG[E], es []E) *btree.BTreeG[E] {
	slices.SortFunc(es, func(a, b E) int { return strings.Compare(a.key(), b.key()) })
	for _, e := range es {
		tree.Load(e)
	}
	return tree
}

// storedOnlyBefore are the prefixes of what releases before the in-memory
// families kept in badger: the families, and every other key of the
// nearby index and of the dashboard (their marks, N/m, D/n and D/m, and
// the street and community counters of the layout before 2026-12-04).
var storedOnlyBefore = append(slices.Clone(memFamilies), pfxNear, pfxDash)

// storedBefore reports whether key is one storedOnlyBefore names.
func storedBefore(key []byte) bool {
	for _, p := range storedOnlyBefore {
		if len(key) >= len(p) && string(key[:len(p)]) == p {
			return true
		}
	}
	return false
}

// dropStoredMemFamilies deletes what a release that kept these families in
// badger left there: this one neither reads nor moves them, so they would
// only go stale.
func (s *Store) dropStoredMemFamilies() error {
	var found bool
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for _, p := range storedOnlyBefore {
			it.Seek([]byte(p))
			if it.ValidForPrefix([]byte(p)) {
				found = true
				return nil
			}
		}
		return nil
	})
	if err != nil || !found {
		return err
	}
	prefixes := make([][]byte, len(storedOnlyBefore))
	for i, p := range storedOnlyBefore {
		prefixes[i] = []byte(p)
	}
	if err := s.db.DropPrefix(prefixes...); err != nil {
		return fmt.Errorf("drop the case indexes an older release stored: %w", err)
	}
	s.log.Info("dropped the case indexes an older release stored in badger: they are kept in memory now")
	return nil
}

// eachMem calls fn for every entry of the in-memory families of v and
// of the dashboard's counters dash, in key order.
func eachMem(v *memVersion, dash *objTree, fn func(key, val []byte) error) error {
	it := memAll(v, dash)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		if err := item.Value(func(val []byte) error { return fn(item.Key(), val) }); err != nil {
			return err
		}
	}
	return nil
}

// mergedIter iterates two iterators of disjoint keys as one, forward.
type mergedIter struct {
	a, b kvIterator
	cur  kvIterator
}

func memMerge(a, b kvIterator) *mergedIter { return &mergedIter{a: a, b: b} }

// memAll iterates every entry of v's trees and of the dashboard's
// counters dash, in key order.
func memAll(v *memVersion, dash *objTree) kvIterator {
	return memMerge(memMerge(newMemIter(v.tree, v.pin, badger.IteratorOptions{}), newDigIter(v.dig, v.pin, badger.IteratorOptions{})),
		newObjIter(dash, badger.IteratorOptions{}))
}

func (m *mergedIter) pick() {
	switch {
	case !m.a.Valid():
		m.cur = m.b
	case !m.b.Valid():
		m.cur = m.a
	case bytes.Compare(m.a.Item().Key(), m.b.Item().Key()) <= 0:
		m.cur = m.a
	default:
		m.cur = m.b
	}
}

func (m *mergedIter) Rewind()         { m.a.Rewind(); m.b.Rewind(); m.pick() }
func (m *mergedIter) Seek(key []byte) { m.a.Seek(key); m.b.Seek(key); m.pick() }
func (m *mergedIter) Next()           { m.cur.Next(); m.pick() }
func (m *mergedIter) Valid() bool     { return m.cur != nil && m.cur.Valid() }
func (m *mergedIter) ValidForPrefix(prefix []byte) bool {
	return m.Valid() && bytes.HasPrefix(m.Item().Key(), prefix)
}
func (m *mergedIter) Item() kvItem { return m.cur.Item() }
func (m *mergedIter) Close()       { m.a.Close(); m.b.Close() }
