package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/backup"
	"github.com/cityhub/cityhub/tiers/raftlog"
)

func (a *app) snapshotCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "snapshot",
		Short: "Back up a tier node's state and restore a group from a backup (备份与恢复)",
		Long: `Back up a tier node's state to a file, check a backup, and build the data
directories of a new group from one (after etcdctl snapshot).

  save FILE      a consistent snapshot of the group's state, streamed from a
                 follower (after it has applied everything the group had
                 acknowledged when the save started), written with a SHA-256
                 and FILE.sha256 beside it
  status FILE    what a backup holds and whether its checksums hold
  restore FILE   the data directory of one replica of a new group, offline;
                 run it on every machine of the group with the same
                 --initial-cluster, then start cityhubd there

A backup holds every case, the reporters' contacts and the identities'
hashes: keep it as carefully as the data directory.`,
	}
	c.AddCommand(a.snapshotSaveCmd(), a.snapshotStatusCmd(), a.snapshotRestoreCmd())
	return c
}

func (a *app) snapshotSaveCmd() *cobra.Command {
	var leader bool
	c := &cobra.Command{
		Use:   "save FILE",
		Short: "Save a consistent snapshot of the group's state to FILE (administrators)",
		Long: `Save a consistent snapshot of the group's state to FILE.

Any replica may be asked (--addr). The group's leader reads the state index
that covers every write acknowledged so far; a follower that has applied
that index takes the snapshot (a read view of its store: writes that
follow are not part of it) and streams it; the leader takes it only when no
follower answers, or with --leader. The file is written as FILE.part,
checked, synced and renamed; FILE.sha256 holds its SHA-256 (sha256sum -c).
The transfer has no deadline of its own (--timeout does not apply); Ctrl-C
stops it and leaves no FILE.`,
		Example: `  cityhubctl --addr 10.0.0.2:7101 snapshot save /backup/d-320505-$(date +%Y%m%d).snap
  cityhubctl snapshot save --leader node.snap`,
		Args: cobra.ExactArgs(1),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, args []string) error {
			cl, err := a.clusterClient()
			if err != nil {
				return err
			}
			s, err := backup.SaveFile(ctx, cl, &pb.SaveSnapshotRequest{Leader: leader}, args[0])
			if err != nil {
				return err
			}
			if a.output == "json" {
				return writeJSON(a.stdout, savedJSON(s))
			}
			return writeSaved(a.stdout, s)
		}),
	}
	c.Flags().BoolVar(&leader, "leader", false, "take the snapshot on the leader rather than on a follower")
	return c
}

func (a *app) snapshotStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status FILE",
		Short: "Show what a backup holds and check its checksums",
		Long: `Read a whole backup: the replica and index it was taken at, the number of
cases and records, and whether its checksums hold (the SHA-256 at its end,
the state's CRC-32C, and FILE.sha256 when it is there). Exit status 1 when
the backup is damaged.`,
		Example: `  cityhubctl snapshot status /backup/d-320505-20261203.snap`,
		Args:    cobra.ExactArgs(1),
		RunE: a.runE(func(_ context.Context, _ *cobra.Command, args []string) error {
			st, err := backup.InspectFile(args[0])
			if err != nil {
				return err
			}
			if a.output == "json" {
				err = writeJSON(a.stdout, statusJSON(args[0], st))
			} else {
				err = writeBackupStatus(a.stdout, args[0], st)
			}
			if err != nil {
				return err
			}
			if !st.ChecksumOK || st.SideFile == "differs" {
				return fmt.Errorf("%s is damaged: %s", args[0], orDash(join("; ", st.Problem, sideProblem(st))))
			}
			return nil
		}),
	}
}

func sideProblem(st *backup.Status) string {
	if st.SideFile == "differs" {
		return "its SHA-256 differs from the .sha256 file"
	}
	return ""
}

func (a *app) snapshotRestoreCmd() *cobra.Command {
	var (
		o         backup.RestoreOptions
		cluster   string
		logEngine string
	)
	c := &cobra.Command{
		Use:   "restore FILE --data-dir DIR --name ID --initial-cluster ID=RAFTADDR,...",
		Short: "Build one replica's data directory of a new group from a backup (offline)",
		Long: `Build the data directory of replica --name of a new group from a backup,
without a running node. Run it on every machine of the group, each with its
own --name and --data-dir and the same FILE and --initial-cluster (the raft
address of every replica), then start cityhubd on each with that data
directory, node.id = --name and raft.peers matching --initial-cluster.

The group starts with the backup's state and index: its raft log continues
right after the backup's index, in a term above the backup's. Writes
acknowledged after the backup are not in it. In a federation the restored
node then catches up with its neighbours before it takes writes: its
leader runs anti-entropy with each neighbour, which returns the cases it
held or mirrored and changed after the backup (federation/DESIGN.md,
"After a restore"); 'cityhubctl federation status' shows the neighbours it
still waits for. --no-catch-up takes writes at once (ids given out after
the backup may be given out again); restore every replica alike.

DIR must not hold a replica's state (state/, raft/, snapshots/).`,
		Example: `  cityhubctl snapshot restore /backup/d-320505.snap --data-dir /var/lib/cityhub \
      --name n1 --initial-cluster n1=10.0.0.1:7001,n2=10.0.0.2:7001,n3=10.0.0.3:7001`,
		Args: cobra.ExactArgs(1),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, args []string) error {
			ms, err := backup.ParseCluster(cluster)
			if err != nil {
				return usagef("--initial-cluster: %v", err)
			}
			if logEngine != string(raftlog.EngineWAL) && logEngine != string(raftlog.EngineBadger) {
				return usagef("--log-engine %q: must be wal or badger", logEngine)
			}
			o.File, o.Cluster, o.LogEngine = args[0], ms, raftlog.Engine(logEngine)
			r, err := backup.Restore(ctx, o)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return writeJSON(a.stdout, restoredJSON(o, r))
			}
			return writeRestored(a.stdout, o, r)
		}),
	}
	f := c.Flags()
	f.StringVar(&o.DataDir, "data-dir", "", "the new replica's data directory (node.data_dir)")
	f.StringVar(&o.Name, "name", "", "the new replica's id (node.id), one of --initial-cluster")
	f.StringVar(&cluster, "initial-cluster", "", "every replica of the new group: id=raft-address,... (raft.peers)")
	f.StringVar(&logEngine, "log-engine", string(raftlog.EngineWAL), "the raft log engine the replica runs (raft.log_engine): wal or badger")
	f.BoolVar(&o.NoCatchUp, "no-catch-up", false, "in a federation, take writes at once instead of catching up with the neighbours first")
	for _, name := range []string{"data-dir", "name", "initial-cluster"} {
		_ = c.MarkFlagRequired(name)
	}
	return c
}

func infoRows(tw io.Writer, info *pb.SnapshotInfo) {
	src := "follower"
	if info.GetFromLeader() {
		src = "leader"
	}
	row(tw, "taken on:", fmt.Sprintf("%s (%s), %s", orDash(info.GetNodeId()), src,
		time.UnixMilli(info.GetCreatedUnixMs()).In(displayLoc).Format(zoneTime)))
	node := info.GetFederationNode()
	if node == "" {
		node = "not federated"
	}
	row(tw, "node:", fmt.Sprintf("%s (%s %s)", node, orDash(info.GetTier()), orDash(info.GetJurisdiction())))
	row(tw, "index / term:", fmt.Sprintf("%d / %d (the group's state index when the save started: %d)", info.GetIndex(), info.GetTerm(), info.GetMinIndex()))
	row(tw, "log version:", strconv.FormatUint(uint64(info.GetLogVersion()), 10))
}

func writeSaved(w io.Writer, s *backup.Saved) error {
	fmt.Fprintf(w, "snapshot saved: %s\n", s.Path)
	tw := newTable(w)
	infoRows(tw, s.Info)
	row(tw, "cases:", strconv.Itoa(s.Cases))
	row(tw, "size:", fmt.Sprintf("%d bytes", s.Bytes))
	row(tw, "sha256:", s.SHA256+"  ("+backup.SideFile(s.Path)+")")
	return tw.Flush()
}

func writeBackupStatus(w io.Writer, path string, st *backup.Status) error {
	fmt.Fprintf(w, "backup: %s\n", path)
	tw := newTable(w)
	infoRows(tw, st.Info)
	row(tw, "cases:", strconv.Itoa(st.Cases))
	row(tw, "records:", strconv.Itoa(st.Records))
	row(tw, "size:", fmt.Sprintf("%d bytes", st.Bytes))
	row(tw, "sha256:", st.SHA256)
	ok := "ok"
	if !st.ChecksumOK {
		ok = "DAMAGED: " + st.Problem
	}
	row(tw, "checksum:", ok)
	row(tw, backup.SideFile(filepath.Base(path))+":", st.SideFile)
	return tw.Flush()
}

func writeRestored(w io.Writer, o backup.RestoreOptions, r *backup.Restored) error {
	var members []string
	for _, m := range o.Cluster {
		members = append(members, m.ID+"="+m.RaftAddr)
	}
	fmt.Fprintf(w, "restored %s into %s: replica %s of %s\n", o.File, o.DataDir, o.Name, strings.Join(members, ","))
	tw := newTable(w)
	infoRows(tw, r.Info)
	row(tw, "cases:", strconv.Itoa(r.Cases))
	row(tw, "sha256:", r.SHA256)
	if r.CatchingUp {
		row(tw, "federation:", "writes wait until the node has caught up with every neighbour (cityhubctl federation status)")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "next: restore every other replica the same way, then start cityhubd on each (node.id %s, node.data_dir %s, raft.peers as --initial-cluster)\n", o.Name, o.DataDir)
	return err
}

// The JSON forms: the info as protojson, the rest beside it.

func savedJSON(s *backup.Saved) *structpb.Struct {
	return jsonOf(map[string]any{"path": s.Path, "cases": s.Cases, "bytes": s.Bytes, "sha256": s.SHA256}, s.Info)
}

func statusJSON(path string, st *backup.Status) *structpb.Struct {
	return jsonOf(map[string]any{"path": path, "cases": st.Cases, "records": st.Records, "bytes": st.Bytes, "sha256": st.SHA256,
		"checksum_ok": st.ChecksumOK, "problem": st.Problem, "sha256_file": st.SideFile}, st.Info)
}

func restoredJSON(o backup.RestoreOptions, r *backup.Restored) *structpb.Struct {
	return jsonOf(map[string]any{"file": o.File, "data_dir": o.DataDir, "name": o.Name, "cases": r.Cases, "sha256": r.SHA256,
		"catching_up": r.CatchingUp}, r.Info)
}

func jsonOf(fields map[string]any, info *pb.SnapshotInfo) *structpb.Struct {
	m := map[string]any{}
	for k, v := range fields {
		switch n := v.(type) {
		case int:
			m[k] = float64(n)
		case int64:
			m[k] = float64(n)
		default:
			m[k] = v
		}
	}
	m["info"] = map[string]any{
		"node_id": info.GetNodeId(), "from_leader": info.GetFromLeader(), "jurisdiction": info.GetJurisdiction(), "tier": info.GetTier(),
		"federation_node": info.GetFederationNode(), "index": float64(info.GetIndex()), "term": float64(info.GetTerm()),
		"min_index": float64(info.GetMinIndex()), "log_version": float64(info.GetLogVersion()),
		"created": time.UnixMilli(info.GetCreatedUnixMs()).In(displayLoc).Format(time.RFC3339),
	}
	s, err := structpb.NewStruct(m)
	if err != nil {
		return &structpb.Struct{}
	}
	return s
}
