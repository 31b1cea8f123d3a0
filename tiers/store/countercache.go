package store

import "sync"

// counterCache holds the values the store's counters had after the last
// committed transactions that moved them, so that the next write to a
// counter does not read it back through badger: the evaluation's (e/),
// the counts by state (k/) and the day's case sequences (q/); the
// dashboard's (D/c/, D/f/) were here too until they moved into the
// in-memory tree (memindex.go), which a transaction reads directly. Every
// case write moves several of them (the evaluation indicators by day and
// month, the count of its state, its day's sequence); reading each through
// the memtables' skiplists and the LSM was a fifth of a follower's CPU
// under load, and more with a million cases stored (BENCHMARKS.md).
//
// Write transactions only (Update) read and fill it, through Tx.counter
// and Tx.setCounter; it is filled only after a commit, so a transaction
// that fails leaves it as it was. It relies on the state machine being the
// store's only writer (Apply is serial): a counter read from the cache is
// not in the badger transaction's read set, so badger could not detect a
// conflict with a concurrent writer, and every write of a counter family
// inside a transaction goes through setCounter. Anything that rewrites a
// counter family outside a transaction (a rebuild, a restore) resets it.
// Bounded: past counterCacheMax entries it starts again empty (the hourly
// flow and the days' counters keep coming; a miss costs one badger read,
// as before the cache).
type counterCache struct {
	mu sync.Mutex
	m  map[string]uint64
}

const counterCacheMax = 1 << 18

func (c *counterCache) get(k string) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

// put records committed values (0: the counter was deleted).
func (c *counterCache) put(writes map[string]uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m)+len(writes) > counterCacheMax {
		c.m = make(map[string]uint64, len(writes))
	}
	for k, v := range writes {
		c.m[k] = v
	}
}

func (c *counterCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = nil
}
