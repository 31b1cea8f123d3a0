package store

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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

// nearCacheClasses bounds the lists (an array of up to 128 entries of 64
// bytes, 64 ids: at most some 80 MB): past it the cache starts again
// empty. A district's 240 grids and 14 classes, open and closed, are
// 6,720.
const nearCacheClasses = 8192

type nearList struct{ cur atomic.Pointer[nearSnap] }

// nearSnap is one version of a list, never changed once published.
//
// A report is its class's newest entry, so most changes append: the next
// version writes the entry past the end of this one's, in the same
// array, where no version published before it reads (every version is
// made from the newest under the cache's lock, so only the newest's end
// is ever written past), and drops the oldest by slicing. An array is
// made with room for nearListLen more, so a list copies its entries
// once every nearListLen reports instead of at every one.
type nearSnap struct {
	es []NearbyEntry // oldest first, as the tree holds them; keys: nearKey
	// complete: the class has no entry but these.
	complete bool
}

// newNearEntries is a new array for a list of n entries, with room to
// append nearListLen more.
func newNearEntries(n int) []NearbyEntry { return make([]NearbyEntry, 0, n+nearListLen) }

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
	i, found := slices.BinarySearchFunc(sn.es, ms, func(e NearbyEntry, ms int64) int { return nearOrder(e, ms, id) })
	if ch.del {
		switch {
		case !found:
			return nil
		case i == 0: // the oldest: the rest is still the class's newest
			return &nearSnap{es: sn.es[1:], complete: sn.complete}
		}
		es := append(newNearEntries(len(sn.es)-1), sn.es[:i]...)
		return &nearSnap{es: append(es, sn.es[i+1:]...), complete: sn.complete}
	}
	if !found && i == 0 && !sn.complete {
		return nil // older than the list: beyond what it holds
	}
	e, err := decodeNear(ch.prefixLen, string(ch.key), string(ch.val))
	if err != nil {
		return nil
	}
	e.ID = id
	var es []NearbyEntry
	switch {
	case found: // a new value (the coordinates moved)
		es = append(newNearEntries(len(sn.es)), sn.es...)
		es[i] = e
	case i == len(sn.es) && len(sn.es) < cap(sn.es):
		// The newest: past the end, in the same array (nearSnap).
		es = append(sn.es, e)
	default:
		es = append(newNearEntries(len(sn.es)+1), sn.es[:i]...)
		es = append(append(es, e), sn.es[i:]...)
	}
	complete := sn.complete
	if len(es) > nearListLen {
		es, complete = es[len(es)-nearListLen:], false
	}
	return &nearSnap{es: es, complete: complete}
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
