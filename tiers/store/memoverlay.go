package store

import (
	"slices"

	"github.com/tidwall/btree"
)

// memOverlay is a write transaction's changes of the committed tree
// (memindex.go), by key: an entry set, or a key deleted. Its reads look
// here first; its iterators walk a copy of the tree with the changes on it
// (Tx.memIterTree). Once the badger transaction has committed, apply
// makes the changes in the tree itself. One overlay serves every write
// transaction of a store in turn (under memIndex.writer).
type memOverlay struct {
	// m maps a key to its change. An entry's key is its bytes in its
	// block (memEntry.key), which stays bound while the writer holds it;
	// a deleted key is a string of its own.
	m    map[string]overEntry
	keys []string // apply's, kept for the next commit
}

// overEntry is a key's change: del, or the entry e set.
type overEntry struct {
	e   memEntry
	del bool
}

func (o *memOverlay) set(e memEntry) {
	if o.m == nil {
		o.m = make(map[string]overEntry)
	}
	o.m[e.key()] = overEntry{e: e}
}

func (o *memOverlay) del(key []byte) {
	if o.m == nil {
		o.m = make(map[string]overEntry)
	}
	o.m[string(key)] = overEntry{del: true}
}

// get is key's change (ok: it has one).
func (o *memOverlay) get(key []byte) (overEntry, bool) {
	c, ok := o.m[string(key)]
	return c, ok
}

func (o *memOverlay) len() int { return len(o.m) }

func (o *memOverlay) reset() {
	if len(o.m) > 0 {
		clear(o.m)
	}
}

// onto makes the changes in t, a write transaction's own copy of the
// tree (its blocks are counted when the changes reach the committed tree).
func (o *memOverlay) onto(t *memTree) {
	for k, c := range o.m {
		if c.del {
			deleteKey(t, k, nil)
			continue
		}
		t.Set(c.e)
	}
}

// apply makes the changes in t, the committed tree, in key order (each
// search starts from the hint of its family or grid, hints), appends the
// changes of the blocks' live entries to deltas and empties the overlay.
// Under the store's writer and memIndex.mu.
func (o *memOverlay) apply(t *memTree, hints *memHints, deltas []blockDelta) []blockDelta {
	if len(o.m) == 0 {
		return deltas
	}
	o.keys = o.keys[:0]
	for k := range o.m {
		o.keys = append(o.keys, k)
	}
	slices.Sort(o.keys)
	for _, k := range o.keys {
		c := o.m[k]
		hint := hints.of(bytesOf(k))
		if c.del {
			if old, had := deleteKey(t, k, hint); had {
				deltas = append(deltas, blockDelta{n: old.block(), d: -1})
			}
			continue
		}
		deltas = append(deltas, blockDelta{n: c.e.block(), d: 1})
		if old, had := t.SetHint(c.e, hint); had {
			deltas = append(deltas, blockDelta{n: old.block(), d: -1})
		}
	}
	clear(o.keys) // no key's bytes held past the commit
	o.reset()
	return deltas
}

// deleteKey deletes key from t and returns the entry it held.
func deleteKey(t *memTree, key string, hint *btree.PathHint) (memEntry, bool) {
	pr := probers.get()
	defer probers.put(pr) // after the delete: the probe's bytes are the prober's
	p, whole := pr.probe(key)
	if !whole {
		return memEntry{}, false // longer than any entry
	}
	return t.DeleteHint(p, hint)
}

// memIterTree is the tree an iterator of the transaction walks: a
// reader's copy; in a write transaction, the committed tree while it has
// changed none of it, else its own copy with its changes on it, which
// its later changes and reads go to as well (the write path's iterators
// over these families are rare: the overdue sweep, the dashboard's
// lists).
func (tx *Tx) memIterTree() *memTree {
	if !tx.memWrite || tx.memOwn != nil {
		if tx.memOwn != nil {
			return tx.memOwn
		}
		return tx.mem
	}
	if tx.memOver.len() == 0 {
		return tx.mem
	}
	// A copy marks the committed tree shared: readers copy it under mu.
	tx.memIdx.mu.Lock()
	own := tx.mem.Copy()
	tx.memIdx.mu.Unlock()
	tx.memOver.onto(own)
	tx.memOwn = own
	return own
}
