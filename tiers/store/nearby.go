package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/dgraph-io/badger/v4"
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
//
// Both families are kept in memory with the other case indexes
// (memindex.go), rebuilt from the cases when the store opens.
// <class> is the grid code, major and minor codes, each with a uvarint
// length before it, then the kind (4 bytes BE): no separator can be forged
// by a field. A time is its Unix millisecond count, 8 bytes BE with the
// sign bit flipped (so times before 1970 sort first). The value is the
// exact time (seconds 8 bytes BE, nanoseconds 4 bytes BE) and, for a case
// with coordinates, lat and lng (IEEE-754, 8 bytes BE each).
const (
	pfxNearOpen   = "N/o/"
	pfxNearClosed = "N/c/"
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

// decodeNear reads the entry of key (after its class prefix) and val.
// They are an entry of the in-memory tree: the id is a part of its key,
// not a copy, so a look-up allocates nothing an entry.
func decodeNear(prefixLen int, key, val string) (NearbyEntry, error) {
	if len(key) < prefixLen+8 || (len(val) != 12 && len(val) != 28) {
		return NearbyEntry{}, fmt.Errorf("nearby index entry %q: malformed", key)
	}
	v := bytesOf(val)
	e := NearbyEntry{
		ID: key[prefixLen+8:],
		At: time.Unix(int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint32(v[8:]))),
	}
	if len(v) == 28 {
		e.Lat, e.Lng, e.Located = math.Float64frombits(binary.BigEndian.Uint64(v[12:])), math.Float64frombits(binary.BigEndian.Uint64(v[20:])), true
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

// nearby walks the entries of one class back from until (zero: the
// newest) to since. The family is in memory (memindex.go): a look-up
// reads the class's cached newest entries (nearcache.go), then, if it
// needs more, walks the published tree itself, with no badger view and
// no allocation an entry (a dense window is walked 64 entries deep on
// every report, tiers/nearby).
func (s *Store) nearby(family string, k NearbyClass, until, since time.Time, fn func(NearbyEntry) bool) error {
	prefix := string(nearClassPrefix(family, k))
	st := s.stats.Load()
	sinceMs := since.UnixMilli()
	// give offers e to fn; false: the look-up is over. Every entry read,
	// from a list or the tree, counts as a key scanned.
	give := func(e NearbyEntry) bool {
		if e.At.UnixMilli() < sinceMs {
			return false
		}
		if e.At.Before(since) || !until.IsZero() && e.At.After(until) {
			return true
		}
		return fn(e)
	}
	sn, seq := s.near.get(prefix)
	resume := ""
	if sn != nil {
		for i := len(sn.es) - 1; i >= 0; i-- {
			if st != nil {
				st.Scanned.Add(1)
			}
			// sn.entry written out: too costly for the compiler to
			// inline, and the call was half a look-up's time.
			r := &sn.es[i]
			if !give(NearbyEntry{ID: sn.id(r), At: time.Unix(r.sec, r.nsec), Lat: r.lat, Lng: r.lng, Located: r.located}) {
				return nil
			}
		}
		if sn.complete {
			return nil
		}
		if len(sn.es) > 0 {
			resume = nearKey(prefix, sn.entry(&sn.es[0]))
		}
	}
	// The tree, from the newest entry or past the list's oldest. What it
	// visits extends the list (or makes one), up to nearListLen entries,
	// read past the end of the look-up if need be.
	var kept nearBuf // newest first
	visited := 0
	room := nearListLen
	if sn != nil {
		room -= len(sn.es)
	}
	over := false
	end, err := s.walkNear(prefix, resume, room, func(e NearbyEntry) bool {
		visited++
		if st != nil {
			st.Scanned.Add(1)
		}
		if len(kept.es) < room {
			kept.add(e) // a copy of its id: the tree's bytes are the walk's
		}
		if !over && !give(e) {
			over = true
		}
		return !over || len(kept.es) < room
	})
	if err != nil {
		return err
	}
	if len(kept.es) > 0 || end {
		if nearBuilt != nil {
			nearBuilt()
		}
		// The list holds the oldest first: what the walk kept, reversed,
		// then what the list held.
		held := &nearSnap{}
		if sn != nil {
			held = sn
		}
		b := newNearBuf(len(kept.es)+len(held.es), len(kept.ids)+idBytes(held.es))
		walked := &nearSnap{es: kept.es, ids: kept.ids}
		for i := len(kept.es) - 1; i >= 0; i-- {
			b.add(walked.entry(&kept.es[i]))
		}
		b.addAll(held, held.es)
		s.near.put(prefix, sn, &nearSnap{es: b.es, ids: b.ids, complete: end && visited == len(kept.es)}, seq)
	}
	return nil
}

// walkNear calls visit with the entries of the class prefix names, the
// newest first, from the newest or from the entry after the key resume
// (which need not be there any more), until visit returns false; end
// reports that it went past the class's oldest entry.
//
// It reads the committed tree itself, under the index's lock, a chunk
// of entries at a time (their ids copied): first entries (at least 8),
// then twice as many each time up to nearChunk, and calls visit outside
// the lock. A reader's copy of the tree instead (memIndex.load) would make
// the next commit copy every node on the path of every entry it changes
// (memindex.go): the leader's look-ups, a walk for each class it had no
// complete list of, took one at half its commits under load
// (BENCHMARKS.md, "Update, 2026-12-07 13:20 UTC"). Each chunk is one moment of the
// tree; nearby asks for a first chunk of the entries its list has room
// for, and builds the list from that chunk alone.
func (s *Store) walkNear(prefix, resume string, first int, visit func(e NearbyEntry) bool) (end bool, err error) {
	for n := max(first, 8); ; n = min(2*n, nearChunk) {
		var b nearBuf
		if end, err = s.readNear(prefix, resume, n, &b); err != nil {
			return false, err
		}
		chunk := &nearSnap{es: b.es, ids: b.ids}
		for i := range chunk.es {
			if !visit(chunk.entry(&chunk.es[i])) {
				return false, nil
			}
		}
		if end {
			return true, nil
		}
		resume = nearKey(prefix, chunk.entry(&chunk.es[len(chunk.es)-1]))
	}
}

// nearChunk is the most entries walkNear reads under the index's lock at
// a time: few enough that a commit waits for one chunk some tens of
// microseconds at most.
const nearChunk = 4 * nearListLen

// readNear appends to b up to n entries of the class prefix names,
// the newest first, from the newest or after resume, read from the
// committed tree under the index's lock; end: there is none past them.
func (s *Store) readNear(prefix, resume string, n int, b *nearBuf) (end bool, err error) {
	m := &s.mem
	m.mu.Lock()
	defer m.mu.Unlock()
	it := newMemIter(m.tree, m.pin, badger.IteratorOptions{Prefix: []byte(prefix), Reverse: true})
	defer it.Close()
	seek := prefix + strings.Repeat("\xff", 9)
	if resume != "" {
		seek = resume
	}
	it.Seek([]byte(seek))
	if resume != "" && it.Valid() && it.it.Item().key() == resume {
		it.Next()
	}
	for ; it.Valid(); it.Next() {
		if len(b.es) == n {
			return false, nil
		}
		item := it.it.Item()
		e, err := decodeNear(len(prefix), item.key(), item.val())
		if err != nil {
			return false, err
		}
		b.add(e) // a copy of its id: the tree's bytes are the lock's
	}
	return true, nil
}
