package store

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// nearMem holds the recent part of the nearby index (family N/) in memory
// so that the look-ups of every report (its duplicates and its recurrence,
// on the leader) read no badger: with a backlog of a million cases stored
// they were the leader's largest cost, each a seek through every LSM
// level that holds the class (BENCHMARKS.md).
//
// It holds exactly the N/ entries whose time is at or after horizon, by
// class, in key order (time, then id); a look-up whose window starts at
// or after horizon is answered from it, any other from badger. The
// horizon is the wall clock minus Options.NearbyWindow, moved on as
// entries age out (prune). It is loaded at Open and after a Restore (the
// whole family scanned once), and kept by write transactions after they
// commit (Update: the entries a transaction set or deleted, in order); a
// transaction that fails changes nothing. Like the counter cache it
// relies on the state machine being the store's only writer. It is a
// cache of the leader's look-ups, never part of what Apply decides: the
// leader stamps what it found into the command.
type nearMem struct {
	window time.Duration // 0: off
	now    func() time.Time

	mu      sync.RWMutex
	loaded  bool
	horizon int64 // Unix ms: entries at or after it are all here
	classes map[string][]memNear
}

func newNearMem(window time.Duration, now func() time.Time) nearMem {
	if now == nil {
		window = 0
	}
	return nearMem{window: window, now: now}
}

// memNear is one entry: the millisecond of its key (entries are in key
// order: millisecond, then id) and what a look-up returns.
type memNear struct {
	ms int64
	e  NearbyEntry
}

// compareMemNear orders entries as their keys: by millisecond, then id.
func compareMemNear(x memNear, ms int64, id string) int {
	if c := cmp.Compare(x.ms, ms); c != 0 {
		return c
	}
	return strings.Compare(x.e.ID, id)
}

// nearOp is one write of an N/ key in a transaction (del: deleted).
type nearOp struct {
	key, val []byte
	del      bool
}

// isNearEntryKey is true for the key of an N/ entry (not the mark).
func isNearEntryKey(k []byte) bool {
	return len(k) > len(pfxNearOpen) && k[0] == 'N' && k[1] == '/' && (k[2] == 'o' || k[2] == 'c') && k[3] == '/'
}

// nearClassLen is the length of the class prefix at the start of an N/
// key: everything before its 8 time bytes and the id. The id is a case id
// (no NUL), so the prefix is found by parsing the class the way
// nearClassPrefix builds it.
func nearClassLen(key []byte) (int, bool) {
	i := len(pfxNearOpen)
	for f := 0; f < 3; f++ {
		n, w := binary.Uvarint(key[i:])
		if w <= 0 || i+w+int(n) > len(key) {
			return 0, false
		}
		i += w + int(n)
	}
	i += 4 // kind
	if i+8 > len(key) {
		return 0, false
	}
	return i, true
}

// nearKeyMs is the millisecond of an N/ key's part after its class (8
// time bytes, then the id), as appendNearTime wrote it.
func nearKeyMs(suffix []byte) int64 {
	return int64(binary.BigEndian.Uint64(suffix) ^ (1 << 63))
}

// load fills the cache from the store's N/ family: every entry at or
// after the horizon. It runs at Open and at the end of a Restore, when no
// write transaction can commit meanwhile (the state machine has not
// started, or raft holds its applies until the restore returns): a commit
// between the scan and the install would be missed.
func (m *nearMem) load(s *Store) error {
	if m.window <= 0 {
		return nil
	}
	horizon := m.now().Add(-m.window).UnixMilli()
	classes := map[string][]memNear{}
	err := s.View(func(tx *Tx) error {
		it := tx.txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxNear), PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if !bytes.HasPrefix(k, []byte(pfxNearOpen)) && !bytes.HasPrefix(k, []byte(pfxNearClosed)) {
				continue
			}
			n, ok := nearClassLen(k)
			if !ok {
				continue // Verify reports it
			}
			e, err := readNear(k[:n], it.Item())
			if err != nil {
				return err
			}
			if e.At.UnixMilli() < horizon {
				continue
			}
			class := string(k[:n])
			classes[class] = append(classes[class], memNear{ms: nearKeyMs(k[n:]), e: e})
		}
		return nil
	})
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.classes, m.horizon, m.loaded = classes, horizon, true
	return nil
}

// reset empties the cache until the next load (a Restore in progress).
func (m *nearMem) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.classes, m.loaded = nil, false
}

// apply records a committed transaction's N/ writes, in order.
func (m *nearMem) apply(ops []nearOp) {
	if len(ops) == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.loaded {
		return
	}
	for _, op := range ops {
		n, ok := nearClassLen(op.key)
		if !ok {
			continue
		}
		class, ms, id := string(op.key[:n]), nearKeyMs(op.key[n:]), string(op.key[n+8:])
		list := m.classes[class]
		i, found := slices.BinarySearchFunc(list, ms, func(x memNear, ms int64) int { return compareMemNear(x, ms, id) })
		if op.del {
			if found {
				m.classes[class] = slices.Delete(list, i, i+1)
			}
			continue
		}
		e, err := decodeNear(op.key[:n], op.key, op.val)
		if err != nil || e.At.UnixMilli() < m.horizon {
			continue
		}
		if found {
			list[i].e = e
			continue
		}
		m.classes[class] = slices.Insert(list, i, memNear{ms: ms, e: e})
	}
	m.prune()
}

// prune moves the horizon to the wall clock minus the window, dropping
// what falls before it, at most once a minute. Called with mu held.
func (m *nearMem) prune() {
	h := m.now().Add(-m.window).UnixMilli()
	if h < m.horizon+time.Minute.Milliseconds() {
		return
	}
	for class, list := range m.classes {
		i := 0
		for i < len(list) && list[i].ms < h {
			i++
		}
		switch {
		case i == len(list):
			delete(m.classes, class)
		case i > 0:
			m.classes[class] = slices.Clone(list[i:])
		}
	}
	m.horizon = h
}

// lookup calls fn with the entries of class prefix in [since, until]
// (until zero: no end), newest first (by millisecond, then id, as badger
// returns them), until fn returns false, and reports whether it could
// answer (false: the window starts before the horizon, or the cache is
// off or not loaded: ask badger). fn runs under the read lock: it must not
// write to the store.
func (m *nearMem) lookup(prefix []byte, since, until time.Time, fn func(NearbyEntry) bool) bool {
	if m.window <= 0 {
		return false
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if !m.loaded || since.UnixMilli() < m.horizon {
		return false
	}
	list := m.classes[string(prefix)]
	sinceMs := since.UnixMilli()
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].ms < sinceMs {
			break
		}
		e := list[i].e
		if e.At.Before(since) || (!until.IsZero() && e.At.After(until)) {
			continue
		}
		if !fn(e) {
			break
		}
	}
	return true
}
