package fsm

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/cityhub/cityhub/tiers/store"
)

// txnChunk bounds how many log entries share one badger transaction, which
// keeps a transaction well under badger's size limit however large a batch
// raft hands over.
const txnChunk = 32

// txnBytes bounds the log data that shares one badger transaction: a
// batch of evidence chunks (up to MaxChunkBytes each) would otherwise
// exceed badger's transaction size, a storage failure that stops every
// replica on the same entry. A single larger entry still gets its own.
const txnBytes = 2 << 20

// FSM applies committed log entries to the store.
type FSM struct {
	store   *store.Store
	log     *slog.Logger
	fed     fedCache
	applied atomic.Uint64
	// appliedTerm is the term of the entry at applied.
	appliedTerm atomic.Uint64
	// onApply, when set, is told of every applied index (tests and metrics).
	onApply func(index uint64)
	// observer, when set, times each command entry (metrics).
	observer EntryObserver
	// markerCases: a store holding at least this many cases takes
	// marker snapshots (0: never; SetMarkerSnapshots).
	markerCases uint64
}

var (
	_ raft.FSM         = (*FSM)(nil)
	_ raft.BatchingFSM = (*FSM)(nil)
)

// New returns the FSM over st, resuming from the applied index stored there.
func New(st *store.Store, logger *slog.Logger) (*FSM, error) {
	if logger == nil {
		logger = slog.Default()
	}
	f := &FSM{store: st, log: logger}
	idx, term, err := st.Applied()
	if err != nil {
		return nil, fmt.Errorf("read applied index: %w", err)
	}
	f.applied.Store(idx)
	f.appliedTerm.Store(term)
	return f, nil
}

// AppliedIndex is the last log index reflected in the store.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// AppliedTerm is the term of the entry at AppliedIndex (raft's no-op
// entries never reach the FSM: a new leader's term shows here with the
// first command of its term applied).
func (f *FSM) AppliedTerm() uint64 { return f.appliedTerm.Load() }

// OnApply registers fn to be called with each applied index. Not safe to
// call once raft is running.
func (f *FSM) OnApply(fn func(index uint64)) { f.onApply = fn }

// ObserveEntries registers o to be told of each command entry's
// processing (tiers/node's apply-time metric). Not safe to call once raft
// is running.
func (f *FSM) ObserveEntries(o EntryObserver) { f.observer = o }

// SetMarkerSnapshots makes a store holding at least n cases (0: never, the
// default) take marker snapshots: raft's snapshot records the applied
// index of the durable store instead of copying it (store.WriteMarker),
// and the node streams the live store only when a follower needs it.
// Below n a snapshot is a full copy, from which a damaged store can be
// rebuilt on the replica itself. Not safe to call once raft is running.
func (f *FSM) SetMarkerSnapshots(n uint64) { f.markerCases = n }

// Apply applies one entry.
func (f *FSM) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch applies entries in order, up to txnChunk (and about txnBytes
// of data) per transaction. An
// entry at or below the stored applied index was applied before a restart
// and is skipped: replaying the log after a crash never applies twice.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	for start := 0; start < len(logs); {
		end, size := start, 0
		for end < len(logs) && end-start < txnChunk && (end == start || size+len(logs[end].Data) <= txnBytes) {
			size += len(logs[end].Data)
			end++
		}
		f.applyChunk(logs[start:end], out[start:end])
		start = end
	}
	return out
}

func (f *FSM) applyChunk(logs []*raft.Log, out []any) {
	applied := f.applied.Load()
	var last *raft.Log
	err := f.store.Update(func(tx *store.Tx) error {
		for i, l := range logs {
			if l.Index <= applied {
				out[i] = &Result{Err: fmt.Errorf("%w: index %d already applied", ErrReplayed, l.Index)}
				continue
			}
			last = l
			if l.Type == raft.LogConfiguration {
				// Kept with the state, so a snapshot can be taken from
				// the store alone (tiers/node, start-up checks).
				if err := tx.SetConfiguration(l.Index, l.Data); err != nil {
					return err
				}
				continue
			}
			if l.Type != raft.LogCommand {
				continue
			}
			var begin int64
			if f.observer != nil {
				begin = f.observer.Begin()
			}
			res, kind, err := process(tx, l, &f.fed)
			if f.observer != nil {
				f.observer.End(kind, begin)
			}
			if err != nil {
				return err // storage failure: nothing of the chunk commits
			}
			out[i] = res
		}
		if last == nil {
			return nil
		}
		return tx.SetApplied(last.Index, last.Term)
	})
	if err != nil {
		// A storage failure cannot be skipped without diverging from the
		// other replicas; stop the node rather than serve wrong state.
		f.log.Error("state machine write failed", "error", err)
		panic(fmt.Sprintf("cityhub fsm: apply entries %d..%d: %v", logs[0].Index, logs[len(logs)-1].Index, err))
	}
	if last != nil {
		f.appliedTerm.Store(last.Term)
		f.applied.Store(last.Index)
		if f.onApply != nil {
			f.onApply(last.Index)
		}
	}
}

// Snapshot pins a consistent view of the store, or for a store of at
// least SetMarkerSnapshots cases makes it durable and marks its applied
// index; Persist streams the one or writes the other.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	if f.markerCases > 0 {
		cases, err := f.store.CaseCount()
		if err != nil {
			return nil, fmt.Errorf("count cases for the snapshot: %w", err)
		}
		if cases >= f.markerCases {
			// raft compacts its log up to this point once the marker
			// is persisted: what it marks must be on disk.
			if err := f.store.Sync(); err != nil {
				return nil, fmt.Errorf("sync before a marker snapshot: %w", err)
			}
			return &marker{index: f.applied.Load(), term: f.appliedTerm.Load(), cases: cases, log: f.log}, nil
		}
	}
	sn, err := f.store.Snapshot()
	if err != nil {
		return nil, err
	}
	return &snapshot{sn: sn, log: f.log}, nil
}

// Restore replaces the store's content with a snapshot stream. A marker
// names state this store already holds: nothing is replaced, provided
// the store has applied at least what the marker says.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 64<<10)
	if index, _, ok, err := store.PeekMarker(br); err != nil {
		return fmt.Errorf("restore state: %w", err)
	} else if ok {
		applied, _, err := f.store.Applied()
		if err != nil {
			return fmt.Errorf("read applied index: %w", err)
		}
		if applied < index {
			return fmt.Errorf("restore state: %w: a marker of the state through entry %d, but the state store has applied only %d",
				store.ErrBadSnapshot, index, applied)
		}
		return nil
	}
	f.fed.reset()
	if err := f.store.Restore(br); err != nil {
		if errors.Is(err, store.ErrStateLost) {
			// Serving an empty or partial store would diverge from the
			// group; stop, and let the operator restart the replica
			// (raft then installs a snapshot again).
			f.log.Error("restore failed after dropping state", "error", err)
			panic(fmt.Sprintf("cityhub fsm: %v", err))
		}
		return fmt.Errorf("restore state: %w", err)
	}
	idx, term, err := f.store.Applied()
	if err != nil {
		return fmt.Errorf("read applied index after restore: %w", err)
	}
	f.appliedTerm.Store(term)
	f.applied.Store(idx)
	return nil
}

type snapshot struct {
	sn  *store.Snapshot
	log *slog.Logger
}

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	n, err := s.sn.WriteTo(sink)
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	s.log.Info("snapshot persisted", "id", sink.ID(), "bytes", n)
	return sink.Close()
}

func (s *snapshot) Release() { s.sn.Release() }

// marker is the snapshot of a store of at least SetMarkerSnapshots cases.
type marker struct {
	index, term, cases uint64
	log                *slog.Logger
}

func (m *marker) Persist(sink raft.SnapshotSink) error {
	if _, err := store.WriteMarker(sink, m.index, m.term); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist marker snapshot: %w", err)
	}
	m.log.Info("marker snapshot persisted: the state store is the snapshot", "id", sink.ID(), "applied", m.index, "cases", m.cases)
	return sink.Close()
}

func (m *marker) Release() {}
