// Package raftlog is a durable hashicorp/raft LogStore and StableStore backed
// by badger v4. See DESIGN.md for the rationale, durability guarantees and the
// on-disk key layout.
package raftlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/hashicorp/raft"
)

// Defaults used by Open for zero-valued Options fields.
const (
	DefaultMemTableSize     int64 = 64 << 20
	DefaultValueLogFileSize int64 = 64 << 20
	DefaultNumMemtables           = 3
	DefaultBlockCacheSize   int64 = 8 << 20
)

// deleteChunk bounds how many keys DeleteRange removes per transaction.
const deleteChunk = 8192

var (
	// ErrKeyNotFound is returned by Get for a missing stable-store key. Its
	// text is exactly "not found", which is what hashicorp/raft compares
	// against (err.Error() != "not found") to tell "missing" from "broken",
	// and what raft's own InmemStore and raft-boltdb return.
	ErrKeyNotFound = errors.New("not found")

	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("raftlog: store is closed")
)

// Prefixes of the two key spaces; see DESIGN.md.
const (
	prefixLog    byte = 'l'
	prefixStable byte = 's'
)

// Options configures Open.
type Options struct {
	// Dir is the badger directory (holds both LSM tables and value log). Required.
	Dir string
	// Logger receives badger's warnings and errors. Defaults to slog.Default().
	Logger *slog.Logger
	// MemTableSize is badger's memtable size; it also bounds how much a single
	// transaction can hold (15% of it). Defaults to DefaultMemTableSize.
	MemTableSize int64
	// ValueLogFileSize is the size of each value-log segment; it is also the
	// hard upper bound on the size of one encoded log entry. Defaults to
	// DefaultValueLogFileSize.
	ValueLogFileSize int64
	// NumMemtables is the number of memtables badger keeps in memory before
	// stalling writes. Defaults to DefaultNumMemtables.
	NumMemtables int
	// BlockCacheSize is badger's block cache size. Defaults to DefaultBlockCacheSize.
	BlockCacheSize int64
	// SegmentSize is the size of raft-wal's segment files (engine wal
	// only); 0 is raft-wal's default, 64 MiB.
	SegmentSize int
}

// Store is a raft.LogStore and raft.StableStore persisted in badger.
// All methods are safe for concurrent use.
type Store struct {
	db     *badger.DB
	logger *slog.Logger
	dir    string

	// writeMu serialises mutations of the log key space so that the cached
	// first/last indexes always describe what is on disk.
	writeMu sync.Mutex
	first   atomic.Uint64
	last    atomic.Uint64

	// closeMu is held for reading by every operation and for writing by Close,
	// so no operation ever touches a closed badger DB.
	closeMu sync.RWMutex
	closed  bool
}

var (
	_ raft.LogStore    = (*Store)(nil)
	_ raft.StableStore = (*Store)(nil)
)

// Open opens (creating if needed) the store in opts.Dir. Writes are
// synchronous: every StoreLogs batch and every Set is fsynced before it
// returns.
func Open(opts Options) (*Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("raftlog: Options.Dir is required")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if opts.MemTableSize <= 0 {
		opts.MemTableSize = DefaultMemTableSize
	}
	if opts.ValueLogFileSize <= 0 {
		opts.ValueLogFileSize = DefaultValueLogFileSize
	}
	if opts.NumMemtables <= 0 {
		opts.NumMemtables = DefaultNumMemtables
	}
	if opts.BlockCacheSize <= 0 {
		opts.BlockCacheSize = DefaultBlockCacheSize
	}

	// Values at or above the threshold go to the value log, smaller ones are
	// stored inline in the LSM tree. badger refuses thresholds above the
	// per-transaction size limit (15% of the memtable), so clamp it for small
	// memtables.
	valueThreshold := int64(1 << 20)
	if limit := opts.MemTableSize * 15 / 100 / 2; valueThreshold > limit {
		valueThreshold = limit
	}

	bopts := badger.DefaultOptions(opts.Dir).
		WithSyncWrites(true).
		WithLogger(badgerLogger{l: logger}).
		WithMemTableSize(opts.MemTableSize).
		WithValueLogFileSize(opts.ValueLogFileSize).
		WithNumMemtables(opts.NumMemtables).
		WithValueThreshold(valueThreshold).
		WithBlockCacheSize(opts.BlockCacheSize).
		// Raft payloads are usually already compact (or compressed by the
		// application); skip compression to keep the write path cheap.
		WithCompression(options.None).
		// All writes are serialised by writeMu (logs) or are single-key (stable),
		// so optimistic conflict detection is pure overhead.
		WithDetectConflicts(false).
		WithNumCompactors(2).
		WithMetricsEnabled(false)

	db, err := badger.Open(bopts)
	if err != nil {
		return nil, fmt.Errorf("raftlog: open badger in %q: %w", opts.Dir, err)
	}
	s := &Store{db: db, logger: logger, dir: opts.Dir}
	first, err := s.seekFirst(0)
	if err == nil {
		var last uint64
		last, err = s.seekLast(math.MaxUint64)
		s.first.Store(first)
		s.last.Store(last)
	}
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("raftlog: load log bounds: %w", err)
	}
	return s, nil
}

// Close closes the underlying database. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.db.Close()
}

// acquire takes the read side of closeMu; callers must call s.release().
func (s *Store) acquire() error {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	return nil
}

func (s *Store) release() { s.closeMu.RUnlock() }

// ---------------------------------------------------------------------------
// raft.LogStore

func logKey(index uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixLog
	binary.BigEndian.PutUint64(k[1:], index)
	return k
}

func parseLogKey(k []byte) (uint64, error) {
	if len(k) != 9 || k[0] != prefixLog {
		return 0, fmt.Errorf("raftlog: malformed log key %x", k)
	}
	return binary.BigEndian.Uint64(k[1:]), nil
}

// FirstIndex returns the first index written, or 0 for an empty log.
func (s *Store) FirstIndex() (uint64, error) {
	if err := s.acquire(); err != nil {
		return 0, err
	}
	defer s.release()
	return s.first.Load(), nil
}

// LastIndex returns the last index written, or 0 for an empty log.
func (s *Store) LastIndex() (uint64, error) {
	if err := s.acquire(); err != nil {
		return 0, err
	}
	defer s.release()
	return s.last.Load(), nil
}

// GetLog reads the entry at index into *log. It returns raft.ErrLogNotFound
// if there is no such entry.
func (s *Store) GetLog(index uint64, log *raft.Log) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(logKey(index))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { return decodeLog(v, log) })
	})
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return raft.ErrLogNotFound
	case err != nil:
		return fmt.Errorf("raftlog: get log %d: %w", index, err)
	case log.Index != index:
		return fmt.Errorf("raftlog: get log %d: %w: entry claims index %d", index, ErrCorrupt, log.Index)
	}
	return nil
}

// StoreLog stores a single entry.
func (s *Store) StoreLog(log *raft.Log) error {
	return s.StoreLogs([]*raft.Log{log})
}

// StoreLogs stores a batch of entries in one badger transaction, i.e. with a
// single fsync. If the batch is too large for one transaction
// (badger.ErrTxnTooBig) it is split into several transactions committed
// synchronously one after another in slice order; each is fsynced before the
// next starts, so a crash can only lose a suffix of the batch, never leave a
// hole in the log.
func (s *Store) StoreLogs(logs []*raft.Log) (err error) {
	if len(logs) == 0 {
		return nil
	}
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()

	entries := make([]*badger.Entry, len(logs))
	for i, l := range logs {
		entries[i] = badger.NewEntry(logKey(l.Index), encodeLog(l))
	}

	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	defer func() {
		if err != nil {
			s.reloadBounds() // a commit may have failed after reaching disk
		}
	}()

	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	start := 0 // first index into logs covered by txn
	for i, e := range entries {
		err := txn.SetEntry(e)
		if errors.Is(err, badger.ErrTxnTooBig) && i > start {
			if err := txn.Commit(); err != nil {
				return fmt.Errorf("raftlog: store logs: commit partial batch: %w", err)
			}
			s.noteStored(logs[start:i])
			txn = s.db.NewTransaction(true)
			start = i
			err = txn.SetEntry(e)
		}
		if err != nil {
			return fmt.Errorf("raftlog: store log %d (%d bytes encoded): %w", logs[i].Index, len(e.Value), err)
		}
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("raftlog: store logs: commit: %w", err)
	}
	s.noteStored(logs[start:])
	return nil
}

// noteStored widens the cached bounds after logs were durably written.
// Caller holds writeMu.
func (s *Store) noteStored(logs []*raft.Log) {
	if len(logs) == 0 {
		return
	}
	lo, hi := logs[0].Index, logs[0].Index
	for _, l := range logs[1:] {
		lo = min(lo, l.Index)
		hi = max(hi, l.Index)
	}
	if f := s.first.Load(); f == 0 || lo < f {
		s.first.Store(lo)
	}
	if hi > s.last.Load() {
		s.last.Store(hi)
	}
}

// DeleteRange deletes all entries with minIdx <= index <= maxIdx.
//
// Large ranges are deleted in chunks of bounded transactions. When the range
// reaches the end of the log (conflict truncation) chunks are deleted from
// the top down, otherwise (log compaction) from the bottom up, so that a
// crash part-way through always leaves a contiguous log.
func (s *Store) DeleteRange(minIdx, maxIdx uint64) (err error) {
	if minIdx > maxIdx {
		return nil
	}
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	defer func() {
		if err != nil {
			err = fmt.Errorf("raftlog: delete range [%d,%d]: %w", minIdx, maxIdx, err)
			s.reloadBounds() // some chunks may have been deleted
		}
	}()

	first, last := s.first.Load(), s.last.Load()
	if last == 0 || maxIdx < first || minIdx > last {
		return nil // nothing stored in range
	}
	lo, hi := minIdx, maxIdx
	reverse := maxIdx >= last
	for lo <= hi {
		keys, err := s.collectLogKeys(lo, hi, reverse, deleteChunk)
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			break
		}
		if err := s.deleteKeys(keys); err != nil {
			return err
		}
		if len(keys) < deleteChunk {
			break
		}
		edge, err := parseLogKey(keys[len(keys)-1])
		if err != nil {
			return err
		}
		if reverse {
			if edge == 0 {
				break
			}
			hi = edge - 1
		} else {
			if edge == math.MaxUint64 {
				break
			}
			lo = edge + 1
		}
	}

	// Recompute the bounds that may have moved. Seeking from just past the
	// deleted range avoids scanning the fresh tombstones.
	if minIdx <= first {
		first = 0
		if maxIdx < math.MaxUint64 {
			if first, err = s.seekFirst(maxIdx + 1); err != nil {
				return fmt.Errorf("reload first index: %w", err)
			}
		}
	}
	if maxIdx >= last {
		last = 0
		if minIdx > 0 {
			if last, err = s.seekLast(minIdx - 1); err != nil {
				return fmt.Errorf("reload last index: %w", err)
			}
		}
	}
	if first == 0 || last == 0 || first > last {
		first, last = 0, 0
	}
	s.first.Store(first)
	s.last.Store(last)
	return nil
}

// reloadBounds re-reads first/last index from disk after a failed mutation
// left the cache possibly stale. Caller holds writeMu.
func (s *Store) reloadBounds() {
	first, err := s.seekFirst(0)
	if err == nil {
		var last uint64
		if last, err = s.seekLast(math.MaxUint64); err == nil {
			s.first.Store(first)
			s.last.Store(last)
			return
		}
	}
	s.logger.Error("cannot reload log bounds after failed write", "err", err)
}

// collectLogKeys returns up to limit existing log keys within [lo, hi], in
// ascending order, or descending if reverse.
func (s *Store) collectLogKeys(lo, hi uint64, reverse bool, limit int) ([][]byte, error) {
	var keys [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{
			PrefetchValues: false,
			Reverse:        reverse,
			Prefix:         []byte{prefixLog},
		})
		defer it.Close()
		start := logKey(lo)
		if reverse {
			start = logKey(hi)
		}
		for it.Seek(start); it.Valid() && len(keys) < limit; it.Next() {
			k := it.Item().KeyCopy(nil)
			idx, err := parseLogKey(k)
			if err != nil {
				return err
			}
			if idx < lo || idx > hi {
				break
			}
			keys = append(keys, k)
		}
		return nil
	})
	return keys, err
}

// deleteKeys deletes keys, in order, in as few synchronous transactions as
// badger allows.
func (s *Store) deleteKeys(keys [][]byte) error {
	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	n := 0
	for _, k := range keys {
		err := txn.Delete(k)
		if errors.Is(err, badger.ErrTxnTooBig) && n > 0 {
			if err := txn.Commit(); err != nil {
				return err
			}
			txn = s.db.NewTransaction(true)
			n = 0
			err = txn.Delete(k)
		}
		if err != nil {
			return err
		}
		n++
	}
	return txn.Commit()
}

// seekFirst returns the smallest stored log index >= from, or 0 if none.
func (s *Store) seekFirst(from uint64) (uint64, error) {
	return s.seek(logKey(from), false)
}

// seekLast returns the largest stored log index <= from, or 0 if none.
func (s *Store) seekLast(from uint64) (uint64, error) {
	return s.seek(logKey(from), true)
}

func (s *Store) seek(start []byte, reverse bool) (uint64, error) {
	var idx uint64
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{
			PrefetchValues: false,
			Reverse:        reverse,
			Prefix:         []byte{prefixLog},
		})
		defer it.Close()
		it.Seek(start)
		if !it.Valid() {
			return nil
		}
		var err error
		idx, err = parseLogKey(it.Item().Key())
		return err
	})
	return idx, err
}

// ---------------------------------------------------------------------------
// raft.StableStore
//
// Set/Get and SetUint64/GetUint64 share one key space (as in raft-boltdb and
// raft-wal); GetUint64 on a key written with Set of a non-8-byte value fails.

func stableKey(k []byte) []byte {
	out := make([]byte, 1+len(k))
	out[0] = prefixStable
	copy(out[1:], k)
	return out
}

// Set durably stores val under key. As with raft's InmemStore, storing a nil
// value makes the key read back as missing (it is deleted); an empty non-nil
// value is stored and read back as an empty slice.
func (s *Store) Set(key, val []byte) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	k := stableKey(key)
	var v []byte
	if val != nil {
		v = append([]byte{}, val...) // badger keeps a reference until commit
	}
	err := s.db.Update(func(txn *badger.Txn) error {
		if v == nil {
			return txn.Delete(k)
		}
		return txn.Set(k, v)
	})
	if err != nil {
		return fmt.Errorf("raftlog: set %q: %w", key, err)
	}
	return nil
}

// Get returns the value stored under key. Like raft's InmemStore and
// raft-boltdb, a missing key yields (nil, ErrKeyNotFound), whose text is
// "not found" — the string hashicorp/raft checks for.
func (s *Store) Get(key []byte) ([]byte, error) {
	if err := s.acquire(); err != nil {
		return nil, err
	}
	defer s.release()
	var out []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(stableKey(key))
		if err != nil {
			return err
		}
		out, err = item.ValueCopy(nil)
		if out == nil {
			out = []byte{}
		}
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("raftlog: get %q: %w", key, err)
	}
	return out, nil
}

// SetUint64 durably stores val (8 bytes, big-endian) under key.
func (s *Store) SetUint64(key []byte, val uint64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], val)
	return s.Set(key, b[:])
}

// GetUint64 returns the uint64 stored under key. Like raft's InmemStore (and
// the raft.StableStore contract), a missing key yields (0, nil).
func (s *Store) GetUint64(key []byte) (uint64, error) {
	b, err := s.Get(key)
	if errors.Is(err, ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("raftlog: get uint64 %q: value is %d bytes, want 8", key, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// ---------------------------------------------------------------------------
// Maintenance

// RunGC runs badger value-log garbage collection every interval until ctx is
// done or the store is closed. Each round calls RunValueLogGC(0.5) repeatedly
// until it reports an error (normally badger.ErrNoRewrite: nothing left worth
// rewriting). It blocks; run it in its own goroutine.
func (s *Store) RunGC(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = 5 * time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for ctx.Err() == nil {
			err := s.gcOnce()
			if errors.Is(err, ErrClosed) {
				return
			}
			if err != nil {
				if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
					s.logger.Warn("value log GC failed", "err", err)
				}
				break
			}
		}
	}
}

func (s *Store) gcOnce() error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	return s.db.RunValueLogGC(0.5)
}

// badgerLogger routes badger's log output to slog. Only warnings and errors
// are forwarded at their own level; badger's (chatty) info and debug output
// is demoted to slog debug, so it is invisible at the usual info level.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) log(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if !b.l.Enabled(ctx, level) {
		return
	}
	b.l.Log(ctx, level, strings.TrimSpace(fmt.Sprintf(format, args...)), "engine", "badger")
}

func (b badgerLogger) Errorf(f string, a ...any)   { b.log(slog.LevelError, f, a) }
func (b badgerLogger) Warningf(f string, a ...any) { b.log(slog.LevelWarn, f, a) }
func (b badgerLogger) Infof(f string, a ...any)    { b.log(slog.LevelDebug, f, a) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.log(slog.LevelDebug-4, f, a) }
