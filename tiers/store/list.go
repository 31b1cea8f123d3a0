package store

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Query selects cases. Zero fields do not filter.
type Query struct {
	State      pb.State
	OwnerUnit  string
	GridPrefix string
	DueBefore  time.Time // open cases, not suspended nor marked overdue, with a (stage) deadline before this
	Overdue    bool      // open cases marked overdue (督办)
	InReview   bool      // open cases in the joint review queue (疑难案件会诊)
	LegacyID   string    // the case imported with this legacy id
	HandedUp   bool      // filed cases whose last step was a transfer up
	PageSize   int
	PageToken  string
	// WithHistory keeps each case's history; lists drop it by default.
	WithHistory bool
}

// MaxScan bounds the index entries one page may visit, so a selective
// filter that the driving index cannot answer returns a short page and a
// token instead of scanning everything.
const MaxScan = 10_000

// ErrBadPageToken is returned for a page token this store did not issue.
var ErrBadPageToken = fmt.Errorf("bad page token")

// List returns one page of cases matching q, in index order, and the token
// for the next page ("" when there is none). One index drives the scan,
// chosen by selectivity: state, owner unit, grid prefix, deadline, then ids.
func (s *Store) List(q Query) ([]*pb.Case, string, error) {
	if q.PageSize <= 0 {
		q.PageSize = 50
	}
	if q.LegacyID != "" {
		return s.listByLegacyID(q)
	}
	prefix, start := drivingRange(q)
	if q.PageToken != "" {
		tok, err := base64.RawURLEncoding.DecodeString(q.PageToken)
		if err != nil || !bytes.HasPrefix(tok, prefix) {
			return nil, "", fmt.Errorf("%w: it does not belong to this query", ErrBadPageToken)
		}
		start = append(tok, 0) // strictly after the last key returned
	}
	var (
		out  []*pb.Case
		next string
	)
	err := s.View(func(tx *Tx) error {
		byCase := bytes.Equal(prefix, []byte(pfxCase))
		it := tx.iterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: byCase, PrefetchSize: 64})
		defer it.Close()
		scanned := 0
		for it.Seek(start); it.Valid(); it.Next() {
			key := it.Item().KeyCopy(nil)
			if !q.DueBefore.IsZero() && bytes.Equal(prefix, []byte(pfxByDue)) {
				if !time.UnixMilli(dueOf(key)).Before(q.DueBefore) {
					break // the due index is sorted by deadline
				}
			}
			scanned++
			var c *pb.Case
			if byCase {
				c = &pb.Case{}
				tx.decoded()
				if err := it.Item().Value(func(v []byte) error { return proto.Unmarshal(v, c) }); err != nil {
					return fmt.Errorf("decode %q: %w", key, err)
				}
			} else {
				var err error
				if c, err = tx.GetCase(idFromIndexKey(prefix, key)); err != nil {
					return fmt.Errorf("index %q: %w", key, err)
				}
			}
			if matches(c, q) {
				if !q.WithHistory {
					c.History = nil
				}
				out = append(out, c)
			}
			if len(out) == q.PageSize || scanned >= MaxScan {
				// Only hand out a token when something may follow.
				it.Next()
				if it.Valid() {
					next = base64.RawURLEncoding.EncodeToString(key)
				}
				return nil
			}
		}
		return nil
	})
	return out, next, err
}

func drivingRange(q Query) (prefix, start []byte) {
	switch {
	case q.HandedUp:
		return []byte(pfxHandedUp), []byte(pfxHandedUp)
	case q.InReview:
		return []byte(pfxReview), []byte(pfxReview)
	case q.Overdue:
		return []byte(pfxOverdue), []byte(pfxOverdue)
	case q.State != pb.State_STATE_UNSPECIFIED:
		p := statePrefix(q.State)
		return p, p
	case q.OwnerUnit != "":
		p := unitPrefix(q.OwnerUnit)
		return p, p
	case q.GridPrefix != "":
		p := []byte(pfxByGrid + q.GridPrefix)
		return p, p
	case !q.DueBefore.IsZero():
		return []byte(pfxByDue), []byte(pfxByDue)
	}
	return []byte(pfxCase), []byte(pfxCase)
}

func dueOf(key []byte) int64 {
	if len(key) < len(pfxByDue)+8 {
		return 0
	}
	var ms uint64
	for _, b := range key[len(pfxByDue) : len(pfxByDue)+8] {
		ms = ms<<8 | uint64(b)
	}
	return int64(ms)
}

func matches(c *pb.Case, q Query) bool {
	if q.State != pb.State_STATE_UNSPECIFIED && c.State != q.State {
		return false
	}
	if q.OwnerUnit != "" && c.OwnerUnit != q.OwnerUnit {
		return false
	}
	if q.GridPrefix != "" && !strings.HasPrefix(c.GridCode, q.GridPrefix) {
		return false
	}
	if !q.DueBefore.IsZero() {
		d := dueTime(c)
		if d == nil || !isOpen(c.State) || c.State == pb.State_STATE_SUSPENDED || c.Overdue || !d.AsTime().Before(q.DueBefore) {
			return false
		}
	}
	if q.Overdue && (!c.Overdue || !isOpen(c.State)) {
		return false
	}
	if q.HandedUp && c.State != pb.State_STATE_FILED {
		return false
	}
	if q.InReview && (!c.GetOwnership().GetInReview() || !isOpen(c.State)) {
		return false
	}
	if q.LegacyID != "" && c.LegacyId != q.LegacyID {
		return false
	}
	return true
}

// listByLegacyID answers a query naming a legacy id: the cases imported
// with it, by any node (two old systems may have used the same id). It
// walks the legacy index, one key per imported case.
func (s *Store) listByLegacyID(q Query) ([]*pb.Case, string, error) {
	if q.PageToken != "" {
		return nil, "", fmt.Errorf("%w: a legacy id names a handful of cases at most, in one page", ErrBadPageToken)
	}
	var out []*pb.Case
	err := s.View(func(tx *Tx) error {
		it := tx.iterator(badger.IteratorOptions{Prefix: []byte(pfxLegacy)})
		defer it.Close()
		suffix := []byte(unitSep + q.LegacyID)
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if !bytes.HasSuffix(k, suffix) || bytes.IndexByte(k[len(pfxLegacy):len(k)-len(suffix)], 0) >= 0 {
				continue
			}
			id, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			c, err := tx.GetCase(string(id))
			if err != nil {
				return err
			}
			if matches(c, q) {
				if !q.WithHistory {
					c.History = nil
				}
				out = append(out, c)
			}
		}
		return nil
	})
	return out, "", err
}
