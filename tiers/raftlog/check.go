package raftlog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	rwfs "github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"
)

// ErrDamaged is returned when a file of the log cannot be read as it
// should: the message names the file.
var ErrDamaged = errors.New("raft log damaged")

// MetaFile is raft-wal's metadata database in the log directory: the list
// of segment files and raft's stable store (current term, vote).
const MetaFile = metadb.FileName

// openWAL opens raft-wal in opts.Dir. raft-wal deletes every segment file
// its metadata does not list, so a log whose metadata file is gone would
// silently become empty: refused first. A panic while reading (a damaged
// bolt file) becomes an error, and an error names the file it comes from.
func openWAL(opts Options, hl hclog.Logger) (l Log, err error) {
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("create raft log dir: %w", err)
	}
	metaPath := filepath.Join(opts.Dir, MetaFile)
	segs, err := segmentFiles(opts.Dir)
	if err != nil {
		return nil, err
	}
	switch _, err := os.Stat(metaPath); {
	case errors.Is(err, fs.ErrNotExist) && len(segs) > 0:
		return nil, fmt.Errorf("%w: %s is missing while %d segment file(s) remain (%s): the log's index, raft's term and vote are lost",
			ErrDamaged, metaPath, len(segs), filepath.Base(segs[0]))
	case err == nil:
		if err := checkBolt(metaPath); err != nil {
			return nil, err
		}
	}
	// raft-wal's Close leaves its meta database open (and its file lock
	// held), so a replica could not reopen its log in the same process;
	// own the meta store and close it ourselves.
	meta := &metadb.BoltMetaDB{}
	defer func() {
		if r := recover(); r != nil {
			_ = meta.Close()
			err = diagnose(opts.Dir, fmt.Errorf("panic: %v", r))
		}
	}()
	size := opts.SegmentSize
	if size <= 0 {
		size = wal.DefaultSegmentSize
	}
	w, err := wal.Open(opts.Dir, wal.WithLogger(hl), wal.WithMetaStore(meta), wal.WithSegmentSize(size))
	if err != nil {
		_ = meta.Close() // its file lock: diagnose opens the file again
		return nil, diagnose(opts.Dir, err)
	}
	return &walLog{WAL: w, meta: meta, dir: opts.Dir}, nil
}

// segmentFiles lists the segment files in dir, sorted (by first index).
func segmentFiles(dir string) ([]string, error) {
	es, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read raft log dir: %w", err)
	}
	var out []string
	for _, e := range es {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".wal") {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	slices.Sort(out)
	return out, nil
}

// diagnose names the file behind raft-wal's failure to open: the metadata
// file, a segment file it lists that is missing, or the first one that
// does not open; else the log directory.
func diagnose(dir string, cause error) error {
	metaPath := filepath.Join(dir, MetaFile)
	if strings.Contains(cause.Error(), MetaFile) || strings.Contains(cause.Error(), "bolt") {
		return fmt.Errorf("%w: %s: %v", ErrDamaged, metaPath, cause)
	}
	file, err := badSegment(dir)
	if err != nil {
		return fmt.Errorf("%w: %s: %v (and reading it: %v)", ErrDamaged, metaPath, cause, err)
	}
	if file == "" {
		file = dir
	}
	return fmt.Errorf("%w: %s: %v", ErrDamaged, file, cause)
}

func badSegment(dir string) (file string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	if err := checkBolt(filepath.Join(dir, MetaFile)); err != nil {
		return "", err
	}
	meta := &metadb.BoltMetaDB{}
	defer meta.Close()
	st, err := meta.Load(dir)
	if err != nil {
		return "", err
	}
	filer := segment.NewFiler(dir, rwfs.New())
	for i, si := range st.Segments {
		path := filepath.Join(dir, segment.FileName(si))
		if _, err := os.Stat(path); err != nil {
			return path, nil
		}
		if si.SealTime.IsZero() || i == len(st.Segments)-1 {
			return path, nil // the tail, which raft-wal recovers: the only one left
		}
		if r, err := openSealed(filer, si); err != nil {
			return path, nil
		} else {
			_ = r.Close()
		}
	}
	return "", nil
}

func openSealed(filer *segment.Filer, si types.SegmentInfo) (r types.SegmentReader, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return filer.Open(si)
}

// Verify reads every entry of the log, first to last, before raft relies
// on it: raft panics on an entry it cannot read (applying, or sending it
// to a follower), and retries forever on one it cannot send. An entry that
// does not read, or reads with another index, is reported as an error
// wrapping ErrDamaged naming its segment file. It also reads raft's
// current term from the stable store.
func Verify(l Log) (first, last uint64, err error) {
	if first, err = l.FirstIndex(); err != nil {
		return 0, 0, fmt.Errorf("%w: %s: first index: %v", ErrDamaged, fileOf(l, 0), err)
	}
	if last, err = l.LastIndex(); err != nil {
		return 0, 0, fmt.Errorf("%w: %s: last index: %v", ErrDamaged, fileOf(l, 0), err)
	}
	if _, err := l.GetUint64([]byte("CurrentTerm")); err != nil {
		return first, last, fmt.Errorf("%w: %s: raft's current term: %v", ErrDamaged, metaFileOf(l), err)
	}
	if last == 0 {
		return first, last, nil
	}
	var e raft.Log
	for i := first; i <= last; i++ {
		if err := getLog(l, i, &e); err != nil {
			return first, last, fmt.Errorf("%w: %s: entry %d of %d..%d: %v", ErrDamaged, fileOf(l, i), i, first, last, err)
		}
		if e.Index != i {
			return first, last, fmt.Errorf("%w: %s: entry %d reads as entry %d", ErrDamaged, fileOf(l, i), i, e.Index)
		}
	}
	return first, last, nil
}

func getLog(l Log, i uint64, e *raft.Log) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return l.GetLog(i, e)
}

// fileOf names the file that holds entry i (0: the log as a whole).
func fileOf(l Log, i uint64) string {
	switch l := l.(type) {
	case *walLog:
		if i == 0 {
			return l.dir
		}
		return segmentOf(l.dir, i)
	case *Store:
		return l.dir
	}
	return "raft log"
}

func metaFileOf(l Log) string {
	if w, ok := l.(*walLog); ok {
		return filepath.Join(w.dir, MetaFile)
	}
	return fileOf(l, 0)
}

// segmentOf is the segment file whose first index is the highest at or
// below i (raft-wal names them <first index>-<id>.wal).
func segmentOf(dir string, i uint64) string {
	segs, err := segmentFiles(dir)
	if err != nil || len(segs) == 0 {
		return dir
	}
	best := segs[0]
	for _, s := range segs {
		var base, id uint64
		if _, err := fmt.Sscanf(filepath.Base(s), "%020d-%016x.wal", &base, &id); err == nil && base <= i {
			best = s
		}
	}
	return best
}

// TailFile names the file holding the end of the log (the last segment of
// raft-wal), for messages about a log that ends too early.
func TailFile(l Log) string {
	if w, ok := l.(*walLog); ok {
		if segs, err := segmentFiles(w.dir); err == nil && len(segs) > 0 {
			return segs[len(segs)-1]
		}
	}
	return fileOf(l, 0)
}
