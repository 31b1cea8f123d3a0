package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// ErrNotFound is returned when a case (or other record) does not exist.
var ErrNotFound = errors.New("not found")

// ErrIndexMoved is ViewRecords' answer to a reader of the in-memory
// indexes when a commit was applied between the start of its view and
// its first read of them: read again (View).
var ErrIndexMoved = errors.New("in-memory indexes moved on since the view began: read again")

// Options configure Open.
type Options struct {
	Dir    string
	Logger *slog.Logger
	// InMemory keeps everything in memory (tests and benchmarks only).
	InMemory bool
	// Feed bounds the change log (feed.go).
	Feed FeedOptions
	// Now times the rebuild of the in-memory case indexes (a metric; nil:
	// not timed). tiers/node passes its clock: the store, part of the
	// state machine, reads none itself.
	Now func() time.Time
}

// Store is the badger-backed state of one tier node.
type Store struct {
	db    *badger.DB
	log   *slog.Logger
	feed  FeedOptions
	stats atomic.Pointer[Stats] // nil until EnableStats
	// requests holds every stored request id (requests.go).
	requests atomic.Pointer[requestFilter]
	// counters holds the counters' committed values (countercache.go).
	counters counterCache
	// flowFloor is the first hour of the dashboard's flow kept, as
	// committed (flowfloor.go; noFloor: every hour).
	flowFloor atomic.Int64
	// near holds the newest entries of the nearby classes looked up
	// (nearcache.go).
	near nearCache
	// mem holds the case indexes and digests (memindex.go).
	mem memIndex
	// changeSink is given each commit's changes (OnChanges); feedHead is
	// the newest revision committed (feed.go).
	changeSink atomic.Pointer[func([]*pb.CaseChange)]
	feedHead   atomic.Uint64
	// nodesGen is NodesGeneration.
	nodesGen atomic.Uint64
	// now is Options.Now: it times the rebuild of mem (a metric), nil:
	// not timed. Never read by a transaction.
	now func() time.Time
	// gcMu orders value-log collection (RunGC) with Close and Restore;
	// closed: Close has run.
	gcMu   sync.Mutex
	closed bool
}

// Open opens (or creates) the store in opts.Dir.
func Open(opts Options) (*Store, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	bo := badgerOptions(opts.Dir).
		WithInMemory(opts.InMemory).
		WithLogger(badgerLogger{logger.With("component", "badger")})
	if opts.InMemory {
		// No value log in memory: badger refuses a value over the
		// threshold there, so keep its default (every value inline).
		bo.Dir, bo.ValueDir = "", ""
		bo = bo.WithValueThreshold(badger.DefaultOptions("").ValueThreshold)
	}
	db, err := openBadger(bo)
	if err != nil {
		return nil, fmt.Errorf("open state store %s: %w", opts.Dir, err)
	}
	s := &Store{db: db, log: logger, feed: opts.Feed, now: opts.Now}
	s.mem.publish(newMemTree(), newDigTree(), nil)
	err = s.dropStoredMemFamilies()
	if err == nil {
		err = s.loadFlowFloor()
	}
	if err == nil {
		err = s.buildMemIndex()
	}
	if err == nil {
		err = s.buildRequestFilter()
	}
	if err == nil {
		err = s.loadFeedHead()
	}
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open state store %s: %w", opts.Dir, err)
	}
	return s, nil
}

// valueThreshold is the size from which a value is kept in badger's
// value log rather than in the LSM tree: cases, not index entries or
// counters.
const valueThreshold = 256

// badgerOptions are the state store's badger options.
func badgerOptions(dir string) badger.Options {
	return badger.DefaultOptions(dir).
		// The Raft log is the durable record; the state machine is
		// synced before every snapshot (see Snapshot) and otherwise
		// replayed from the log after a crash.
		WithSyncWrites(false).
		WithLogger(nil).
		WithMemTableSize(32 << 20).
		// A create's keys spread over the whole key space (its case,
		// its audit and change records, its request record), so every
		// level-0 table overlaps nearly all of the base level, and a
		// level-0 compaction rewrites that level whole: with a million
		// cases stored, tens of MB a time on every replica. Twelve
		// tables before one (badger's default is five) rewrite it 2.4
		// times less often for the same writes (a third of the bytes
		// over 90 s points, at the same throughput); a point read looks
		// through up to twelve tables' bloom filters (BENCHMARKS.md,
		// 2026-12-06).
		WithNumLevelZeroTables(12).
		WithNumLevelZeroTablesStall(30).
		WithValueLogFileSize(64 << 20).
		// A case's value (most of what a create writes) goes to the
		// value log, and the LSM holds its key and a pointer: with a
		// million cases stored, compactions move pointers instead of
		// rewriting every case again and again (BENCHMARKS.md). The
		// node runs the value log's collection (RunGC).
		WithValueThreshold(valueThreshold).
		WithNumVersionsToKeep(1).
		// The FSM is the only writer: transactions cannot conflict, so
		// do not pay for tracking their reads.
		WithDetectConflicts(false).
		WithCompactL0OnClose(false)
}

// openBadger opens the database, turning a panic of badger's own (a
// damaged file it reads on the calling goroutine) into an error.
func openBadger(bo badger.Options) (db *badger.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: badger: %s", ErrDamaged, firstLine(fmt.Sprint(r)))
		}
	}()
	return badger.Open(bo)
}

// Close closes the store (after a value-log collection under way).
func (s *Store) Close() error {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	s.closed = true
	// The blocks of the tree's entries go back to the process.
	s.mem.replace(newMemTree(), newDigTree(), newObjTree(), nil)
	return s.db.Close()
}

// Sync makes every committed write durable.
func (s *Store) Sync() error { return s.db.Sync() }

// prepare runs fn in tx and writes what it leaves for the commit.
func (s *Store) prepare(tx *Tx, fn func(tx *Tx) error) error {
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.flushFeed(); err != nil {
		return err
	}
	if err := tx.trimFlow(); err != nil {
		return err
	}
	if err := tx.bumpLedger(); err != nil {
		return err
	}
	return tx.flushCounters()
}

// Update runs fn in one read-write transaction and commits it. The FSM is
// the only writer, so transactions never conflict.
func (s *Store) Update(fn func(tx *Tx) error) error {
	s.mem.writer.Lock()
	defer s.mem.writer.Unlock()
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	// Nothing left in the overlay by a transaction that panicked.
	s.mem.over.reset()
	// The committed tree and digests, which only this writer changes.
	tx := s.tx(txn, s.mem.tree, s.mem.dig.Copy(), true)
	tx.memHints, tx.memSlab, tx.memOver, tx.memIdx = &s.mem.hints, &s.mem.slab, &s.mem.over, &s.mem
	tx.counterCache = &s.counters
	floor := s.flowFloor.Load()
	tx.flow = flowState{floor: floor, target: floor, asked: noFloor}
	if err := s.prepare(tx, fn); err != nil {
		s.mem.abort()
		return err
	}
	if err := s.mem.commit(txn, tx.dig, tx.memDeltas, tx.dashDeltas()); err != nil {
		return fmt.Errorf("commit state: %w", err)
	}
	if len(tx.counterWrites) > 0 {
		s.counters.put(tx.counterWrites)
	}
	if tx.flow.moved {
		s.flowFloor.Store(tx.flow.floor)
	}
	if len(tx.nearChanges) > 0 {
		s.near.apply(tx.nearChanges)
	}
	if tx.nodesWritten {
		s.nodesGen.Add(1)
	}
	s.committedChanges(tx)
	return nil
}

// View runs fn in a read-only transaction.
func (s *Store) View(fn func(tx *Tx) error) error {
	txn, v := s.mem.view(s.db)
	defer txn.Discard()
	return fn(s.readTx(txn, v))
}

// readTx is a read transaction over txn and v's trees.
func (s *Store) readTx(txn *badger.Txn, v *memVersion) *Tx {
	tx := s.tx(txn, v.tree, v.dig, false)
	tx.memPin = v.pin
	return tx
}

// ViewRecords is View for a reader that mostly reads no case index,
// digest or dashboard list (the in-memory families, memindex.go): it
// takes no copy of their tree unless it reads one, so a commit after it
// changes the tree in place instead of copying the nodes it changes (the
// leader's precheck of every report). A transaction that reads one of
// them gets the tree of its view's moment if no commit has been applied
// since the view began; else that read finds nothing and ViewRecords
// returns ErrIndexMoved, whatever fn returned: the caller reads again
// with View, or leaves the decision to the state machine.
func (s *Store) ViewRecords(fn func(tx *Tx) error) error {
	// A copy a reader took since the last commit costs nothing more;
	// else the count before the view: a tree of that count is no newer
	// than the view, and holds every commit applied before it began.
	v := s.mem.cur.Load()
	var gen uint64
	if v == nil {
		gen = s.mem.commits.Load()
	}
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	if v != nil {
		return fn(s.readTx(txn, v))
	}
	tx := s.tx(txn, nil, nil, false)
	tx.memLazy, tx.memGen = &s.mem, gen
	if err := fn(tx); err != nil {
		return err
	}
	return tx.memErr
}

// IndexCopies counts the commits applied to the in-memory index tree and
// the copies of it readers took (metrics, tests).
func (s *Store) IndexCopies() (commits, copies uint64) {
	return s.mem.commits.Load(), s.mem.copies.Load()
}

// memReady takes a ViewRecords transaction's trees, at its first read of
// them (memErr: a commit was applied since it began).
func (tx *Tx) memReady() error {
	if tx.memLazy == nil || tx.mem != nil || tx.memErr != nil {
		return tx.memErr
	}
	m := tx.memLazy
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.commits.Load() != tx.memGen {
		tx.memErr = ErrIndexMoved
		return tx.memErr
	}
	v := m.loadLocked()
	tx.mem, tx.dig, tx.memPin = v.tree, v.dig, v.pin
	return nil
}

// viewDash is View whose dashboard counters are of the same commit as its
// other in-memory families (Dashboard: the counters and the overdue lists
// agree).
func (s *Store) viewDash(fn func(tx *Tx) error) error {
	txn, v, dash := s.mem.viewDash(s.db)
	defer txn.Discard()
	tx := s.readTx(txn, v)
	tx.dashView = dash
	return fn(tx)
}

// GetCase reads one case.
func (s *Store) GetCase(id string) (*pb.Case, error) {
	var c *pb.Case
	err := s.View(func(tx *Tx) (err error) {
		c, err = tx.GetCase(id)
		return err
	})
	return c, err
}

// Applied returns the last Raft index and term written to the store.
func (s *Store) Applied() (index, term uint64, err error) {
	err = s.View(func(tx *Tx) (err error) {
		index, term, err = tx.Applied()
		return err
	})
	return index, term, err
}

// NodesGeneration changes whenever the registered replicas (Nodes) may
// have changed: after a commit that wrote one, and a restore. Read it
// before Nodes to keep what Nodes returned until it changes.
func (s *Store) NodesGeneration() uint64 { return s.nodesGen.Load() }

// Nodes lists the registered replicas.
func (s *Store) Nodes() ([]*pb.NodeInfo, error) {
	var out []*pb.NodeInfo
	err := s.View(func(tx *Tx) error {
		it := tx.iterator(badger.IteratorOptions{Prefix: []byte(pfxNode), PrefetchValues: true, PrefetchSize: 16})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n := &pb.NodeInfo{}
			if err := it.Item().Value(func(v []byte) error { return proto.Unmarshal(v, n) }); err != nil {
				return fmt.Errorf("decode node %q: %w", it.Item().Key(), err)
			}
			out = append(out, n)
		}
		return nil
	})
	return out, err
}

// CountByState returns the number of cases in each state.
func (s *Store) CountByState() (map[pb.State]int64, error) {
	out := map[pb.State]int64{}
	err := s.View(func(tx *Tx) error {
		it := tx.iterator(badger.IteratorOptions{Prefix: []byte(pfxCount), PrefetchValues: true, PrefetchSize: 16})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var st int
			if _, err := fmt.Sscanf(string(it.Item().Key()[len(pfxCount):]), "%02d", &st); err != nil {
				return fmt.Errorf("decode count key %q: %w", it.Item().Key(), err)
			}
			if err := it.Item().Value(func(v []byte) error {
				if len(v) != 8 {
					return fmt.Errorf("count value of %d bytes", len(v))
				}
				out[pb.State(st)] = int64(binary.BigEndian.Uint64(v))
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// RunGC reclaims value-log space: the cases' values live in the value
// log (badgerOptions), and every new version of a case leaves the old one
// there as garbage. The node calls it now and then; it rewrites value-log
// files while at least half of one is garbage, and returns at once on a
// closed store.
func (s *Store) RunGC() {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	if s.closed {
		return
	}
	for s.db.RunValueLogGC(0.5) == nil {
	}
}

type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Error(fmt.Sprintf(f, a...)) }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warn(fmt.Sprintf(f, a...)) }
func (b badgerLogger) Infof(string, ...any)        {}
func (b badgerLogger) Debugf(string, ...any)       {}
