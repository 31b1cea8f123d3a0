package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Records of the store about itself (family m/, beside m/applied).
const (
	// keyRequests counts the request records (r/): every applied command
	// with a request id adds one, none is ever rewritten or deleted. The
	// count moves with the records in the same transaction, so a store
	// that lost records (a table file dropped by a damaged MANIFEST, a
	// slice of recent writes) has fewer than it says: Verify compares.
	keyRequests = "m/requests" // uint64 BE
	// keyConfig is the last raft configuration entry applied: its index
	// (8 bytes BE) and raft's encoding of the configuration. A node whose
	// snapshots are gone takes a new one from the store with it.
	keyConfig = "m/config"
	// keyRestoring is set while Restore streams a snapshot in and deleted
	// when it is complete: a store that still has it is partial.
	keyRestoring = "m/restoring"
)

// bumpLedger adds the request records tx created to the count (absent
// means none: a new store). A store written before the count existed gets
// it from Verify, which the node runs before anything is applied.
func (tx *Tx) bumpLedger() error {
	if tx.newRequests == 0 {
		return nil
	}
	var n uint64
	item, err := tx.txn.Get([]byte(keyRequests))
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return tx.set([]byte(keyRequests), binary.BigEndian.AppendUint64(nil, uint64(tx.newRequests)))
	case err != nil:
		return fmt.Errorf("read request count: %w", err)
	}
	if err := item.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("%w: request count of %d bytes", ErrDamaged, len(v))
		}
		n = binary.BigEndian.Uint64(v)
		return nil
	}); err != nil {
		return err
	}
	return tx.set([]byte(keyRequests), binary.BigEndian.AppendUint64(nil, n+uint64(tx.newRequests)))
}

// SetConfiguration records the raft configuration entry at index (raft's
// encoding, as in the log), in the transaction of the entry.
func (tx *Tx) SetConfiguration(index uint64, encoded []byte) error {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(encoded)), index)
	return tx.set([]byte(keyConfig), append(v, encoded...))
}

// Configuration returns the last raft configuration entry applied (its
// index and raft's encoding); index 0 when none was recorded.
func (s *Store) Configuration() (index uint64, encoded []byte, err error) {
	err = s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyConfig))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		if len(v) < 8 {
			return fmt.Errorf("%w: %s of %d bytes", ErrDamaged, keyConfig, len(v))
		}
		index, encoded = binary.BigEndian.Uint64(v), v[8:]
		return nil
	})
	return index, encoded, err
}
