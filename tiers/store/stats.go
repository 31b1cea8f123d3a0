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
	// Scanned counts the keys iterators visited (index entries, records),
	// and the nearby entries read from memory (nearmem.go).
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

func (s *Store) tx(txn *badger.Txn) *Tx {
	return &Tx{txn: txn, feedOpts: s.feed, stats: s.stats.Load(), requests: s.requests.Load()}
}

func (tx *Tx) get(key []byte) (*badger.Item, error) {
	if tx.stats != nil {
		tx.stats.Gets.Add(1)
	}
	return tx.txn.Get(key)
}

func (tx *Tx) decoded() {
	if tx.stats != nil {
		tx.stats.Decoded.Add(1)
	}
}

// iterator opens an iterator that counts the keys it visits.
func (tx *Tx) iterator(opts badger.IteratorOptions) *iter {
	return &iter{Iterator: tx.txn.NewIterator(opts), stats: tx.stats}
}

// iter is a badger iterator that counts the keys it lands on.
type iter struct {
	*badger.Iterator
	stats *Stats
}

func (it *iter) Rewind()         { it.Iterator.Rewind(); it.count() }
func (it *iter) Seek(key []byte) { it.Iterator.Seek(key); it.count() }
func (it *iter) Next()           { it.Iterator.Next(); it.count() }

func (it *iter) count() {
	if it.stats != nil && it.Iterator.Valid() {
		it.stats.Scanned.Add(1)
	}
}
