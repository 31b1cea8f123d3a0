package store

import (
	"bytes"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// DueCase is one entry of the deadline index.
type DueCase struct {
	ID         string
	DeadlineMs int64
}

// Due lists up to max cases whose (stage) deadline is before `before` and
// that are not yet marked overdue, earliest first. It reads only the index.
func (s *Store) Due(before time.Time, max int) ([]DueCase, error) {
	return s.DueAfter(before, nil, max)
}

// DueAfter is Due starting strictly after entry `after` (nil: from the
// start), so a caller can page past entries it leaves in the index.
func (s *Store) DueAfter(before time.Time, after *DueCase, max int) ([]DueCase, error) {
	var out []DueCase
	limit := before.UnixMilli()
	err := s.View(func(tx *Tx) error {
		pfx := []byte(pfxByDue)
		it := tx.iterator(badger.IteratorOptions{Prefix: pfx})
		defer it.Close()
		start := pfx
		if after != nil {
			start = append(dueKey(after.DeadlineMs, after.ID), 0)
		}
		for it.Seek(start); it.Valid() && len(out) < max; it.Next() {
			key := it.Item().Key()
			if !bytes.HasPrefix(key, pfx) {
				break
			}
			ms := dueOf(key)
			if ms >= limit {
				break
			}
			out = append(out, DueCase{ID: idFromIndexKey(pfx, key), DeadlineMs: ms})
		}
		return nil
	})
	return out, err
}

// CountOverdue counts the open cases marked overdue (the 督办 list),
// reading keys only.
func (s *Store) CountOverdue() (int, error) { return s.countKeys(pfxOverdue) }

// CountInReview counts the open cases in the joint review queue
// (疑难案件会诊), reading keys only.
func (s *Store) CountInReview() (int, error) { return s.countKeys(pfxReview) }

func (s *Store) countKeys(prefix string) (int, error) {
	n := 0
	err := s.View(func(tx *Tx) error {
		it := tx.iterator(badger.IteratorOptions{Prefix: []byte(prefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	return n, err
}
