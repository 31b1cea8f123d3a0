package store

import "github.com/dgraph-io/badger/v4"

// RawDelete deletes keys under the store's records, as a damaged file
// would lose them (tests of Verify).
func (s *Store) RawDelete(keys ...string) error {
	return s.db.Update(func(txn *badger.Txn) error {
		for _, k := range keys {
			if err := txn.Delete([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
}

// RawSet writes a key under the store's records.
func (s *Store) RawSet(key string, val []byte) error {
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(key), val) })
}
