package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/auth"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/node"
)

// snapshotChunk is the size of one data message of SaveSnapshot.
const snapshotChunk = 256 << 10

// snapshotCatchUp bounds how long a replica waits to apply the group's
// state index before it takes a snapshot.
const snapshotCatchUp = 30 * time.Second

// SaveSnapshot streams a consistent snapshot of the group's state
// (cityhubctl snapshot save; tiers/backup writes it to a file).
//
//   - The floor: the group's state index when the call arrived, read on
//     the leader after a linearizable read barrier (a follower asks the
//     leader: GetStatus linearizable). Every write acknowledged before the
//     call is at or below it.
//   - The source: a follower, to spare the leader the read (the leader
//     hands the call to each follower in turn until one starts streaming;
//     a follower that receives the call serves it itself), else the
//     leader; --leader (req.leader) asks for the leader.
//   - The replica that serves waits until its store holds the floor, pins
//     a badger read view (later writes are not part of it) and streams the
//     SnapshotInfo (index and term from the view's m/applied), then the
//     store's snapshot stream (tiers/store: records and a CRC-32C).
func (s *ClusterServer) SaveSnapshot(req *pb.SaveSnapshotRequest, stream pb.ClusterService_SaveSnapshotServer) error {
	ctx := stream.Context()
	if err := s.g.require(ctx, auth.ClusterBackup, nil); err != nil {
		return err
	}
	if isForwarded(ctx) && req.GetMinIndex() > 0 {
		// Handed over by the replica that found the floor.
		if req.GetLeader() && !s.replica.IsLeader() {
			return toStatus(node.ErrNotLeader)
		}
		return s.serveSnapshot(ctx, req.GetMinIndex(), stream)
	}
	floor, err := s.snapshotFloor(ctx)
	if err != nil {
		return toStatus(err)
	}
	switch {
	case req.GetLeader() && s.replica.IsLeader(), !req.GetLeader() && !s.replica.IsLeader():
		return s.serveSnapshot(ctx, floor, stream)
	case req.GetLeader():
		_, addr := s.replica.Leader()
		if addr == "" {
			return toStatus(fmt.Errorf("%w: the leader's API address is unknown", node.ErrNoLeader))
		}
		_, err := s.relaySnapshot(ctx, addr, &pb.SaveSnapshotRequest{MinIndex: floor, Leader: true}, stream)
		return err
	}
	// The leader: hand the snapshot to a follower.
	self := s.replica.ID()
	for _, srv := range s.replica.Status().GetServers() {
		if srv.Id == self || srv.Leader || srv.GrpcAddr == "" {
			continue
		}
		started, err := s.relaySnapshot(ctx, srv.GrpcAddr, &pb.SaveSnapshotRequest{MinIndex: floor}, stream)
		if started {
			return err
		}
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
		s.log.Warn("follower could not take the snapshot; trying the next", "follower", srv.Id, "error", err)
	}
	s.log.Info("no follower took the snapshot: taking it on the leader", "floor", floor)
	return s.serveSnapshot(ctx, floor, stream)
}

// snapshotFloor is the group's state index as of now, linearizably.
func (s *ClusterServer) snapshotFloor(ctx context.Context) (uint64, error) {
	if s.replica.IsLeader() {
		if err := s.replica.ReadBarrier(ctx, pb.Consistency_CONSISTENCY_LINEARIZABLE); err == nil {
			idx, _, err := s.replica.Store().Applied()
			return idx, err
		} else if !errors.Is(err, node.ErrNotLeader) {
			return 0, err
		}
	}
	if isForwarded(ctx) {
		return 0, node.ErrNotLeader
	}
	cl, err := s.peers.leaderCluster(ctx, s.replica)
	if err != nil {
		return 0, err
	}
	st, err := cl.GetStatus(forwardCtx(ctx), &pb.GetStatusRequest{Linearizable: true})
	if err != nil {
		return 0, fmt.Errorf("%w: the leader's state index: %w", node.ErrNoLeader, err)
	}
	return st.GetStateIndex(), nil
}

// serveSnapshot takes the snapshot here once the store holds floor.
func (s *ClusterServer) serveSnapshot(ctx context.Context, floor uint64, stream pb.ClusterService_SaveSnapshotServer) error {
	wctx, cancel := context.WithTimeout(ctx, snapshotCatchUp)
	err := s.replica.WaitApplied(wctx, floor)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
		return status.Errorf(codes.Unavailable, "replica %s has not applied index %d, the group's state when the save started: %v", s.replica.ID(), floor, err)
	}
	sn, err := s.replica.Store().Snapshot()
	if err != nil {
		return status.Errorf(codes.Internal, "snapshot: %v", err)
	}
	defer sn.Release()
	idx, term, err := sn.Applied()
	if err != nil {
		return status.Errorf(codes.Internal, "snapshot: %v", err)
	}
	if idx < floor {
		return status.Errorf(codes.Internal, "snapshot at index %d is older than the floor %d", idx, floor)
	}
	st := s.replica.Status()
	info := &pb.SnapshotInfo{
		NodeId: s.replica.ID(), FromLeader: s.replica.IsLeader(), Jurisdiction: st.GetJurisdiction(), Tier: st.GetTier(),
		Index: idx, Term: term, MinIndex: floor, LogVersion: fsm.LogVersion, CreatedUnixMs: time.Now().UnixMilli(),
	}
	if t, err := s.replica.Store().Topology(); err == nil {
		info.FederationNode = t.GetSelf()
	}
	if err := stream.Send(&pb.SnapshotChunk{Part: &pb.SnapshotChunk_Info{Info: info}}); err != nil {
		return err
	}
	w := bufio.NewWriterSize(chunkWriter{stream}, snapshotChunk)
	n, err := sn.WriteTo(w)
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		return status.Errorf(codes.Unavailable, "stream snapshot: %v", err)
	}
	s.log.Info("snapshot streamed", "index", idx, "term", term, "floor", floor, "bytes", n, "leader", info.FromLeader)
	return nil
}

// chunkWriter sends each write as one data message.
type chunkWriter struct {
	stream pb.ClusterService_SaveSnapshotServer
}

func (w chunkWriter) Write(p []byte) (int, error) {
	if err := w.stream.Send(&pb.SnapshotChunk{Part: &pb.SnapshotChunk_Data{Data: p}}); err != nil {
		return 0, err
	}
	return len(p), nil
}

// relaySnapshot asks the replica at addr for the snapshot and passes its
// stream on. started reports whether that replica sent its info: after
// that, its errors are the call's; before, the caller may try another.
func (s *ClusterServer) relaySnapshot(ctx context.Context, addr string, req *pb.SaveSnapshotRequest, stream pb.ClusterService_SaveSnapshotServer) (started bool, err error) {
	cl, err := s.peers.Cluster(addr)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rs, err := cl.SaveSnapshot(forwardCtx(ctx), req)
	if err != nil {
		return false, err
	}
	first, err := rs.Recv()
	if err != nil {
		return false, err
	}
	if first.GetInfo() == nil {
		return false, status.Errorf(codes.Internal, "replica at %s sent data before the snapshot's info", addr)
	}
	for m := first; ; {
		if err := stream.Send(m); err != nil {
			return true, err
		}
		if m, err = rs.Recv(); err == io.EOF {
			return true, nil
		} else if err != nil {
			return true, err
		}
	}
}
