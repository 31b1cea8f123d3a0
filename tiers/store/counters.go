package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Evaluation counters (family e/, see keys.go and DESIGN.md). The layout of
// the key after the family prefix belongs to tiers/evaluation, which keeps
// the counters incrementally from the state machine; the store only adds,
// deletes at zero and scans.

// ErrNotCounterKey is returned for a counter key or scan prefix outside the
// e/ family.
var ErrNotCounterKey = errors.New("not an evaluation counter key (family " + pfxEval + ")")

// AddCounter adds delta to the int64 (big-endian) counter at key, which
// must lie in the e/ family. A counter that reaches zero is deleted, so the
// family holds only non-zero counters and a report scans no dead keys.
func (tx *Tx) AddCounter(key []byte, delta int64) error {
	if !isCounterKey(key) || len(key) == len(pfxEval) {
		return fmt.Errorf("add counter %q: %w", key, ErrNotCounterKey)
	}
	if delta == 0 {
		return nil
	}
	n, err := tx.counter(key)
	if err != nil {
		return err
	}
	return tx.setCounter(key, uint64(int64(n)+delta))
}

// Counter returns the value of one counter (0 when absent).
func (tx *Tx) Counter(key []byte) (int64, error) {
	if !isCounterKey(key) {
		return 0, fmt.Errorf("read counter %q: %w", key, ErrNotCounterKey)
	}
	n, err := tx.counter(key)
	return int64(n), err
}

// ScanCounters calls fn for every counter whose key starts with prefix (which
// must start with e/), in key order, in one consistent read view. key is
// only valid during the call. An error from fn stops the scan and is
// returned.
func (s *Store) ScanCounters(prefix []byte, fn func(key []byte, v int64) error) error {
	if !isCounterKey(prefix) {
		return fmt.Errorf("scan counters %q: %w", prefix, ErrNotCounterKey)
	}
	return s.View(func(tx *Tx) error {
		it := tx.iterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			var v int64
			if err := item.Value(func(b []byte) error {
				if len(b) != 8 {
					return fmt.Errorf("counter %q has %d bytes, want 8", item.Key(), len(b))
				}
				v = int64(binary.BigEndian.Uint64(b))
				return nil
			}); err != nil {
				return err
			}
			if err := fn(item.Key(), v); err != nil {
				return err
			}
		}
		return nil
	})
}

func isCounterKey(k []byte) bool { return bytes.HasPrefix(k, []byte(pfxEval)) }
