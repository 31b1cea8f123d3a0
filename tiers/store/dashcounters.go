package store

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/dgraph-io/badger/v4"
	"github.com/tidwall/btree"
)

// The dashboard's counters (D/c/, D/f/) are a tree of their own, changed
// in place. In the tree of the other in-memory families a counter was
// read and written again by every transaction that moved it: a search
// down a tree of millions of entries for the read, a copy of every node
// on its path (copy-on-write: each transaction works on a copy of the
// published tree), and a new object for the value. Two counters a report
// were 59 of its 146 key comparisons and a sixth of a replica's apply
// (BENCHMARKS.md, "The dashboard's counters in place").
//
// A write transaction only adds up its changes (putDash, in Tx.dash).
// Once its badger transaction has committed, the writer applies them, in
// key order, to the committed counters themselves, and publishes the
// other families' tree, both under mu. A reader takes a copy under mu,
// O(1): a copy shares every node, and the next commit copies the nodes it
// changes instead of changing them, so what a reader holds never moves.
// A commit with no reader since the last one copies nothing. A failed
// transaction changed nothing.
//
// A counter made since the last reader's copy is in no copy: the commits
// change its value in place, found by its key in fresh, without a search
// of the tree or a new object (a follower has no readers, so after its
// first change every counter it moves is fresh; BENCHMARKS.md, "Update,
// 2026-12-07 16:06 UTC"). A copy empties fresh: from
// then on a change makes a new object, as before, and that one is fresh.
type dashCounters struct {
	// mu orders the commits' changes (and the publication of the tree
	// that goes with them) and the readers' copies. Held for the changes
	// of one commit at most: never across a badger commit.
	mu sync.Mutex
	// tree holds the committed counters: objects of their own
	// (newObjEntry), whose values are the counters' (8 bytes, big
	// endian). Changed under mu only; read through a copy only (view,
	// copyLocked), never in place: the counters in fresh are written in
	// their own bytes, and only a copy taken under mu keeps a reader
	// from seeing that.
	tree *objTree
	hint btree.PathHint // the last change's path (under mu)
	// fresh holds the tree's counters made since the last copy, by key
	// (the key's bytes are the entry's own). Under mu.
	fresh map[string]objEntry
}

// dashDelta is one counter's change in a commit.
type dashDelta struct {
	key string
	d   int64
}

// isDashCounter reports whether key is one of the counters' (D/c/, D/f/).
func isDashCounter(key []byte) bool {
	return len(key) >= 4 && key[0] == 'D' && key[1] == '/' && (key[2] == 'c' || key[2] == 'f') && key[3] == '/'
}

// view is a copy of the committed counters that no commit changes.
func (d *dashCounters) view() *objTree {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.copyLocked()
}

// copyLocked is view under mu.
func (d *dashCounters) copyLocked() *objTree {
	if d.tree == nil { // before the first build (Open)
		d.tree = newObjTree()
	}
	// The copy holds them all: none is changed in place again. A new map
	// rather than clear: clear costs the map's size at its largest.
	d.fresh = nil
	return d.tree.Copy()
}

// replace makes tree the committed counters (Open, Restore, Close).
func (d *dashCounters) replace(tree *objTree) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tree, d.hint, d.fresh = tree, btree.PathHint{}, nil
}

// len is the number of counters.
func (d *dashCounters) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.tree == nil {
		return 0
	}
	return d.tree.Len()
}

// applyLocked adds a commit's deltas to the counters. Under mu and the
// store's writer.
func (d *dashCounters) applyLocked(deltas []dashDelta) {
	if d.tree == nil {
		d.tree = newObjTree()
	}
	if d.fresh == nil {
		d.fresh = map[string]objEntry{}
	}
	addCounters(d.tree, deltas, &d.hint, d.fresh)
}

// addCounters adds deltas, sorted by key, to the counters of t: a
// counter that comes to zero is deleted, one that was not there is made.
// With fresh (the counters of t that no copy of it holds, by key), a
// counter in fresh is changed in place, and the counters made go into
// it; nil: every change makes a new object.
func addCounters(t *objTree, deltas []dashDelta, hint *btree.PathHint, fresh map[string]objEntry) {
	for _, c := range deltas {
		if e, ok := fresh[c.key]; ok {
			v := counterBytes(e)
			n := int64(binary.BigEndian.Uint64(v)) + c.d
			if n != 0 {
				binary.BigEndian.PutUint64(v, uint64(n))
				continue
			}
			delete(fresh, c.key)
			t.DeleteHint(objProbe(c.key), hint)
			continue
		}
		probe := objProbe(c.key)
		old, ok := t.GetHint(probe, hint)
		var n int64
		if ok {
			n = int64(binary.BigEndian.Uint64(bytesOf(old.val())))
		}
		if n += c.d; n == 0 {
			if ok {
				t.DeleteHint(probe, hint)
			}
			continue
		}
		e := newObjEntry(bytesOf(c.key), binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(n)))
		t.SetHint(e, hint)
		if fresh != nil {
			fresh[e.key()] = e
		}
	}
}

// counterBytes is the value of a counter's entry as bytes to change in
// place: only for an entry in no copy (dashCounters.fresh).
func counterBytes(e objEntry) []byte {
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(e.p), e.a)), e.b)
}

// dashDeltas are the transaction's counter changes, sorted by key, the
// ones that add up to nothing left out: the same changes in the same
// order on every replica.
func (tx *Tx) dashDeltas() []dashDelta {
	if len(tx.dash) == 0 {
		return nil
	}
	out := make([]dashDelta, 0, len(tx.dash))
	for k, d := range tx.dash {
		if d != 0 {
			out = append(out, dashDelta{k, d})
		}
	}
	slices.SortFunc(out, func(a, b dashDelta) int { return strings.Compare(a.key, b.key) })
	return out
}

// dashTree is the counters a transaction reads: a reader's copy, taken
// at its first read of them (Dashboard takes it with its tree: viewDash);
// in a write transaction, the committed counters with its own changes,
// built for the read (only the flow's trim reads them there, once an
// hour).
func (tx *Tx) dashTree() *objTree {
	if tx.dashView == nil {
		tx.dashView = tx.dashSrc.view()
	}
	if !tx.memWrite || len(tx.dash) == 0 {
		return tx.dashView
	}
	t := tx.dashView.Copy()
	var hint btree.PathHint
	addCounters(t, tx.dashDeltas(), &hint, nil)
	return t
}

// dashGet reads a counter (tx.get).
func (tx *Tx) dashGet(key []byte) (kvItem, error) {
	n, ok, err := tx.dashValue(key)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, badger.ErrKeyNotFound
	}
	return memItem{k: string(key), v: string(binary.BigEndian.AppendUint64(nil, uint64(n)))}, nil
}

// dashValue is a counter's value as the transaction sees it (ok: it is
// there): the committed one, plus its own changes in a write transaction.
func (tx *Tx) dashValue(key []byte) (n int64, ok bool, err error) {
	if tx.dashView == nil {
		tx.dashView = tx.dashSrc.view()
	}
	if e, found := tx.dashView.Get(objProbe(string(key))); found {
		if n, err = counterValue(memItem{k: e.key(), v: e.val()}); err != nil {
			return 0, false, err
		}
	}
	if tx.memWrite {
		n += tx.dash[string(key)]
	}
	return n, n != 0, nil
}

// dashSet gives a counter a value (tx.set, tx.del: nil), as a change
// applied when the transaction commits.
func (tx *Tx) dashSet(key, val []byte) error {
	if !tx.memWrite {
		return badger.ErrReadOnlyTxn
	}
	cur, _, err := tx.dashValue(key)
	if err != nil {
		return err
	}
	var n int64
	if val != nil {
		if len(val) != 8 {
			return fmt.Errorf("counter %q: a value of %d bytes: %w", key, len(val), badger.ErrInvalidRequest)
		}
		n = int64(binary.BigEndian.Uint64(val))
	}
	if tx.dash == nil {
		tx.dash = map[string]int64{}
	}
	tx.dash[string(key)] += n - cur
	return nil
}
