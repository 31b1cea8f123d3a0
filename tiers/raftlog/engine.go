package raftlog

import (
	"fmt"
	"io"

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
		return openWAL(opts, hl)
	case EngineBadger:
		return Open(opts)
	}
	return nil, fmt.Errorf("unknown raft log engine %q (want %q or %q)", engine, EngineWAL, EngineBadger)
}

type walLog struct {
	*wal.WAL
	meta *metadb.BoltMetaDB
	dir  string
}

func (w *walLog) Close() error {
	err := w.WAL.Close()
	if merr := w.meta.Close(); err == nil {
		err = merr
	}
	return err
}
