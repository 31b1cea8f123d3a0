package node

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"

	"github.com/cityhub/cityhub/tiers/store"
)

// sendPattern names the full streams made from the live store to send a
// follower (<data>/snapshots/send-*.tmp); one left by a crash is removed
// at the next start.
const sendPattern = "send-*.tmp"

// markedSnapshots is raft's snapshot store for a replica whose snapshots
// may be markers (fsm.SetMarkerSnapshots): Open, which raft calls to send
// a snapshot to a follower (and, with NoSnapshotRestoreOnStart, for
// nothing else), turns a marker into a full stream of the live store.
//
// That stream holds the state through the store's applied index at the
// time, which may be past the marker's: the follower restores it, raft
// then sends the entries after the marker, and the FSM skips the ones the
// store already holds, as it does when it replays its log after a
// restart.
type markedSnapshots struct {
	raft.SnapshotStore
	st  *store.Store
	dir string // where the streams to send are written
	log *slog.Logger
}

func (m *markedSnapshots) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := m.SnapshotStore.Open(id)
	if err != nil {
		return nil, nil, err
	}
	br := bufio.NewReaderSize(rc, 64<<10)
	index, _, ok, err := store.PeekMarker(br)
	if err != nil {
		_ = rc.Close()
		return nil, nil, fmt.Errorf("snapshot %s: %w", id, err)
	}
	if !ok {
		return meta, &readCloser{Reader: br, Closer: rc}, nil
	}
	_ = rc.Close()
	return m.stream(meta, index)
}

type readCloser struct {
	io.Reader
	io.Closer
}

// stream writes a full snapshot of the live store to a file beside the
// snapshots (raft sends a snapshot with its size first) and opens it; the
// file goes when it is closed.
func (m *markedSnapshots) stream(meta *raft.SnapshotMeta, index uint64) (*raft.SnapshotMeta, io.ReadCloser, error) {
	started := time.Now()
	sn, err := m.st.Snapshot()
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot %s: the state to send: %w", meta.ID, err)
	}
	defer sn.Release()
	applied, _, err := sn.Applied()
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot %s: %w", meta.ID, err)
	}
	if applied < index {
		return nil, nil, fmt.Errorf("snapshot %s marks the state through entry %d, but the state store has applied only %d", meta.ID, index, applied)
	}
	f, err := os.CreateTemp(m.dir, sendPattern)
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot %s: %w", meta.ID, err)
	}
	fail := func(err error) (*raft.SnapshotMeta, io.ReadCloser, error) {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return nil, nil, fmt.Errorf("snapshot %s: the state to send: %w", meta.ID, err)
	}
	size, err := sn.WriteTo(f)
	if err != nil {
		return fail(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fail(err)
	}
	full := *meta
	full.Size = size
	m.log.Info("streamed the state store for a follower (the snapshot is a marker)", "snapshot", meta.ID,
		"marker_index", index, "applied", applied, "bytes", size, "took", time.Since(started).Round(time.Millisecond))
	return &full, &removeOnClose{File: f}, nil
}

type removeOnClose struct{ *os.File }

func (r *removeOnClose) Close() error {
	return errors.Join(r.File.Close(), os.Remove(r.File.Name()))
}

// isMarker says whether the snapshot id in the replica's snapshot store is
// a marker (it cannot rebuild a state store).
func (n *Node) isMarker(id string) bool {
	ok, _ := markerFile(filepath.Join(n.cfg.DataDir, snapDir, "snapshots", id, "state.bin"))
	return ok
}

// markerFile says whether a snapshot's state.bin is a marker, and why a
// marker is damaged.
func markerFile(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, nil
	}
	defer f.Close()
	br := bufio.NewReader(f)
	if !store.LooksLikeMarker(br) {
		return false, nil
	}
	switch _, _, ok, err := store.PeekMarker(br); {
	case err != nil:
		return true, err
	case !ok:
		return true, errors.New("a marker of a version this release does not read")
	}
	return true, nil
}

// removeSendFiles removes the streams a crash left behind.
func (n *Node) removeSendFiles() {
	m, _ := filepath.Glob(filepath.Join(n.cfg.DataDir, snapDir, sendPattern))
	for _, p := range m {
		if err := os.Remove(p); err == nil {
			n.log.Info("removed a snapshot stream left by a crash", "file", p)
		}
	}
}
