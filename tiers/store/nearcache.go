package store

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// The newest entries of the nearby classes a replica looked up, in one
// place each. A look-up walks up to 64 entries of a class (tiers/nearby),
// and in the tree each is a read elsewhere in memory: with a million
// cases stored, 0.7 µs an entry on a loaded leader, 44 µs a report
// (BENCHMARKS.md, "What the million-case tier pays for"). The cache holds
// a class's newest entries as a list of values, so the walk reads one run
// of memory.
//
// A list is exactly the newest part of its class in the published tree
// (in the tree's order, the newest last): a look-up that needs
// more than the list holds goes on in the tree from the list's oldest
// entry, so the answer is the tree's either way. Only look-ups fill it
// (the leader's, for reports); every commit applies its nearby changes to
// the lists that exist, after it is published.
type nearCache struct {
	mu      sync.RWMutex
	classes map[string]*nearList // by class prefix (N/o/<class>, N/c/<class>)
	// seq counts the commits applied: a list built from a tree is kept
	// only if no commit was applied while it was built, for the commit
	// might be in the tree or not.
	seq uint64
}

// nearBuilt, when set (by a test of this package), runs between a walk
// that made or extended a list and the list's put.
var nearBuilt func()

// nearListLen is how many entries a list holds: tiers/nearby's cap.
const nearListLen = 64

// nearCacheClasses bounds the lists (two arrays of up to 128 entries of
// 40 bytes and their ids: at most some 60 MB): past it the cache starts
// again empty. A district's 240 grids and 14 classes, open and closed,
// are 6,720.
const nearCacheClasses = 8192

type nearList struct{ cur atomic.Pointer[nearSnap] }

// nearSnap is one version of a list, never changed once published.
//
// A report is its class's newest entry, so most changes append: the next
// version writes the entry past the end of this one's, in the same
// arrays, where no version published before it reads (every version is
// made from the newest under the cache's lock, so only the newest's end
// is ever written past), and drops the oldest by slicing. Arrays are made
// with room for nearListLen more, so a list copies its entries once
// every nearListLen reports instead of at every one.
//
// Neither array holds a pointer (nearRec; the ids' bytes): the leader's
// lists, thousands of arrays of 64 entries, are no work for the
// collector's marking, where entries with their id and time as Go
// values were two pointers each (BENCHMARKS.md, "Nearby lists without a
// pointer").
type nearSnap struct {
	es  []nearRec // oldest first, as the tree holds them; keys: nearKey
	ids []byte    // the entries' ids, where their idOff says
	// complete: the class has no entry but these.
	complete bool
}

// nearRec is an entry of a list: a NearbyEntry, its time as seconds and
// nanoseconds, its id in the list's ids.
type nearRec struct {
	sec      int64
	nsec     int64
	idOff    uint32
	idLen    uint16
	located  bool
	lat, lng float64
}

// nearIDRoom is the bytes of ids an array has room for past its entries'
// (a case id is some 22 to 30 bytes).
const nearIDRoom = 32 * nearListLen

// entry is the list's entry r. Its ID is the list's bytes (never changed
// once published: see nearSnap), not a copy.
func (sn *nearSnap) entry(r *nearRec) NearbyEntry {
	return NearbyEntry{ID: sn.id(r), At: time.Unix(r.sec, r.nsec), Lat: r.lat, Lng: r.lng, Located: r.located}
}

// id is the id of the list's entry r.
func (sn *nearSnap) id(r *nearRec) string {
	return unsafe.String((*byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(sn.ids)), r.idOff)), r.idLen)
}

// nearBuf is the arrays of a new version, filled in order.
type nearBuf struct {
	es  []nearRec
	ids []byte
}

// newNearBuf is arrays for n entries of idBytes of ids, with room for
// nearListLen more.
func newNearBuf(n, idBytes int) nearBuf {
	return nearBuf{es: make([]nearRec, 0, n+nearListLen), ids: make([]byte, 0, idBytes+nearIDRoom)}
}

// add appends e. An id fits idLen: it is part of a key of the tree, and
// the tree refuses keys longer than a block (memBlockSize, 16 KB).
func (b *nearBuf) add(e NearbyEntry) {
	b.es = append(b.es, nearRec{sec: e.At.Unix(), nsec: int64(e.At.Nanosecond()), idOff: uint32(len(b.ids)), idLen: uint16(len(e.ID)),
		located: e.Located, lat: e.Lat, lng: e.Lng})
	b.ids = append(b.ids, e.ID...)
}

// addAll appends the entries rs of sn.
func (b *nearBuf) addAll(sn *nearSnap, rs []nearRec) {
	for i := range rs {
		b.add(sn.entry(&rs[i]))
	}
}

// idBytes is the bytes of the ids of rs.
func idBytes(rs []nearRec) int {
	n := 0
	for _, r := range rs {
		n += int(r.idLen)
	}
	return n
}

// nearKey is the tree key of e in the class prefix names.
func nearKey(prefix string, e NearbyEntry) string {
	return string(appendNearTime([]byte(prefix), e.At.UnixMilli())) + e.ID
}

// nearOrder orders entries as a list and the tree hold them: by
// millisecond, then id.
func nearOrder(a NearbyEntry, ms int64, id string) int {
	if am := a.At.UnixMilli(); am != ms {
		if am < ms {
			return -1
		}
		return 1
	}
	return strings.Compare(a.ID, id)
}

// nearChange is one change of a nearby entry a transaction made.
type nearChange struct {
	prefixLen int
	key, val  []byte
	del       bool
}

func (c *nearCache) get(prefix string) (*nearSnap, uint64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if l := c.classes[prefix]; l != nil {
		return l.cur.Load(), c.seq
	}
	return nil, c.seq
}

// put keeps sn, built from a tree loaded after get returned old and seq,
// as the class's list: if no commit was applied since, and the list is
// still old (nil: there was none).
func (c *nearCache) put(prefix string, old, sn *nearSnap, seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seq != seq {
		return
	}
	if l := c.classes[prefix]; l != nil {
		if old != nil && l.cur.Load() == old {
			l.cur.Store(sn)
		}
		return
	}
	if old != nil {
		return // dropped meanwhile
	}
	if c.classes == nil || len(c.classes) >= nearCacheClasses {
		c.classes = map[string]*nearList{}
	}
	l := &nearList{}
	l.cur.Store(sn)
	c.classes[prefix] = l
}

// reset drops every list (the tree was rebuilt or replaced).
func (c *nearCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	c.classes = nil
}

// apply applies a commit's nearby changes, in their order, to the lists
// that exist. Idempotent per change: a list built from a tree that held
// it already has it.
func (c *nearCache) apply(changes []nearChange) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	for _, ch := range changes {
		prefix := string(ch.key[:ch.prefixLen])
		l := c.classes[prefix]
		if l == nil {
			continue
		}
		if sn := l.cur.Load().with(ch); sn != nil {
			l.cur.Store(sn)
		}
	}
}

// with is sn changed by ch, or nil when ch changes nothing it holds.
func (sn *nearSnap) with(ch nearChange) *nearSnap {
	// The position of ch.key: the entries before it are older.
	if len(ch.key) < ch.prefixLen+8 {
		return nil
	}
	ms := int64(binary.BigEndian.Uint64(ch.key[ch.prefixLen:]) ^ (1 << 63))
	id := string(ch.key[ch.prefixLen+8:])
	i, found := slices.BinarySearchFunc(sn.es, ms, func(r nearRec, ms int64) int { return nearOrder(sn.entry(&r), ms, id) })
	if ch.del {
		switch {
		case !found:
			return nil
		case i == 0: // the oldest: the rest is still the class's newest
			return &nearSnap{es: sn.es[1:], ids: sn.ids, complete: sn.complete}
		}
		b := newNearBuf(len(sn.es)-1, idBytes(sn.es))
		b.addAll(sn, sn.es[:i])
		b.addAll(sn, sn.es[i+1:])
		return &nearSnap{es: b.es, ids: b.ids, complete: sn.complete}
	}
	if !found && i == 0 && !sn.complete {
		return nil // older than the list: beyond what it holds
	}
	e, err := decodeNear(ch.prefixLen, string(ch.key), string(ch.val))
	if err != nil {
		return nil
	}
	e.ID = id
	var b nearBuf
	switch {
	case !found && i == len(sn.es) && len(sn.es) < cap(sn.es) && len(sn.ids)+len(id) <= cap(sn.ids):
		// The newest: past the end, in the same arrays (nearSnap).
		b = nearBuf{es: sn.es, ids: sn.ids}
		b.add(e)
	default: // a new value (the coordinates moved), or between two
		b = newNearBuf(len(sn.es)+1, idBytes(sn.es)+len(id))
		b.addAll(sn, sn.es[:i])
		b.add(e)
		if found {
			i++
		}
		b.addAll(sn, sn.es[i:])
	}
	es, complete := b.es, sn.complete
	if len(es) > nearListLen {
		es, complete = es[len(es)-nearListLen:], false
	}
	return &nearSnap{es: es, ids: b.ids, complete: complete}
}

// noteNear records a change of a nearby entry (memSet, memDel), for the
// cache once the transaction commits.
func (tx *Tx) noteNear(key, val []byte, del bool) {
	if n := nearPrefixLen(key); n > 0 {
		tx.nearChanges = append(tx.nearChanges, nearChange{prefixLen: n, key: bytes.Clone(key), val: bytes.Clone(val), del: del})
	}
}

// nearPrefixLen is the length of key's class prefix (nearClassPrefix:
// the family, three length-prefixed fields and the kind), 0 if key is not
// a nearby entry's.
func nearPrefixLen(key []byte) int {
	n := len(pfxNearOpen)
	if len(key) < n {
		return 0
	}
	for range 3 {
		l, w := binary.Uvarint(key[n:])
		if w <= 0 || uint64(len(key)-n-w) < l {
			return 0
		}
		n += w + int(l)
	}
	if n += 4; len(key) < n+8 {
		return 0
	}
	return n
}
