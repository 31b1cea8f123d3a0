package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/node"
	"github.com/cityhub/cityhub/tiers/raftlog"
	"github.com/cityhub/cityhub/tiers/store"
)

// Member is one replica of the new group: its raft id and raft address.
type Member struct{ ID, RaftAddr string }

// ParseCluster reads "id=raftaddr,id=raftaddr,...".
func ParseCluster(s string) ([]Member, error) {
	var out []Member
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, addr, ok := strings.Cut(part, "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("%q: want id=raft-address", part)
		}
		if slices.ContainsFunc(out, func(m Member) bool { return m.ID == id }) {
			return nil, fmt.Errorf("%q: id %s named twice", part, id)
		}
		out = append(out, Member{ID: id, RaftAddr: addr})
	}
	if len(out) == 0 {
		return nil, errors.New("no member")
	}
	return out, nil
}

// RestoreOptions say what to build.
type RestoreOptions struct {
	// File is the backup; DataDir the new replica's data directory (must
	// not hold a replica's state yet).
	File, DataDir string
	// Name is this replica's raft id, one of Cluster's.
	Name    string
	Cluster []Member
	// LogEngine is the raft log engine the replica runs (raft.log_engine).
	LogEngine raftlog.Engine
	// NoCatchUp lets the restored group take writes at once instead of
	// waiting to catch up with its federation neighbours (federation/
	// DESIGN.md, "After a restore"): ids given out after the backup may be
	// given out again, and changes made after it to the cases it holds
	// may be overwritten. Every replica must be restored alike.
	NoCatchUp bool
	Logger    *slog.Logger
}

// Restored describes a data directory Restore built.
type Restored struct {
	Info       *pb.SnapshotInfo
	SHA256     string
	Cases      int
	CatchingUp bool
}

// ErrNotEmpty refuses to restore over a replica's existing state.
var ErrNotEmpty = errors.New("data directory already holds a replica's state")

// Restore builds opts.DataDir for replica opts.Name of a new group from a
// backup: the backup's state (with the restore recorded in it), a raft
// snapshot of that state at the backup's index and term with the new
// configuration, and raft's current term. Every replica of the group is
// restored from the same file with the same cluster.
func Restore(ctx context.Context, opts RestoreOptions) (*Restored, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if !slices.ContainsFunc(opts.Cluster, func(m Member) bool { return m.ID == opts.Name }) {
		return nil, fmt.Errorf("--name %q is not in the cluster %v", opts.Name, opts.Cluster)
	}
	st, err := InspectFile(opts.File)
	if err != nil {
		return nil, err
	}
	if !st.ChecksumOK {
		return nil, fmt.Errorf("%w: %s: %s", ErrBadBackup, opts.File, st.Problem)
	}
	if st.SideFile == "differs" {
		return nil, fmt.Errorf("%w: %s does not match %s", ErrBadBackup, opts.File, SideFile(opts.File))
	}
	info := st.Info
	if info.Index == 0 || info.Term == 0 {
		return nil, fmt.Errorf("%w: the backup holds no applied entry", ErrBadBackup)
	}
	if info.LogVersion > fsm.LogVersion {
		return nil, fmt.Errorf("the backup was taken by a release with log version %d; this one applies up to %d: restore with that release", info.LogVersion, fsm.LogVersion)
	}
	dirs := node.LayoutOf(opts.DataDir)
	for _, d := range []string{dirs.State, dirs.Raft, dirs.Snapshots} {
		if entries, err := os.ReadDir(d); err == nil && len(entries) > 0 {
			return nil, fmt.Errorf("%w: %s is not empty", ErrNotEmpty, d)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.DataDir, 0o750); err != nil {
		return nil, err
	}
	catchingUp, err := restoreState(opts, dirs, info, st.SHA256)
	if err != nil {
		return nil, err
	}
	if err := seedRaft(opts, dirs, info); err != nil {
		return nil, err
	}
	return &Restored{Info: info, SHA256: st.SHA256, Cases: st.Cases, CatchingUp: catchingUp}, nil
}

// restoreState writes the backup's state into the new state store and
// records the restore there; then a raft snapshot of that state.
func restoreState(opts RestoreOptions, dirs node.Layout, info *pb.SnapshotInfo, sum string) (catchingUp bool, err error) {
	_, body, f, err := openState(opts.File)
	if err != nil {
		return false, err
	}
	defer f.Close()
	s, err := store.Open(store.Options{Dir: dirs.State, Logger: opts.Logger.With("component", "store")})
	if err != nil {
		return false, err
	}
	defer func() {
		if cerr := s.Close(); err == nil {
			err = cerr
		}
	}()
	if err := s.Restore(body); err != nil {
		return false, err
	}
	idx, term, err := s.Applied()
	if err != nil {
		return false, err
	}
	if idx != info.Index || term != info.Term {
		return false, fmt.Errorf("%w: the state holds index %d term %d, the header says %d %d", ErrBadBackup, idx, term, info.Index, info.Term)
	}
	_, terr := s.Topology()
	federated := terr == nil
	if terr != nil && !errors.Is(terr, store.ErrNotFound) {
		return false, terr
	}
	rs := &pb.RestoreState{Index: idx, Term: term, BackupSha256: sum, CatchingUp: federated && !opts.NoCatchUp}
	if err := s.Update(func(tx *store.Tx) error { return tx.PutRestoreState(rs) }); err != nil {
		return false, err
	}
	if err := s.Sync(); err != nil {
		return false, err
	}
	// The raft snapshot holds exactly this state, the restore record
	// included: a replica that joins later and installs it applies the
	// log after it like the others.
	hl := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: io.Discard})
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dirs.Snapshots, node.SnapshotsRetained, hl)
	if err != nil {
		return false, fmt.Errorf("snapshot store: %w", err)
	}
	var conf raft.Configuration
	for _, m := range opts.Cluster {
		conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.RaftAddr), Suffrage: raft.Voter})
	}
	_, trans := raft.NewInmemTransport("")
	defer trans.Close()
	sink, err := snaps.Create(raft.SnapshotVersionMax, idx, term, conf, idx, trans)
	if err != nil {
		return false, fmt.Errorf("create raft snapshot: %w", err)
	}
	sn, err := s.Snapshot()
	if err != nil {
		_ = sink.Cancel()
		return false, err
	}
	defer sn.Release()
	if _, err := sn.WriteTo(sink); err != nil {
		_ = sink.Cancel()
		return false, fmt.Errorf("write raft snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return false, fmt.Errorf("write raft snapshot: %w", err)
	}
	return rs.CatchingUp, nil
}

// keyCurrentTerm is raft's stable-store key of the current term.
var keyCurrentTerm = []byte("CurrentTerm")

// seedRaft sets raft's current term to the backup's: the new group's
// elections then start above it, and its log's terms never go below the
// snapshot's (a replica holding only the snapshot must not look more up
// to date than one holding entries of the new group).
func seedRaft(opts RestoreOptions, dirs node.Layout, info *pb.SnapshotInfo) error {
	hl := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: io.Discard})
	logs, err := raftlog.OpenEngine(opts.LogEngine, raftlog.Options{Dir: dirs.Raft, Logger: opts.Logger.With("component", "raftlog")}, hl)
	if err != nil {
		return err
	}
	err = logs.SetUint64(keyCurrentTerm, info.Term)
	if cerr := logs.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("raft current term: %w", err)
	}
	return nil
}
