package store

import (
	"runtime"
	"sync"
)

// The probes the main tree is searched with. Its entries hold no pointer
// (memEntry), so a key to search for is written into a block too: a
// prober is a block of the process's, bound for good, that one goroutine
// at a time writes its probe into (the first bytes, as an entry with a
// block of its own). Probers are pooled: a search takes one and gives it
// back (sync.Pool, per processor, so readers on other cores do not
// contend). The pool drops what it holds at the collector's cycles; a
// prober dropped, or never given back, returns its block to the free
// ones once the collector frees it (runtime.AddCleanup), so the blocks
// bound for probes stay as many as the searches that ran at once.
type memProber struct {
	n   uint32
	blk *memBlock
}

// probeBlock is a prober's block and number, without the prober.
type probeBlock struct {
	n   uint32
	blk *memBlock
}

type proberPool struct {
	pool sync.Pool
	mu   sync.Mutex
	free []probeBlock // blocks of probers the collector freed (under mu)
}

var probers proberPool

func (p *proberPool) get() *memProber {
	if pr, ok := p.pool.Get().(*memProber); ok {
		return pr
	}
	p.mu.Lock()
	var b probeBlock
	if k := len(p.free); k > 0 {
		b = p.free[k-1]
		p.free = p.free[:k-1]
	}
	p.mu.Unlock()
	if b.blk == nil {
		b.n, b.blk = blocks.bind()
	}
	pr := &memProber{n: b.n, blk: b.blk}
	runtime.AddCleanup(pr, p.release, b)
	return pr
}

func (p *proberPool) put(pr *memProber) { p.pool.Put(pr) }

// release takes back the block of a prober the collector freed.
func (p *proberPool) release(b probeBlock) {
	p.mu.Lock()
	p.free = append(p.free, b)
	p.mu.Unlock()
}

// probe writes key into the prober's block and returns the entry that
// names it, valid until the prober's next probe. whole is false for a key
// longer than a block, which no entry is: the entry then holds the key's
// first memBlockSize bytes.
func (pr *memProber) probe(key string) (e memEntry, whole bool) {
	n := copy(pr.blk.b[:], key)
	return memEntry{a: pr.n | bigEntry, b: uint32(n) << 16}, n == len(key)
}
