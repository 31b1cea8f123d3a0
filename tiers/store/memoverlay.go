package store

import "github.com/tidwall/btree"

// memOverlay is a write transaction's changes of the committed tree
// (memindex.go), in the order it made them: an entry set, or a key
// deleted. Its reads look here first; its iterators walk a copy of the
// tree with the changes on it (Tx.memIterTree). Once the badger
// transaction has committed, apply makes the changes in the tree itself,
// in the same order, so the last change of a key is the one that stays.
// One overlay serves every write transaction of a store in turn (under
// memIndex.writer).
//
// A list, not a map: a report's apply reads none of its own index
// entries back, so the changes are only appended, then applied (a map by
// key, and the changes sorted by key for the commit, cost what copying no
// node saved: BENCHMARKS.md). The first read of one builds the map by key
// (last), kept from then on.
type memOverlay struct {
	changes []overChange
	last    map[string]int // key → its last change, once a read asked
}

// overChange is one change: the entry e set, or key deleted (del).
type overChange struct {
	e   memEntry
	key string // a deleted key (a string of its own)
	del bool
}

func (c *overChange) keyOf() string {
	if c.del {
		return c.key
	}
	return c.e.key()
}

func (o *memOverlay) add(c overChange) {
	o.changes = append(o.changes, c)
	if o.last != nil {
		o.last[c.keyOf()] = len(o.changes) - 1
	}
}

func (o *memOverlay) set(e memEntry) { o.add(overChange{e: e}) }

func (o *memOverlay) del(key []byte) { o.add(overChange{key: string(key), del: true}) }

// get is key's last change (ok: it has one).
func (o *memOverlay) get(key []byte) (overChange, bool) {
	if len(o.changes) == 0 {
		return overChange{}, false
	}
	if o.last == nil {
		o.last = make(map[string]int, len(o.changes))
		for i := range o.changes {
			o.last[o.changes[i].keyOf()] = i
		}
	}
	i, ok := o.last[string(key)]
	if !ok {
		return overChange{}, false
	}
	return o.changes[i], true
}

func (o *memOverlay) len() int { return len(o.changes) }

// reset drops the changes (no key's bytes held past the transaction).
func (o *memOverlay) reset() {
	if len(o.changes) > 0 {
		clear(o.changes)
		o.changes = o.changes[:0]
	}
	o.last = nil
}

// onto makes the changes in t, a write transaction's own copy of the
// tree (its blocks are counted when the changes reach the committed tree).
func (o *memOverlay) onto(t *memTree) {
	for i := range o.changes {
		c := &o.changes[i]
		if c.del {
			deleteKey(t, c.key, nil)
			continue
		}
		t.Set(c.e)
	}
}

// apply makes the changes in t, the committed tree, in their order (each
// search starts from the hint of its family or grid, hints), appends the
// changes of the blocks' live entries to deltas and empties the overlay.
// Under the store's writer and memIndex.mu.
func (o *memOverlay) apply(t *memTree, hints *memHints, deltas []blockDelta) []blockDelta {
	for i := range o.changes {
		c := &o.changes[i]
		if c.del {
			if old, had := deleteKey(t, c.key, hints.of(bytesOf(c.key))); had {
				deltas = append(deltas, blockDelta{n: old.block(), d: -1})
			}
			continue
		}
		deltas = append(deltas, blockDelta{n: c.e.block(), d: 1})
		if old, had := t.SetHint(c.e, hints.of(bytesOf(c.e.key()))); had {
			deltas = append(deltas, blockDelta{n: old.block(), d: -1})
		}
	}
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
	if tx.memOwn != nil {
		return tx.memOwn
	}
	if !tx.memWrite || tx.memOver.len() == 0 {
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
