package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// The nearby index (family N/) answers "which cases of this class in this
// grid were reported, or closed, in this window" by reading the few keys
// in the window: a duplicate or recurrence look-up (tiers/nearby) costs the
// same with ten cases in a grid or a backlog of a million. Each entry's
// value holds the time and the coordinates, so the distance check needs
// no case decoded.
//
//	N/o/<class>/<reported at>/<id>  open cases with a report time
//	N/c/<class>/<closed at>/<id>    closed cases with a closing time
//	N/m                             applied index the index was kept up to
//
// <class> is the grid code, major and minor codes, each with a uvarint
// length before it, then the kind (4 bytes BE): no separator can be forged
// by a field. A time is its Unix millisecond count, 8 bytes BE with the
// sign bit flipped (so times before 1970 sort first). The value is the
// exact time (seconds 8 bytes BE, nanoseconds 4 bytes BE) and, for a case
// with coordinates, lat and lng (IEEE-754, 8 bytes BE each).
const (
	pfxNearOpen   = "N/o/"
	pfxNearClosed = "N/c/"
	keyNearMark   = "N/m"
	pfxNear       = "N/"
)

// NearbyClass names what a look-up compares: cases of the same class in
// the same grid.
type NearbyClass struct {
	Grid         string
	Kind         pb.Kind
	Major, Minor string
}

// NearbyClassOf is c's class and grid.
func NearbyClassOf(c *pb.Case) NearbyClass {
	return NearbyClass{Grid: c.GetGridCode(), Kind: c.GetKind(), Major: c.GetMajorCode(), Minor: c.GetMinorCode()}
}

// NearbyEntry is one case a look-up found.
type NearbyEntry struct {
	ID string
	// At is when it was reported (open cases) or closed (closed cases).
	At time.Time
	// Lat and Lng are its coordinates when Located (held by value: a
	// look-up visits up to 64 entries and reads them all).
	Lat, Lng float64
	Located  bool
}

func nearClassPrefix(family string, k NearbyClass) []byte {
	b := make([]byte, 0, len(family)+len(k.Grid)+len(k.Major)+len(k.Minor)+16)
	b = append(b, family...)
	for _, f := range []string{k.Grid, k.Major, k.Minor} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return binary.BigEndian.AppendUint32(b, uint32(k.Kind))
}

func appendNearTime(b []byte, ms int64) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(ms)^(1<<63))
}

type nearEntry struct{ key, val []byte }

// nearbyEntries lists the N/ entries c should have: none without a grid;
// an open one while it is open with a report time; a closed one once it is
// closed with a closing time.
func nearbyEntries(c *pb.Case) []nearEntry {
	if c == nil || c.GridCode == "" {
		return nil
	}
	var (
		family string
		at     time.Time
	)
	switch {
	case knownOpen(c.State) && c.ReportedAt != nil:
		family, at = pfxNearOpen, c.ReportedAt.AsTime()
	case c.State == pb.State_STATE_CLOSED && c.ClosedAt != nil:
		family, at = pfxNearClosed, c.ClosedAt.AsTime()
	default:
		return nil
	}
	k := appendNearTime(nearClassPrefix(family, NearbyClassOf(c)), at.UnixMilli())
	k = append(k, c.Id...)
	v := make([]byte, 0, 28)
	v = binary.BigEndian.AppendUint64(v, uint64(at.Unix()))
	v = binary.BigEndian.AppendUint32(v, uint32(at.Nanosecond()))
	if l := c.Location; l != nil && (l.Lat != 0 || l.Lng != 0) {
		v = binary.BigEndian.AppendUint64(v, math.Float64bits(l.Lat))
		v = binary.BigEndian.AppendUint64(v, math.Float64bits(l.Lng))
	}
	return []nearEntry{{k, v}}
}

// knownOpen is workflow.IsOpen: a known state that is not terminal.
func knownOpen(st pb.State) bool {
	_, known := pb.State_name[int32(st)]
	return known && st != pb.State_STATE_UNSPECIFIED && isOpen(st)
}

// putNearby moves c's N/ entries from old's, writing only what changed.
func (tx *Tx) putNearby(old, c *pb.Case) error {
	was, is := nearbyEntries(old), nearbyEntries(c)
	for _, o := range was {
		if !hasNearKey(is, o.key) {
			if err := tx.del(o.key); err != nil {
				return err
			}
		}
	}
	for _, n := range is {
		if !hasNear(was, n) {
			if err := tx.set(n.key, n.val); err != nil {
				return err
			}
		}
	}
	return nil
}

func hasNearKey(es []nearEntry, k []byte) bool {
	for _, e := range es {
		if bytes.Equal(e.key, k) {
			return true
		}
	}
	return false
}

func hasNear(es []nearEntry, n nearEntry) bool {
	for _, e := range es {
		if bytes.Equal(e.key, n.key) && bytes.Equal(e.val, n.val) {
			return true
		}
	}
	return false
}

func decodeNear(prefix []byte, key, val []byte) (NearbyEntry, error) {
	if len(key) < len(prefix)+8 || (len(val) != 12 && len(val) != 28) {
		return NearbyEntry{}, fmt.Errorf("nearby index entry %q: malformed", key)
	}
	e := NearbyEntry{
		ID: string(key[len(prefix)+8:]),
		At: time.Unix(int64(binary.BigEndian.Uint64(val)), int64(binary.BigEndian.Uint32(val[8:]))),
	}
	if len(val) == 28 {
		e.Lat, e.Lng, e.Located = math.Float64frombits(binary.BigEndian.Uint64(val[12:])), math.Float64frombits(binary.BigEndian.Uint64(val[20:])), true
	}
	return e, nil
}

// NearbyOpen calls fn with the open cases of class k reported at or after
// since, the most recently reported first (by millisecond, then id), until
// fn returns false. It reads only the index entries of k from the newest
// back to since.
func (s *Store) NearbyOpen(k NearbyClass, since time.Time, fn func(NearbyEntry) bool) error {
	return s.nearby(pfxNearOpen, k, time.Time{}, since, fn)
}

// NearbyClosed calls fn with the closed cases of class k closed in
// [since, until], the most recently closed first (by millisecond, then
// id), until fn returns false.
func (s *Store) NearbyClosed(k NearbyClass, since, until time.Time, fn func(NearbyEntry) bool) error {
	return s.nearby(pfxNearClosed, k, until, since, fn)
}

// forwardMax bounds the entries a look-up collects walking forward from
// the start of its window; a window holding more is walked backwards from
// its end instead. Forward is the cheap direction (badger's memtable is a
// skiplist without back links: each step back is a search), and a window
// normally holds a handful of a grid's cases of one class. It matches
// tiers/nearby's bound on the entries a look-up visits: a window holding
// more is dense, and the newest are what the look-up wants.
const forwardMax = 64

func (s *Store) nearby(family string, k NearbyClass, until, since time.Time, fn func(NearbyEntry) bool) error {
	prefix := nearClassPrefix(family, k)
	visit := fn
	if st := s.stats.Load(); st != nil {
		// The window's entries visited in memory count as keys read.
		visit = func(e NearbyEntry) bool { st.Scanned.Add(1); return fn(e) }
	}
	if s.near.lookup(prefix, since, until, visit) {
		return nil
	}
	sinceMs := since.UnixMilli()
	inWindow := func(e NearbyEntry) bool { return !e.At.Before(since) && (until.IsZero() || !e.At.After(until)) }
	return s.View(func(tx *Tx) error {
		entries, whole, err := nearbyForward(tx, prefix, sinceMs, until)
		if err != nil {
			return err
		}
		if whole {
			for i := len(entries) - 1; i >= 0; i-- {
				if inWindow(entries[i]) && !fn(entries[i]) {
					return nil
				}
			}
			return nil
		}
		it := tx.iterator(badger.IteratorOptions{Prefix: prefix, Reverse: true})
		defer it.Close()
		// Reverse iteration seeks the last key at or before the seek key.
		seek := append(bytes.Clone(prefix), bytes.Repeat([]byte{0xff}, 9)...)
		if !until.IsZero() {
			seek = appendNearTime(bytes.Clone(prefix), until.UnixMilli()+1)
		}
		for it.Seek(seek); it.Valid(); it.Next() {
			e, err := readNear(prefix, it.Item())
			if err != nil {
				return err
			}
			if e.At.UnixMilli() < sinceMs {
				return nil
			}
			if inWindow(e) && !fn(e) {
				return nil
			}
		}
		return nil
	})
}

// nearbyForward collects the entries of prefix from sinceMs up to until
// (zero: the end), oldest first; whole is false when there were more than
// forwardMax.
func nearbyForward(tx *Tx, prefix []byte, sinceMs int64, until time.Time) (entries []NearbyEntry, whole bool, err error) {
	it := tx.iterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	for it.Seek(appendNearTime(bytes.Clone(prefix), sinceMs)); it.Valid(); it.Next() {
		if len(entries) == forwardMax {
			return nil, false, nil
		}
		e, err := readNear(prefix, it.Item())
		if err != nil {
			return nil, false, err
		}
		if !until.IsZero() && e.At.UnixMilli() > until.UnixMilli() {
			break
		}
		entries = append(entries, e)
	}
	return entries, true, nil
}

func readNear(prefix []byte, item kvItem) (NearbyEntry, error) {
	var e NearbyEntry
	err := item.Value(func(v []byte) (err error) {
		e, err = decodeNear(prefix, item.Key(), v)
		return err
	})
	return e, err
}

// nearbyMark reads N/m: the applied index the index was kept up to, and
// whether it is there.
func (tx *Tx) nearbyMark() (uint64, bool, error) {
	item, err := tx.get([]byte(keyNearMark))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read nearby index mark: %w", err)
	}
	var n uint64
	err = item.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("nearby index mark of %d bytes", len(v))
		}
		n = binary.BigEndian.Uint64(v)
		return nil
	})
	return n, true, err
}

// ensureNearby rebuilds the nearby index when it does not match the
// cases: a store written by a version without it (no mark, or a mark
// behind the applied index because an older binary applied entries since),
// or a snapshot taken by one. Every binary that keeps the index writes the
// mark with the applied index (SetApplied), so mark == applied says the
// index is whole. It runs before anything else writes: at Open and after
// a Restore.
func (s *Store) ensureNearby() error {
	var (
		applied, mark uint64
		marked, any   bool
	)
	if err := s.View(func(tx *Tx) error {
		var err error
		if applied, _, err = tx.Applied(); err != nil {
			return err
		}
		if mark, marked, err = tx.nearbyMark(); err != nil {
			return err
		}
		it := tx.txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxCase)})
		defer it.Close()
		it.Rewind()
		any = it.Valid()
		return nil
	}); err != nil {
		return err
	}
	if marked && mark == applied || !marked && !any {
		return nil
	}
	n, err := s.rebuildNearby(applied)
	if err != nil {
		return fmt.Errorf("rebuild the nearby index: %w", err)
	}
	s.log.Info("nearby index rebuilt", "cases", n, "applied_index", applied)
	return nil
}

func (s *Store) rebuildNearby(applied uint64) (int, error) {
	if err := s.db.DropPrefix([]byte(pfxNear)); err != nil {
		return 0, err
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	n := 0
	err := s.View(func(tx *Tx) error {
		it := tx.txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxCase), PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		c := &pb.Case{}
		for it.Rewind(); it.Valid(); it.Next() {
			c.Reset()
			if err := it.Item().Value(func(v []byte) error { return proto.Unmarshal(v, c) }); err != nil {
				return fmt.Errorf("decode %q: %w", it.Item().Key(), err)
			}
			for _, e := range nearbyEntries(c) {
				if err := wb.Set(e.key, e.val); err != nil {
					return err
				}
			}
			n++
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	if err := wb.Set([]byte(keyNearMark), binary.BigEndian.AppendUint64(nil, applied)); err != nil {
		return n, err
	}
	return n, wb.Flush()
}
