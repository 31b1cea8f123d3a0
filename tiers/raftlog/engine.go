package raftlog

import (
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// Engine names a Raft log implementation.
type Engine string

const (
	// EngineWAL is hashicorp/raft-wal: append-only segment files with one
	// fsync per append batch. The default: it is the faster of the two
	// (see BENCHMARKS.md).
	EngineWAL Engine = "wal"
	// EngineBadger is this package's Store on badger v4 with synced writes.
	EngineBadger Engine = "badger"
)

// Log is what raft needs of a log store, and Close.
type Log interface {
	raft.LogStore
	raft.StableStore
	io.Closer
}

// OpenEngine opens the log of the given engine in dir.
func OpenEngine(engine Engine, opts Options, hl hclog.Logger) (Log, error) {
	switch engine {
	case EngineWAL, "":
		if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
			return nil, fmt.Errorf("create raft log dir: %w", err)
		}
		// raft-wal's Close leaves its meta database open (and its file
		// lock held), so a replica could not reopen its log in the same
		// process; own the meta store and close it ourselves.
		meta := &metadb.BoltMetaDB{}
		w, err := wal.Open(opts.Dir, wal.WithLogger(hl), wal.WithMetaStore(meta))
		if err != nil {
			_ = meta.Close()
			return nil, fmt.Errorf("open raft-wal log in %s: %w", opts.Dir, err)
		}
		return &walLog{WAL: w, meta: meta}, nil
	case EngineBadger:
		return Open(opts)
	}
	return nil, fmt.Errorf("unknown raft log engine %q (want %q or %q)", engine, EngineWAL, EngineBadger)
}

type walLog struct {
	*wal.WAL
	meta *metadb.BoltMetaDB
}

func (w *walLog) Close() error {
	err := w.WAL.Close()
	if merr := w.meta.Close(); err == nil {
		err = merr
	}
	return err
}
