package store

import "sync"

// dashCache holds the values the dashboard's counters (D/c/, D/f/) had
// after the last committed transactions that moved them, so that the next
// write to a counter does not read it back through badger. Every case
// write moves a dozen counters (district, street, community, grid and
// unit by state, the flow of the hour); reading each through the
// memtables' skiplists and the LSM was a fifth of a follower's CPU under
// load (BENCHMARKS.md).
//
// It is filled only after a commit, so a transaction that fails leaves it
// as it was. It relies on the state machine being the store's only
// writer (Apply is serial): a counter read from the cache is not in the
// badger transaction's read set, so badger could not detect a conflict
// with a concurrent writer. Anything that rewrites the D/ family outside
// a transaction (a rebuild, a restore) resets it. Bounded: past
// dashCacheMax entries it starts again empty (the hourly flow counters
// keep coming; a miss costs one badger read, as before the cache).
type dashCache struct {
	mu sync.Mutex
	m  map[string]uint64
}

const dashCacheMax = 1 << 16

func (c *dashCache) get(k string) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

// put records committed values (0: the counter was deleted).
func (c *dashCache) put(writes map[string]uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m)+len(writes) > dashCacheMax {
		c.m = make(map[string]uint64, len(writes))
	}
	for k, v := range writes {
		c.m[k] = v
	}
}

func (c *dashCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = nil
}
