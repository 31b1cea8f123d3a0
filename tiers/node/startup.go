package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/cityhub/cityhub/tiers/raftlog"
	"github.com/cityhub/cityhub/tiers/store"
)

// ErrDamaged is matched (errors.Is) by the error Open returns when a file
// the replica owns is damaged or missing and what it held cannot be
// rebuilt from its own snapshot and log: the replica refuses to start.
var ErrDamaged = errors.New("damaged replica data")

// Damage is Open's refusal to start on damaged data: Err names the file,
// WayOut says what the operator can do.
type Damage struct {
	Err    error
	WayOut string
}

func (d *Damage) Error() string {
	return fmt.Sprintf("refusing to start on damaged data: %v. %s", d.Err, d.WayOut)
}

func (d *Damage) Unwrap() error { return d.Err }

// Is makes errors.Is(err, ErrDamaged) hold.
func (d *Damage) Is(target error) bool { return target == ErrDamaged }

// wayOut is what the refusal tells the operator.
const wayOut = "The files are left as they are. Way out: in a group of 3 replicas, replace this replica's data from the others " +
	"with `cityhubd --config <this replica's file> --rejoin` (it moves the data directory's state, raft and snapshots aside, " +
	"and the leader adds the replica back and sends it a snapshot); a single replica: stop it and restore its data directory from a backup"

func refuse(err error) error { return &Damage{Err: err, WayOut: wayOut} }

// The replica's files under its data directory.
const (
	stateDir = "state"
	raftDir  = "raft"
	snapDir  = "snapshots"
)

// opened is what the start-up check found and left open.
type opened struct {
	first, last uint64 // the log's bounds (0, 0: empty)
	term        uint64 // raft's current term (stable store)
	snaps       *raft.FileSnapshotStore
	metas       []*raft.SnapshotMeta // usable snapshots, newest first
	damaged     bool                 // a snapshot was moved aside
}

// hasRaft says whether raft has any state on disk.
func (o *opened) hasRaft() bool { return o.last > 0 || len(o.metas) > 0 || o.term > 0 }

// start is the raft snapshot raft starts from (its "last applied"): with
// NoSnapshotRestoreOnStart it does not restore it, it only skips to it.
func (o *opened) start() uint64 {
	if len(o.metas) == 0 {
		return 0
	}
	return o.metas[0].Index
}

// checkAndOpen opens the raft log, the snapshots and the state store and
// makes sure that what raft will replay on start is exactly what the
// state store lacks:
//
//   - the log must read from its first entry to its last (raftlog.Verify);
//   - a snapshot whose files are damaged is moved aside;
//   - the state store must pass store.CheckFiles and store.Verify; a store
//     that is missing, damaged, or older than the latest snapshot is moved
//     aside and rebuilt from the latest snapshot (raft then replays the
//     log after it), when the log continues that snapshot;
//   - a store that has applied more than the log holds (the log lost its
//     end) is refused;
//   - when the log was compacted past the latest usable snapshot (the
//     snapshots are gone), a new snapshot is taken from the verified store
//     so raft does not start from entries it no longer has.
//
// Anything else is refused with an error wrapping ErrDamaged that names
// the file and the way out. Nothing is ever deleted: what is damaged is
// moved aside with a ".damaged-<time>" suffix.
func (n *Node) checkAndOpen() (*opened, error) {
	cfg := n.cfg
	o := &opened{}
	var err error
	logDir := filepath.Join(cfg.DataDir, raftDir)
	if n.logs, err = raftlog.OpenEngine(cfg.LogEngine, raftlog.Options{Dir: logDir, Logger: cfg.Logger.With("component", "raftlog"), SegmentSize: cfg.RaftSegmentSize}, n.hclog); err != nil {
		if errors.Is(err, raftlog.ErrDamaged) {
			return nil, refuse(err)
		}
		return nil, err
	}
	if o.first, o.last, err = raftlog.Verify(n.logs); err != nil {
		return nil, refuse(err)
	}
	if o.term, err = n.logs.GetUint64([]byte("CurrentTerm")); err != nil {
		return nil, refuse(fmt.Errorf("%s: raft's current term: %w", logDir, err))
	}
	if err := n.checkSnapshots(o); err != nil {
		return nil, err
	}
	if err := n.openState(o); err != nil {
		return nil, err
	}
	return o, nil
}

// checkSnapshots moves aside every snapshot whose meta.json does not read
// or whose state.bin is missing or of another size than meta.json says
// (raft would skip the first and fail on the second only when it sends
// it), then lists the usable ones. A snapshot's checksum is read whole
// when the state is restored from it.
func (n *Node) checkSnapshots(o *opened) error {
	// raft's file snapshot store keeps them in <base>/snapshots/<id>.
	dir := filepath.Join(n.cfg.DataDir, snapDir, "snapshots")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create snapshot dir: %w", err)
	}
	es, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read snapshot dir: %w", err)
	}
	for _, e := range es {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		if problem := snapshotProblem(filepath.Join(dir, e.Name())); problem != "" {
			n.moveSnapshotAside(o, e.Name(), problem)
		}
	}
	n.removeSendFiles()
	if o.snaps, err = raft.NewFileSnapshotStoreWithLogger(filepath.Dir(dir), SnapshotsRetained, n.hclog); err != nil {
		return fmt.Errorf("snapshot store: %w", err)
	}
	return n.listSnapshots(o)
}

func (n *Node) listSnapshots(o *opened) error {
	metas, err := o.snaps.List()
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	o.metas = metas
	return nil
}

func snapshotProblem(path string) string {
	b, err := os.ReadFile(filepath.Join(path, "meta.json"))
	if err != nil {
		return fmt.Sprintf("meta.json: %v", err)
	}
	var meta struct {
		raft.SnapshotMeta
		CRC []byte
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		return fmt.Sprintf("meta.json does not read: %v", err)
	}
	if meta.Index == 0 || len(meta.CRC) == 0 {
		return "meta.json names no index or checksum"
	}
	fi, err := os.Stat(filepath.Join(path, "state.bin"))
	if err != nil {
		return fmt.Sprintf("state.bin: %v", err)
	}
	if fi.Size() != meta.Size {
		return fmt.Sprintf("state.bin has %d bytes, meta.json says %d", fi.Size(), meta.Size)
	}
	if _, err := markerFile(filepath.Join(path, "state.bin")); err != nil {
		return fmt.Sprintf("state.bin: %v", err)
	}
	return ""
}

// moveSnapshotAside moves a damaged snapshot directory out of raft's way,
// to <data>/snapshots.damaged-<time>/<name>.
func (n *Node) moveSnapshotAside(o *opened, name, problem string) {
	from := filepath.Join(n.cfg.DataDir, snapDir, "snapshots", name)
	to := filepath.Join(n.cfg.DataDir, snapDir+".damaged-"+n.asideStamp, name)
	if err := os.MkdirAll(filepath.Dir(to), 0o750); err == nil {
		err = os.Rename(from, to)
	}
	n.log.Error("damaged snapshot moved aside", "snapshot", from, "problem", problem, "moved_to", to)
	o.damaged = true
}

// moveAside renames a file or directory of the data directory to
// <name>.<why>-<time> and returns the new path ("" when there was none).
func (n *Node) moveAside(name, why string) (string, error) {
	from := filepath.Join(n.cfg.DataDir, name)
	if _, err := os.Lstat(from); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	to := from + "." + why + "-" + n.asideStamp
	for i := 2; ; i++ {
		if _, err := os.Lstat(to); errors.Is(err, fs.ErrNotExist) {
			break
		}
		to = fmt.Sprintf("%s.%s-%s-%d", from, why, n.asideStamp, i)
	}
	if err := os.Rename(from, to); err != nil {
		return "", fmt.Errorf("move %s aside: %w", from, err)
	}
	return to, nil
}

// openState opens and verifies the state store, rebuilding it when it
// cannot be vouched for and the snapshot and the log allow, and takes a
// snapshot from it when raft would otherwise start from entries it no
// longer has.
func (n *Node) openState(o *opened) error {
	dir := filepath.Join(n.cfg.DataDir, stateDir)
	bad, err := n.openVerified(dir)
	if err != nil {
		return err
	}
	if bad == nil {
		idx, _, err := n.store.Applied()
		if err != nil {
			return err
		}
		switch {
		case !o.hasRaft() && idx > 0:
			return refuse(fmt.Errorf("%s: raft has no log, snapshot or term, but the state store has applied entry %d: the raft directory is gone",
				filepath.Join(n.cfg.DataDir, raftDir), idx))
		case !o.hasRaft():
			return nil // a new replica
		case o.term == 0:
			return refuse(fmt.Errorf("%s: raft's term and vote are missing while the state has applied entry %d and %d snapshots exist",
				filepath.Join(n.cfg.DataDir, raftDir, raftlog.MetaFile), idx, len(o.metas)))
		case idx > max(o.last, o.start()):
			return refuse(fmt.Errorf("%s: the raft log ends at entry %d (latest snapshot: %d) but the state store has applied entry %d: the log lost its end",
				raftlog.TailFile(n.logs), o.last, o.start(), idx))
		}
		behind, err := n.behindSnapshot(o, idx)
		if err != nil {
			return err
		}
		if !behind {
			return n.snapshotIfNeeded(o, idx)
		}
		bad = fmt.Errorf("%s: the state store has applied entry %d, older than the latest snapshot (%d)", dir, idx, o.start())
		_ = n.store.Close()
		n.store = nil
	}
	return n.rebuild(o, dir, bad)
}

// openVerified opens the store in dir after store.CheckFiles and runs
// store.Verify. It returns why the store cannot be used (nil: n.store is
// open and verified, possibly new and empty).
func (n *Node) openVerified(dir string) (bad error, err error) {
	files, err := store.CheckFiles(dir)
	if err != nil {
		if errors.Is(err, store.ErrDamaged) {
			return err, nil
		}
		return nil, err
	}
	// Badger deletes the tables its MANIFEST does not name when it opens:
	// keep them (hard links, a copy of the MANIFEST) until the content
	// has been verified.
	var kept string
	if len(files.Orphans) > 0 || files.TornManifest {
		if kept, err = n.keepFiles(dir); err != nil {
			return nil, err
		}
		n.log.Warn("state store has table files its MANIFEST does not name (a crash during compaction, or a damaged MANIFEST): kept them until its content is verified",
			"orphans", len(files.Orphans), "torn_manifest", files.TornManifest, "kept_in", kept)
	}
	started := time.Now()
	st, err := store.Open(store.Options{Dir: dir, Logger: n.cfg.Logger.With("component", "store"), Feed: n.cfg.Feed, Now: time.Now})
	if err != nil {
		if errors.Is(err, store.ErrDamaged) || files.Exists {
			return n.keptIs(kept, fmt.Errorf("%s: %w", dir, err)), nil
		}
		return nil, err
	}
	if n.cfg.SkipVerify {
		n.log.Warn("state store opened without verifying its records (node.verify_state: false)", "dir", dir)
		if kept != "" {
			_ = os.RemoveAll(kept)
		}
		n.store = st
		return nil, nil
	}
	rep, err := st.Verify(store.VerifyOptions{IDPrefix: n.cfg.Jurisdiction})
	if err != nil {
		_ = st.Close()
		return n.keptIs(kept, fmt.Errorf("%s: %w", dir, err)), nil
	}
	if kept != "" {
		_ = os.RemoveAll(kept)
	}
	n.store = st
	n.log.Info("state store verified", "dir", dir, "cases", rep.Cases, "requests", rep.Requests, "keys", rep.Keys,
		"applied", rep.Applied, "took", time.Since(started).Round(time.Millisecond))
	return nil, nil
}

// keptIs turns the files kept before opening a store that then failed
// into the evidence: they are the store as it was found.
func (n *Node) keptIs(kept string, bad error) error {
	if kept != "" {
		n.keptBeforeOpen = kept
	}
	return bad
}

// keepFiles hard-links every file of the store directory (a copy for the
// MANIFEST and the value and memtable logs, which badger may rewrite in
// place) into <state>.damaged-<time>, and returns it.
func (n *Node) keepFiles(dir string) (string, error) {
	to := dir + ".damaged-" + n.asideStamp
	if err := os.MkdirAll(to, 0o750); err != nil {
		return "", fmt.Errorf("keep state files: %w", err)
	}
	es, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("keep state files: %w", err)
	}
	for _, e := range es {
		if e.IsDir() {
			continue
		}
		from, dst := filepath.Join(dir, e.Name()), filepath.Join(to, e.Name())
		if strings.HasSuffix(e.Name(), ".sst") {
			if err := os.Link(from, dst); err == nil {
				continue
			}
		}
		if err := copyFile(from, dst); err != nil {
			return "", fmt.Errorf("keep state files: %w", err)
		}
	}
	return to, nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// behindSnapshot says whether the store (applied through idx) lacks
// commands raft will not replay: raft starts after the latest snapshot,
// so the entries between idx and it must hold no command.
func (n *Node) behindSnapshot(o *opened, idx uint64) (bool, error) {
	start := o.start()
	if idx >= start {
		return false, nil
	}
	if o.first == 0 || idx+1 < o.first || start > o.last {
		return true, nil // those entries are only in the snapshot
	}
	var e raft.Log
	for i := idx + 1; i <= start; i++ {
		if err := n.logs.GetLog(i, &e); err != nil {
			return false, refuse(fmt.Errorf("%s: entry %d: %w", filepath.Join(n.cfg.DataDir, raftDir), i, err))
		}
		if e.Type == raft.LogCommand {
			return true, nil
		}
	}
	return false, nil
}

// rebuild moves the unusable store aside and restores the latest usable
// snapshot into a new one (raft then replays the log after it). It
// refuses when no snapshot is continued by the log.
func (n *Node) rebuild(o *opened, dir string, bad error) error {
	if !o.hasRaft() {
		if _, err := os.Stat(dir); err == nil {
			return refuse(fmt.Errorf("%w; raft has no log, snapshot or term to rebuild it from (%s)", bad, filepath.Join(n.cfg.DataDir, raftDir)))
		}
	}
	for {
		meta := n.rebuildFrom(o)
		if meta == nil && !(len(o.metas) == 0 && o.first <= 1) {
			why := ""
			if len(o.metas) > 0 && n.isMarker(o.metas[0].ID) {
				why = "; the latest snapshot is a marker, which holds no copy of the state (taken by a store of raft.marker_snapshot_cases or more)"
			}
			return refuse(fmt.Errorf("%w; it cannot be rebuilt here: the raft log starts at entry %d and no usable snapshot reaches it (%d left%s)",
				bad, o.first, len(o.metas), why))
		}
		moved, err := n.moveAside(stateDir, "damaged")
		if err != nil {
			return err
		}
		if n.keptBeforeOpen != "" && moved != "" {
			// The files as they were found are the evidence; the
			// directory badger opened goes beside them.
			if err := os.Rename(moved, n.keptBeforeOpen+".opened"); err == nil {
				moved = n.keptBeforeOpen
			}
			n.keptBeforeOpen = ""
		}
		n.log.Error("state store cannot be vouched for: rebuilding it from the latest snapshot and the raft log",
			"problem", bad, "moved_to", moved, "snapshot", snapshotID(meta), "log_first", o.first, "log_last", o.last)
		st, err := store.Open(store.Options{Dir: dir, Logger: n.cfg.Logger.With("component", "store"), Feed: n.cfg.Feed, Now: time.Now})
		if err != nil {
			return fmt.Errorf("open a new state store in %s: %w", dir, err)
		}
		n.store = st
		if meta == nil {
			return nil // raft replays the whole log
		}
		err = n.restore(o, meta)
		if err == nil {
			return nil
		}
		_ = n.store.Close()
		n.store = nil
		if !errors.Is(err, errSnapshotDamaged) {
			return err
		}
		n.moveSnapshotAside(o, meta.ID, err.Error())
		if err := n.listSnapshots(o); err != nil {
			return err
		}
		bad = fmt.Errorf("%w (and snapshot %s is damaged)", bad, meta.ID)
	}
}

// rebuildFrom is the newest full snapshot the log continues (nil: none).
// A marker holds no state to rebuild from.
func (n *Node) rebuildFrom(o *opened) *raft.SnapshotMeta {
	for _, m := range o.metas {
		if n.isMarker(m.ID) {
			continue
		}
		if o.last == 0 || o.last <= m.Index || o.first <= m.Index+1 {
			return m
		}
	}
	return nil
}

var errSnapshotDamaged = errors.New("snapshot damaged")

// restore fills the (new, empty) store from a snapshot: raft's store
// checks the file's CRC-64, the stream its own CRC-32C; the result is
// verified like any store.
func (n *Node) restore(o *opened, meta *raft.SnapshotMeta) error {
	_, rc, err := o.snaps.Open(meta.ID)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", errSnapshotDamaged, meta.ID, err)
	}
	defer rc.Close()
	if err := n.store.Restore(rc); err != nil {
		return fmt.Errorf("%w: %s: %v", errSnapshotDamaged, meta.ID, err)
	}
	if _, err := n.store.Verify(store.VerifyOptions{IDPrefix: n.cfg.Jurisdiction}); err != nil {
		return fmt.Errorf("%w: %s: restored state: %v", errSnapshotDamaged, meta.ID, err)
	}
	// The next snapshots (raft's) keep this one's term and index.
	n.log.Info("state store rebuilt from snapshot; raft replays the log after it", "snapshot", meta.ID, "index", meta.Index)
	return nil
}

func snapshotID(m *raft.SnapshotMeta) string {
	if m == nil {
		return "(none: the whole log)"
	}
	return m.ID
}

// snapshotIfNeeded takes a snapshot of the verified store (applied through
// idx) when raft would start from a snapshot the log does not continue
// (the snapshots are gone or damaged while the log was compacted past
// them), or when a damaged snapshot was moved aside (so the group has a
// good one to send).
func (n *Node) snapshotIfNeeded(o *opened, idx uint64) error {
	start := o.start()
	gap := o.last > 0 && o.first > start+1
	if !gap && !o.damaged {
		return nil
	}
	if idx < start || (o.last > 0 && idx+1 < o.first) {
		if !gap {
			return nil
		}
		return refuse(fmt.Errorf("%s: the raft log starts at entry %d, the latest usable snapshot is at %d and the state store has applied only entry %d",
			filepath.Join(n.cfg.DataDir, snapDir), o.first, start, idx))
	}
	if idx == 0 {
		return nil
	}
	if err := n.snapshotFromStore(o, idx); err != nil {
		if !gap {
			n.log.Warn("could not replace the damaged snapshot (raft takes the next one)", "error", err)
			return nil
		}
		return refuse(fmt.Errorf("%s: the raft log starts at entry %d and no usable snapshot reaches it; a new one from the state store failed: %w",
			filepath.Join(n.cfg.DataDir, snapDir), o.first, err))
	}
	return n.listSnapshots(o)
}

// snapshotFromStore writes a raft snapshot of the store at its applied
// index, with the raft configuration in force there.
func (n *Node) snapshotFromStore(o *opened, idx uint64) error {
	_, term, err := n.store.Applied()
	if err != nil {
		return err
	}
	conf, confIdx, err := n.configurationAt(o, idx)
	if err != nil {
		return err
	}
	_, trans := raft.NewInmemTransport("")
	sink, err := o.snaps.Create(raft.SnapshotVersionMax, idx, term, conf, confIdx, trans)
	if err != nil {
		return err
	}
	sn, err := n.store.Snapshot()
	if err != nil {
		_ = sink.Cancel()
		return err
	}
	defer sn.Release()
	if _, err := sn.WriteTo(sink); err != nil {
		_ = sink.Cancel()
		return err
	}
	if err := sink.Close(); err != nil {
		return err
	}
	n.log.Warn("took a snapshot from the verified state store: the log was compacted past every usable snapshot, or one was damaged",
		"snapshot", sink.ID(), "index", idx, "configuration_index", confIdx, "servers", len(conf.Servers))
	return nil
}

// configurationAt finds the raft configuration in force at idx: the last
// configuration entry at or below it in the log, the one the state store
// recorded, or the latest snapshot's, whichever is newest.
func (n *Node) configurationAt(o *opened, idx uint64) (raft.Configuration, uint64, error) {
	var (
		best    raft.Configuration
		bestIdx uint64
	)
	if ci, enc, err := n.store.Configuration(); err == nil && ci > 0 && ci <= idx {
		if c, ok := decodeConfiguration(enc); ok {
			best, bestIdx = c, ci
		}
	}
	if len(o.metas) > 0 && o.metas[0].ConfigurationIndex <= idx && o.metas[0].ConfigurationIndex > bestIdx {
		best, bestIdx = o.metas[0].Configuration, o.metas[0].ConfigurationIndex
	}
	if o.last > 0 {
		var e raft.Log
		for i := min(idx, o.last); i >= o.first && i > bestIdx; i-- {
			if err := n.logs.GetLog(i, &e); err == nil && e.Type == raft.LogConfiguration {
				if c, ok := decodeConfiguration(e.Data); ok {
					best, bestIdx = c, i
				}
				break
			}
		}
	}
	if bestIdx == 0 || len(best.Servers) == 0 {
		return best, 0, errors.New("no raft configuration is known at that index (log, state store and snapshots)")
	}
	return best, bestIdx, nil
}

// decodeConfiguration is raft.DecodeConfiguration, which panics on bytes
// it cannot decode.
func decodeConfiguration(b []byte) (c raft.Configuration, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return raft.DecodeConfiguration(b), true
}

// moveAllAside moves the state store, the raft log and the snapshots to
// <name>.rejoin-<time> (Config.Rejoin): the replica starts empty and the
// group's leader sends it a snapshot.
func (n *Node) moveAllAside() error {
	for _, d := range []string{stateDir, raftDir, snapDir} {
		to, err := n.moveAside(d, "rejoin")
		if err != nil {
			return err
		}
		if to != "" {
			n.log.Warn("rejoin: moved this replica's data aside", "from", filepath.Join(n.cfg.DataDir, d), "to", to)
		}
	}
	return nil
}
