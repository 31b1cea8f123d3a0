package store

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// RawDelete deletes keys under the store's records, as a damaged file
// would lose them (tests of Verify).
// A key of the in-memory families (memindex.go) is deleted from the
// published tree, as a fault in keeping them would lose it.
func (s *Store) RawDelete(keys ...string) error {
	s.near.reset()
	s.mem.writer.Lock()
	defer s.mem.writer.Unlock()
	v := s.mem.load()
	tree, dig := v.tree.Copy(), v.dig.Copy()
	var deltas []blockDelta
	if err := s.db.Update(func(txn *badger.Txn) error {
		for _, k := range keys {
			switch {
			case isDashCounter([]byte(k)):
				s.mem.dash.mu.Lock()
				s.mem.dash.tree.Delete(objProbe(k))
				s.mem.dash.mu.Unlock()
			case isDigestKey([]byte(k)):
				pr := probers.get()
				e, _ := pr.probe(k)
				if old, had := dig.Delete(digEntry{e: e}); had {
					deltas = append(deltas, blockDelta{n: old.e.block(), d: -1})
				}
				probers.put(pr)
			case isMemKey([]byte(k)):
				pr := probers.get()
				e, _ := pr.probe(k)
				if old, had := tree.Delete(e); had {
					deltas = append(deltas, blockDelta{n: old.block(), d: -1})
				}
				probers.put(pr)
			default:
				if err := txn.Delete([]byte(k)); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		return err
	}
	s.mem.publish(tree, dig, s.mem.slab.settle(deltas, true))
	return nil
}

// RawSet writes a key under the store's records.
func (s *Store) RawSet(key string, val []byte) error {
	s.near.reset()
	if isDashCounter([]byte(key)) {
		s.mem.dash.mu.Lock()
		defer s.mem.dash.mu.Unlock()
		s.mem.dash.tree.Set(newObjEntry([]byte(key), val))
		return nil
	}
	if isMemKey([]byte(key)) {
		s.mem.writer.Lock()
		defer s.mem.writer.Unlock()
		v := s.mem.load()
		tree, dig := v.tree.Copy(), v.dig.Copy()
		var deltas []blockDelta
		if isDigestKey([]byte(key)) {
			d, ok := makeDigest(&s.mem.slab, []byte(key), val)
			if !ok {
				return fmt.Errorf("raw set %q: no digest", key)
			}
			deltas = append(deltas, blockDelta{n: d.e.block(), d: 1})
			if old, had := dig.Set(d); had {
				deltas = append(deltas, blockDelta{n: old.e.block(), d: -1})
			}
		} else {
			e, err := s.mem.slab.make([]byte(key), val)
			if err != nil {
				return err
			}
			deltas = append(deltas, blockDelta{n: e.block(), d: 1})
			if old, had := tree.Set(e); had {
				deltas = append(deltas, blockDelta{n: old.block(), d: -1})
			}
		}
		s.mem.publish(tree, dig, s.mem.slab.settle(deltas, true))
		return nil
	}
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(key), val) })
}

// NearbyKeys are the keys of c's nearby index entries.
func NearbyKeys(c *pb.Case) []string {
	var out []string
	for _, e := range nearbyEntries(c) {
		out = append(out, string(e.key))
	}
	return out
}

// RawSetStored writes a key into badger whatever its family: what a
// release that kept the in-memory families in badger left there.
func (s *Store) RawSetStored(key string, val []byte) error {
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(key), val) })
}

// StoredKeys counts badger's keys under prefix.
func (s *Store) StoredKeys(prefix string) int {
	n := 0
	_ = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	return n
}

// CountMemCompares makes the trees of stores opened from now on count
// their key comparisons into n, until restore (benchmarks: the comparisons
// are the in-memory tree's cache misses).
func CountMemCompares(n *atomic.Int64) (restore func()) {
	memOrder = func(a, b memEntry) bool { n.Add(1); return memLess(a, b) }
	objOrder = func(a, b objEntry) bool { n.Add(1); return objLess(a, b) }
	digOrder = func(a, b digEntry) bool { n.Add(1); return digLess(a, b) }
	return func() { memOrder, objOrder, digOrder = memLess, objLess, digLess }
}

// FeedRecords are the first revisions of the change feed's stored records
// (one a page).
func (s *Store) FeedRecords() ([]uint64, error) {
	recs, err := s.RawRecords(pfxFeedEntry)
	out := make([]uint64, 0, len(recs))
	for _, r := range recs {
		out = append(out, binary.BigEndian.Uint64([]byte(r[0][len(pfxFeedEntry):])))
	}
	return out, err
}

// FeedKey is the key of the feed record that begins at rev.
func FeedKey(rev uint64) string { return string(feedKey(rev)) }

// AuditKey is the key of the audit record that begins with event n of log
// entry index, stamped atMs.
func AuditKey(atMs int64, index uint64, n int) string { return string(auditKey(atMs, index, n)) }

// AuditRecords counts the audit trail's stored records (one a page).
func (s *Store) AuditRecords() (int, error) {
	recs, err := s.RawRecords(pfxAudit)
	return len(recs), err
}

// RawRecords are the stored keys and values under prefix, in key order.
func (s *Store) RawRecords(prefix string) ([][2]string, error) {
	var out [][2]string
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out = append(out, [2]string{string(it.Item().Key()), string(v)})
		}
		return nil
	})
	return out, err
}

// SetTrimBudget sets how many flow entries one transaction deletes, until
// restore.
func SetTrimBudget(n int) (restore func()) {
	old := trimBudget
	trimBudget = n
	return func() { trimBudget = old }
}
