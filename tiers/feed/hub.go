// Package feed serves the change feed of a tier node to its watchers: one
// hub per replica, handed each commit's changes by the store, keeps the
// recent changes in a ring that every watcher reads from (it reads the
// store itself only when the ring is behind it, as after a restore); a
// watcher behind the ring reads the store itself until it catches up. See
// DESIGN.md.
package feed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

// Source is what the hub reads: the node's state store and the signal that
// it applied entries (node.Node).
type Source interface {
	Store() *store.Store
	// Applied returns a channel closed when the state machine next applies
	// entries.
	Applied() <-chan struct{}
}

// Options size a Hub (config.FeedConfig).
type Options struct {
	// Buffer is how many recent changes are held in memory (default 16,384).
	Buffer int
	// MaxWatchers bounds the watchers open at once (default 1,000).
	MaxWatchers int
	Logger      *slog.Logger
}

var (
	// ErrSlowWatcher cuts off a watcher that had caught up and then fell
	// further behind than the buffer: it resumes from its last position.
	ErrSlowWatcher = errors.New("watcher too slow")
	// ErrTooManyWatchers refuses a watcher past Options.MaxWatchers.
	ErrTooManyWatchers = errors.New("too many watchers")
	// ErrClosed ends the watchers of a hub that stopped (the node shuts down).
	ErrClosed = errors.New("change feed closed")
)

// SlowError says how far behind a cut-off watcher was and where to resume.
type SlowError struct {
	Position uint64 // the last revision the watcher was given
	Head     uint64
	Buffer   int
}

func (e *SlowError) Error() string {
	return fmt.Sprintf("%v: it fell %d changes behind, more than the %d held for watchers (feed.buffer); resume after revision %d",
		ErrSlowWatcher, e.Head-e.Position, e.Buffer, e.Position)
}

func (e *SlowError) Unwrap() error { return ErrSlowWatcher }

// readPage is how many changes the hub reads from the store at a time.
const readPage = 1024

// Hub is the one reader of a replica's change log shared by its watchers.
type Hub struct {
	src  Source
	st   *store.Store
	opts Options
	log  *slog.Logger

	mu   sync.RWMutex
	ring []*pb.CaseChange // ring[rev % len(ring)] for rev in [first, head]
	// first is the oldest revision in the ring (head+1 when it is empty);
	// head the newest read.
	first, head uint64
	notify      chan struct{} // closed and replaced when head moves
	closed      bool

	watchers atomic.Int64
	cutoffs  atomic.Int64
	reads    atomic.Int64 // pages the hub read from the store
	stop     chan struct{}
	done     chan struct{}
	started  atomic.Bool
}

// NewHub returns the hub of src; Start starts its reader.
func NewHub(src Source, opts Options) *Hub {
	if opts.Buffer <= 0 {
		opts.Buffer = 16_384
	}
	if opts.MaxWatchers <= 0 {
		opts.MaxWatchers = 1000
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Hub{
		src: src, st: src.Store(), opts: opts, log: opts.Logger.With("component", "feed"),
		ring: make([]*pb.CaseChange, opts.Buffer), first: 1,
		notify: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// Start loads the newest changes into the ring and follows the store.
func (h *Hub) Start() {
	if !h.started.CompareAndSwap(false, true) {
		return
	}
	if head, oldest, err := h.st.FeedBounds(); err == nil {
		// Resumes after a failover come from memory: the ring starts
		// full with the newest changes.
		from := oldest
		if head >= uint64(len(h.ring)) && head-uint64(len(h.ring))+1 > from {
			from = head - uint64(len(h.ring)) + 1
		}
		h.mu.Lock()
		h.first, h.head = from, from-1
		h.mu.Unlock()
	}
	// The state machine hands each commit's changes over as it commits
	// them: the ring follows the store without reading it back.
	h.st.OnChanges(h.push)
	go h.run()
}

// push appends the changes a transaction committed (store.OnChanges) when
// they follow the ring's head; any other (a gap the hub has not read yet)
// is left to run, which reads the store.
func (h *Hub) push(changes []*pb.CaseChange) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || changes[0].Revision != h.head+1 {
		return
	}
	h.appendLocked(changes)
}

// appendLocked appends the changes that follow the head to the ring and
// wakes the watchers; h.mu is held.
func (h *Hub) appendLocked(changes []*pb.CaseChange) {
	moved := false
	for _, ch := range changes {
		if ch.Revision != h.head+1 {
			continue // read already, or pushed while it was read
		}
		h.ring[ch.Revision%uint64(len(h.ring))] = ch
		h.head = ch.Revision
		moved = true
	}
	if !moved {
		return
	}
	if h.head-h.first+1 > uint64(len(h.ring)) {
		h.first = h.head - uint64(len(h.ring)) + 1
	}
	if !h.closed {
		close(h.notify)
		h.notify = make(chan struct{})
	}
}

// Stop ends the reader and every watcher (ErrClosed). It waits for the
// reader, so the store may be closed after it.
func (h *Hub) Stop() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	close(h.notify)
	h.mu.Unlock()
	close(h.stop)
	if h.started.Load() {
		<-h.done
	}
}

func (h *Hub) run() {
	defer close(h.done)
	for {
		applied := h.src.Applied() // before reading: no wake-up is missed
		// Commits push their changes (push); the store is read only when
		// the ring is behind it: at start, after a restore, or after a
		// commit that did not follow the head.
		if h.Head() < h.st.FeedHead() {
			if err := h.readNew(); err != nil {
				h.log.Warn("reading the change log failed; retrying on the next apply", "error", err)
			}
		}
		select {
		case <-applied:
		case <-h.stop:
			return
		}
	}
}

// readNew appends the changes the store has beyond head to the ring.
func (h *Hub) readNew() error {
	for {
		h.mu.RLock()
		after := h.head
		h.mu.RUnlock()
		page, head, oldest, err := h.st.Changes(after, readPage)
		h.reads.Add(1)
		if errors.Is(err, store.ErrCompacted) {
			// The store moved past what the hub had read (a snapshot
			// installed on a follower that lagged): start again at the
			// oldest change kept; watchers behind it get ErrCompacted.
			h.mu.Lock()
			h.first, h.head = oldest, oldest-1
			clear(h.ring)
			h.mu.Unlock()
			continue
		}
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		h.mu.Lock()
		h.appendLocked(page)
		done := h.head >= head
		h.mu.Unlock()
		if done {
			return nil
		}
	}
}

// Head is the newest revision the hub has read.
func (h *Hub) Head() uint64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.head
}

// Watchers is the number of watchers open.
func (h *Hub) Watchers() int64 { return h.watchers.Load() }

// StoreReads counts the pages of changes the hub read from the store
// (watchers catching up from an old position read their own, not
// counted): at start, and after the store moved without a commit the hub
// was given (a restore).
func (h *Hub) StoreReads() int64 { return h.reads.Load() }

// Cutoffs counts the watchers cut off as too slow.
func (h *Hub) Cutoffs() int64 { return h.cutoffs.Load() }

// Bounds returns the oldest revision kept in the store and the newest.
func (h *Hub) Bounds() (oldest, head uint64, err error) {
	head, oldest, err = h.st.FeedBounds()
	return oldest, head, err
}

// Watch opens a watcher positioned after revision after (it is given the
// changes from after+1 on). A position older than the oldest change kept
// is a *store.CompactedError; past MaxWatchers, ErrTooManyWatchers. Close
// it when done.
func (h *Hub) Watch(after uint64) (*Watcher, error) {
	if n := h.watchers.Add(1); n > int64(h.opts.MaxWatchers) {
		h.watchers.Add(-1)
		return nil, fmt.Errorf("%w: this replica serves %d at most (feed.max_watchers); retry shortly or on another replica", ErrTooManyWatchers, h.opts.MaxWatchers)
	}
	head, oldest, err := h.st.FeedBounds()
	if err == nil && after < head && after+1 < oldest {
		err = &store.CompactedError{After: after, Oldest: oldest, Head: head}
	}
	if err != nil {
		h.watchers.Add(-1)
		return nil, err
	}
	return &Watcher{h: h, pos: after}, nil
}

// Watcher is one watcher's position in the feed. Not safe for concurrent
// use.
type Watcher struct {
	h      *Hub
	pos    uint64
	live   bool // it has read from the ring: falling out of it is too slow
	closed bool
}

// Position is the last revision the watcher was given (it resumes after it).
func (w *Watcher) Position() uint64 { return w.pos }

// Close releases the watcher's place.
func (w *Watcher) Close() {
	if !w.closed {
		w.closed = true
		w.h.watchers.Add(-1)
	}
}

// Next returns up to max changes after the watcher's position, in order,
// and moves the position past them. It waits until there is at least one,
// ctx ends (ctx.Err()) or wait passes (no change, no error; wait <= 0
// waits for ctx alone). The changes are shared: never modify them.
func (w *Watcher) Next(ctx context.Context, max int, wait time.Duration) ([]*pb.CaseChange, error) {
	if max <= 0 {
		max = 1
	}
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	h := w.h
	for {
		h.mu.RLock()
		if h.closed {
			h.mu.RUnlock()
			return nil, ErrClosed
		}
		head, first, notify := h.head, h.first, h.notify
		if w.pos < head && w.pos+1 >= first {
			end := min(head, w.pos+uint64(max))
			out := make([]*pb.CaseChange, 0, end-w.pos)
			for rev := w.pos + 1; rev <= end; rev++ {
				out = append(out, h.ring[rev%uint64(len(h.ring))])
			}
			h.mu.RUnlock()
			w.pos, w.live = end, true
			return out, nil
		}
		h.mu.RUnlock()
		if w.pos < head {
			// Behind the ring.
			if w.live {
				h.cutoffs.Add(1)
				return nil, &SlowError{Position: w.pos, Head: head, Buffer: len(h.ring)}
			}
			// Catching up from an old position: read the store itself.
			page, _, _, err := h.st.Changes(w.pos, max)
			if err != nil {
				return nil, err
			}
			if len(page) > 0 {
				w.pos = page[len(page)-1].Revision
				return page, nil
			}
		}
		select {
		case <-notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timeout:
			return nil, nil
		}
	}
}
