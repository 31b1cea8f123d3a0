package node

import (
	"os"
	"path/filepath"

	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/diskspace"
)

// newDiskMonitor watches the free space of the data directory (and of
// its raft, state and snapshots folders, which may be mounted elsewhere;
// those not made yet are skipped). Open runs it until the node shuts
// down. Below the reserve, applyLocal proposes nothing (admitWrite).
func newDiskMonitor(cfg Config) *diskspace.Monitor {
	dir := cfg.DataDir
	// open makes it too (and reports a failure); made here, the first
	// sample has a directory to read.
	_ = os.MkdirAll(dir, 0o750)
	return diskspace.New(diskspace.Options{
		Dirs:    []string{dir, filepath.Join(dir, "raft"), filepath.Join(dir, "state"), filepath.Join(dir, "snapshots")},
		Reserve: cfg.DiskReserve, ReservePercent: cfg.DiskReservePercent,
		Interval: cfg.DiskCheckInterval, Logger: cfg.Logger,
	})
}

// DiskSpace is the monitor of the data directory's free space (metrics,
// readiness).
func (n *Node) DiskSpace() *diskspace.Monitor { return n.disk }

// admitWrite refuses a command that would go through the log while the
// data directory's free space is below the reserve (a *diskspace.LowError,
// retryable once space is freed). It reads the monitor's last sample: no
// system call per write.
//
// Only the leader proposes, so only the leader's disk decides. A follower
// low on disk still appends what its leader sends (raft gives it no way
// to refuse an entry a quorum may commit): its monitor logs the crossing
// and exports it (cityhub_disk_low, /readyz), and in the common case,
// where the replicas' disks fill alike, the leader stops first or soon
// after.
func (n *Node) admitWrite(cmd *pb.Command) error {
	if n.disk == nil {
		return nil
	}
	return n.disk.Admit(commandKind(cmd))
}

// commandKind names a command by its body field (report, act, deliver,
// mark_overdue_batch, ...): the kind label of refused writes.
func commandKind(cmd *pb.Command) string {
	m := cmd.ProtoReflect()
	if fd := m.WhichOneof(bodyOneof); fd != nil {
		return string(fd.Name())
	}
	return "none"
}

var bodyOneof protoreflect.OneofDescriptor = (&pb.Command{}).ProtoReflect().Descriptor().Oneofs().ByName("body")
