package store

import (
	"sync"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/dgraph-io/badger/v4"
)

// requestFilter answers "was this request id never applied?" without a
// read: every write carries a fresh request id, and looking a missing key
// up in badger searches every memtable and consults every table's bloom
// filter (it was 8–9 % of a replica's CPU under 64 clients: the leader's
// precheck and every replica's apply each look the id up). It holds every
// request id of the store: built from the r/ keys at Open and after a
// Restore, and added to by PutRequest (before the commit: an id of a
// transaction that does not commit only costs a read later). A "maybe" is
// looked up as before; a "no" is final, so the filter must never miss an
// id the store holds, and it cannot: PutRequest is the only writer of r/
// keys besides Restore.
type requestFilter struct {
	mu sync.RWMutex
	f  *bloom.BloomFilter
}

// minRequestFilter is the least capacity of a filter (ids): 1.2 MB at 1 %.
const minRequestFilter = 1 << 20

// mayHave reports whether id may be a stored request id.
func (rf *requestFilter) mayHave(id string) bool {
	if rf == nil {
		return true
	}
	rf.mu.RLock()
	defer rf.mu.RUnlock()
	return rf.f.TestString(id)
}

func (rf *requestFilter) add(id string) {
	if rf == nil {
		return
	}
	rf.mu.Lock()
	rf.f.AddString(id)
	rf.mu.Unlock()
}

// buildRequestFilter makes the filter of the request ids stored now, sized
// for twice as many (past that its false positives grow: each costs the
// read it would have cost anyway, until the next Open sizes it again).
func (s *Store) buildRequestFilter() error {
	var n uint
	each := func(fn func(id []byte)) error {
		return s.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxRequest)})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				fn(it.Item().Key()[len(pfxRequest):])
			}
			return nil
		})
	}
	if err := each(func([]byte) { n++ }); err != nil {
		return err
	}
	rf := &requestFilter{f: bloom.NewWithEstimates(max(2*n, minRequestFilter), 0.01)}
	if err := each(func(id []byte) { rf.f.Add(id) }); err != nil {
		return err
	}
	s.requests.Store(rf)
	return nil
}
