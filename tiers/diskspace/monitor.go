// Package diskspace watches the free space of a node's data directory and
// says when writes must stop: below a reserve, well before the filesystem
// is full. The state store (badger) writes its memtables through memory
// mappings, and a store into a mapped page of a full filesystem is a
// SIGBUS that kills the process, not an error a write could return; the
// reserve keeps the node from ever getting there through its own writes.
//
// A Monitor samples the filesystem (statfs) every interval and keeps the
// answer in an atomic, so the check before each proposal (Admit) costs a
// load, not a system call. Crossing the reserve is logged once in each
// direction; a refusal is counted by command kind.
package diskspace

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ErrLow is the sentinel of a write refused because the free space of the
// data directory is below the reserve. It is retryable: the node accepts
// writes again by itself once space is freed.
var ErrLow = errors.New("disk space below the reserve")

// RetryAfter is the wait suggested to a refused client (gRPC RetryInfo,
// REST Retry-After). Space comes back when an operator frees it, so a
// short busy loop helps nobody.
const RetryAfter = 10 * time.Second

// LowError is a refusal for low disk space: which directory, its free
// space and the reserve. It wraps ErrLow.
type LowError struct {
	Dir           string
	Free, Reserve uint64
}

func (e *LowError) Error() string {
	return fmt.Sprintf("%v: %s free for %s, below the reserve of %s (limits.disk_reserve_bytes, limits.disk_reserve_percent): "+
		"writes are refused until space is freed, reads go on; retry later",
		ErrLow, Bytes(e.Free), e.Dir, Bytes(e.Reserve))
}

func (e *LowError) Unwrap() error { return ErrLow }

// Usage is the space of the filesystem that holds a directory: Free is
// what an unprivileged process may still write (statfs f_bavail, as df's
// "Avail"), Total the filesystem's size.
type Usage struct {
	Free, Total uint64
}

// StatFunc reports the space of the filesystem holding dir.
type StatFunc func(dir string) (Usage, error)

// Options configure a Monitor.
type Options struct {
	// Dirs are the directories whose filesystems are watched (the data
	// directory and its raft, state and snapshot folders, which an
	// operator may mount elsewhere). A directory that does not exist is
	// skipped. The first is the one named when all are on one filesystem.
	Dirs []string
	// Reserve is the free space, in bytes, below which writes stop.
	Reserve uint64
	// ReservePercent, when set, raises the reserve to that share of the
	// filesystem's size (the larger of the two counts).
	ReservePercent float64
	// Interval is how often the filesystems are sampled (default 1s).
	Interval time.Duration
	Logger   *slog.Logger
	// Stat reads a filesystem's space (default: Statfs).
	Stat StatFunc
}

// State is what the last sample found, for the directory with the least
// room above its reserve.
type State struct {
	Dir     string
	Free    uint64
	Total   uint64
	Reserve uint64 // in bytes, percent applied
	// Low: writes are refused. It turns on below Reserve and off only at
	// Reserve plus a margin (Resume), so a node at the edge does not flap.
	Low bool
	// Err is the last sample's error (the previous values are kept, and
	// writes are not held back for it).
	Err     error
	Checked time.Time
}

// Resume is the free space at which a low node takes writes again: the
// reserve plus a sixteenth of it, at most 64 MiB more.
func (s State) Resume() uint64 { return s.Reserve + min(s.Reserve/16, maxMargin) }

// maxMargin bounds the resume margin (a reserve of 100 GiB resumes 64 MiB
// above it, not 6 GiB).
const maxMargin = 64 << 20

// Monitor watches the filesystems of Options.Dirs.
type Monitor struct {
	opts  Options
	log   *slog.Logger
	state atomic.Pointer[State]

	mu      sync.Mutex // serialises samples (Check and the loop)
	refMu   sync.Mutex
	refused map[string]uint64
}

// New returns a monitor that has taken its first sample.
func New(opts Options) *Monitor {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Stat == nil {
		opts.Stat = Statfs
	}
	m := &Monitor{opts: opts, log: opts.Logger.With("component", "diskspace"), refused: map[string]uint64{}}
	m.state.Store(&State{})
	m.Check()
	return m
}

// Run samples every interval until done is closed.
func (m *Monitor) Run(done <-chan struct{}) {
	t := time.NewTicker(m.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			m.Check()
		}
	}
}

// Interval is the sampling interval.
func (m *Monitor) Interval() time.Duration { return m.opts.Interval }

// State is the last sample.
func (m *Monitor) State() State { return *m.state.Load() }

// Check samples the filesystems now, logs a crossing of the reserve and
// returns the new state.
func (m *Monitor) Check() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	prev := *m.state.Load()
	next, err := m.sample(prev.Low)
	now := time.Now()
	if err != nil {
		// Keep what was known; an unreadable filesystem does not stop
		// writes (the store's own errors will say more).
		next = prev
		next.Err, next.Checked = err, now
		if prev.Err == nil || prev.Err.Error() != err.Error() {
			m.log.Warn("cannot read the free disk space: writes are not held back for the reserve", "error", err)
		}
		m.state.Store(&next)
		return next
	}
	next.Checked = now
	if prev.Err != nil {
		m.log.Info("free disk space readable again", "dir", next.Dir, "free", Bytes(next.Free))
	}
	switch {
	case next.Low && !prev.Low:
		m.log.Warn("disk space below the reserve: writes refused until space is freed (reads go on; as a follower this replica still appends the leader's entries)",
			"dir", next.Dir, "free", Bytes(next.Free), "reserve", Bytes(next.Reserve), "resume_at", Bytes(next.Resume()))
	case !next.Low && prev.Low:
		m.log.Info("disk space back above the reserve: writes accepted again",
			"dir", next.Dir, "free", Bytes(next.Free), "reserve", Bytes(next.Reserve))
	}
	m.state.Store(&next)
	return next
}

// sample statfs's every directory; the one with the least room above its
// reserve is reported. wasLow applies the resume margin.
func (m *Monitor) sample(wasLow bool) (State, error) {
	var (
		worst State
		room  = math.Inf(1)
		found bool
		errs  []error
	)
	for _, dir := range m.opts.Dirs {
		u, err := m.opts.Stat(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		reserve := m.opts.Reserve
		if p := m.opts.ReservePercent; p > 0 {
			reserve = max(reserve, uint64(float64(u.Total)*p/100))
		}
		st := State{Dir: dir, Free: u.Free, Total: u.Total, Reserve: reserve}
		limit := st.Reserve
		if wasLow {
			limit = st.Resume()
		}
		st.Low = reserve > 0 && u.Free < limit
		if r := float64(u.Free) - float64(limit); !found || r < room {
			worst, room, found = st, r, true
		}
	}
	if len(errs) > 0 {
		return State{}, errors.Join(errs...)
	}
	if !found {
		return State{}, fmt.Errorf("statfs: none of %v exists", m.opts.Dirs)
	}
	return worst, nil
}

// Admit answers nil when a write may be proposed, or a *LowError (which
// wraps ErrLow) and counts the refusal under kind. It reads the last
// sample only.
func (m *Monitor) Admit(kind string) error {
	st := m.state.Load()
	if !st.Low {
		return nil
	}
	m.refMu.Lock()
	m.refused[kind]++
	m.refMu.Unlock()
	return &LowError{Dir: st.Dir, Free: st.Free, Reserve: st.Reserve}
}

// Refused counts the writes refused so far, by kind.
func (m *Monitor) Refused() map[string]uint64 {
	m.refMu.Lock()
	defer m.refMu.Unlock()
	out := make(map[string]uint64, len(m.refused))
	for k, v := range m.refused {
		out[k] = v
	}
	return out
}

// Bytes formats a size for people: 512 MiB, 3.2 GiB, 800 KiB.
func Bytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f %ciB", v, "KMGTPE"[exp])
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTPE"[exp])
}
