package store

import (
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
)

// Stats counts what the store reads and writes once EnableStats has been
// called: the complexity guards of the write path (a report or an action
// must cost the same with 100 or 1,000,000 cases stored) count reads, not
// time, so a loaded machine cannot make them flaky.
type Stats struct {
	// Gets counts point reads, found or not.
	Gets atomic.Int64
	// Scanned counts the keys iterators visited (index entries, nearby
	// entries, records), in badger or in memory (memindex.go).
	Scanned atomic.Int64
	// Decoded counts cases decoded from their stored form.
	Decoded atomic.Int64
	// Writes counts keys set or deleted in read-write transactions.
	Writes atomic.Int64
}

// StatsSnapshot is Stats at one moment.
type StatsSnapshot struct {
	Gets, Scanned, Decoded, Writes int64
}

// Snapshot reads the counters.
func (s *Stats) Snapshot() StatsSnapshot {
	return StatsSnapshot{Gets: s.Gets.Load(), Scanned: s.Scanned.Load(), Decoded: s.Decoded.Load(), Writes: s.Writes.Load()}
}

// Sub is the difference a - b.
func (a StatsSnapshot) Sub(b StatsSnapshot) StatsSnapshot {
	return StatsSnapshot{Gets: a.Gets - b.Gets, Scanned: a.Scanned - b.Scanned, Decoded: a.Decoded - b.Decoded, Writes: a.Writes - b.Writes}
}

// Reads is every read: point reads and keys visited.
func (a StatsSnapshot) Reads() int64 { return a.Gets + a.Scanned }

// EnableStats starts counting reads and writes of every transaction begun
// from now on and returns the counters (the same ones on every call).
// Counting costs an atomic add per read; a store counts nothing until
// asked.
func (s *Store) EnableStats() *Stats {
	s.stats.CompareAndSwap(nil, &Stats{})
	return s.stats.Load()
}

// tx is a transaction over txn and tree and dig, the in-memory families
// of the same moment (memindex.go); writable: tree is the committed
// tree, which the transaction changes through the store's overlay, and
// dig its own copy of the digests.
func (s *Store) tx(txn *badger.Txn, tree *memTree, dig *digTree, writable bool) *Tx {
	return &Tx{txn: txn, mem: tree, dig: dig, memWrite: writable, dashSrc: &s.mem.dash, feedOpts: s.feed, stats: s.stats.Load(), requests: s.requests.Load()}
}

func (tx *Tx) get(key []byte) (kvItem, error) {
	if tx.stats != nil {
		tx.stats.Gets.Add(1)
	}
	if isDashCounter(key) {
		return tx.dashGet(key)
	}
	if isMemKey(key) {
		if err := tx.memReady(); err != nil {
			return nil, err
		}
		return tx.memGet(key)
	}
	item, err := tx.txn.Get(key)
	if err != nil {
		return nil, err
	}
	return item, nil
}

func (tx *Tx) decoded() {
	if tx.stats != nil {
		tx.stats.Decoded.Add(1)
	}
}

// iterator opens an iterator that counts the keys it visits.
// An iterator whose prefix is one of the in-memory families walks them
// (memindex.go); opts.Prefix must then be set, and name one family (the
// dashboard's counters, D/c/ and D/f/, are a tree of their own:
// dashcounters.go).
func (tx *Tx) iterator(opts badger.IteratorOptions) *iter {
	if isDashCounter(opts.Prefix) {
		return &iter{kvIterator: newObjIter(tx.dashTree(), opts), stats: tx.stats}
	}
	if isMemKey(opts.Prefix) && tx.memReady() != nil {
		// Nothing to walk; ViewRecords returns the error.
		return &iter{kvIterator: newMemIter(newMemTree(), nil, opts), stats: tx.stats}
	}
	if isDigestKey(opts.Prefix) {
		return &iter{kvIterator: newDigIter(tx.dig, tx.memPin, opts), stats: tx.stats}
	}
	if isMemKey(opts.Prefix) {
		return &iter{kvIterator: newMemIter(tx.memIterTree(), tx.memPin, opts), stats: tx.stats}
	}
	return &iter{kvIterator: badgerIter{tx.txn.NewIterator(opts)}, stats: tx.stats}
}

// iter is an iterator that counts the keys it lands on.
type iter struct {
	kvIterator
	stats *Stats
}

func (it *iter) Rewind()         { it.kvIterator.Rewind(); it.count() }
func (it *iter) Seek(key []byte) { it.kvIterator.Seek(key); it.count() }
func (it *iter) Next()           { it.kvIterator.Next(); it.count() }

func (it *iter) count() {
	if it.stats != nil && it.kvIterator.Valid() {
		it.stats.Scanned.Add(1)
	}
}
