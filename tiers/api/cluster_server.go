package api

import (
	"context"
	"errors"
	"log/slog"
	"net"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/auth"
	"github.com/cityhub/cityhub/tiers/node"
)

// ClusterServer implements cityhub.v1.ClusterService. Changes go to the
// leader; a follower forwards them.
type ClusterServer struct {
	pb.UnimplementedClusterServiceServer
	replica Replica
	peers   *Peers
	fed     Federation // nil outside a federation
	g       *guard
	log     *slog.Logger
}

// NewClusterServer returns the cluster service of replica.
func NewClusterServer(r Replica, peers *Peers) *ClusterServer {
	return &ClusterServer{replica: r, peers: peers, log: slog.Default()}
}

// GetStatus describes this replica and its group. A linearizable status
// comes from the leader after a read barrier: its state index then covers
// every write acknowledged before the call (what a snapshot must hold).
func (s *ClusterServer) GetStatus(ctx context.Context, r *pb.GetStatusRequest) (*pb.ClusterStatus, error) {
	if err := s.g.require(ctx, auth.ClusterRead, nil); err != nil {
		return nil, err
	}
	if !r.GetLinearizable() {
		return s.replica.Status(), nil
	}
	err := s.replica.ReadBarrier(ctx, pb.Consistency_CONSISTENCY_LINEARIZABLE)
	if s.forward(ctx, err) {
		cl, cerr := s.peers.leaderCluster(ctx, s.replica)
		if cerr != nil {
			return nil, toStatus(cerr)
		}
		return cl.GetStatus(forwardCtx(ctx), r)
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return s.replica.Status(), nil
}

// Join adds a replica.
func (s *ClusterServer) Join(ctx context.Context, r *pb.JoinRequest) (*pb.JoinResponse, error) {
	if err := s.g.require(ctx, auth.ClusterManage, nil); err != nil {
		return nil, err
	}
	if err := validateJoin(r); err != nil {
		return nil, toStatus(err)
	}
	err := s.replica.Join(ctx, r)
	if s.forward(ctx, err) {
		cl, cerr := s.peers.leaderCluster(ctx, s.replica)
		if cerr != nil {
			return nil, toStatus(cerr)
		}
		return cl.Join(forwardCtx(ctx), r)
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.JoinResponse{Status: s.replica.Status()}, nil
}

// Remove takes a replica out of the group.
func (s *ClusterServer) Remove(ctx context.Context, r *pb.RemoveRequest) (*pb.RemoveResponse, error) {
	if err := s.g.require(ctx, auth.ClusterManage, nil); err != nil {
		return nil, err
	}
	if !nodeIDRe.MatchString(r.NodeId) {
		return nil, toStatus(invalid("node_id", "required: 1 to 32 of a-z 0-9 -"))
	}
	err := s.replica.Remove(ctx, r.NodeId)
	if s.forward(ctx, err) {
		cl, cerr := s.peers.leaderCluster(ctx, s.replica)
		if cerr != nil {
			return nil, toStatus(cerr)
		}
		return cl.Remove(forwardCtx(ctx), r)
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.RemoveResponse{Status: s.replica.Status()}, nil
}

// TransferLeadership moves leadership to another voter.
func (s *ClusterServer) TransferLeadership(ctx context.Context, r *pb.TransferLeadershipRequest) (*pb.TransferLeadershipResponse, error) {
	if err := s.g.require(ctx, auth.ClusterManage, nil); err != nil {
		return nil, err
	}
	if r.NodeId != "" && !nodeIDRe.MatchString(r.NodeId) {
		return nil, toStatus(invalid("node_id", "1 to 32 of a-z 0-9 -, or empty"))
	}
	id, err := s.replica.TransferLeadership(ctx, r.NodeId)
	if s.forward(ctx, err) {
		cl, cerr := s.peers.leaderCluster(ctx, s.replica)
		if cerr != nil {
			return nil, toStatus(cerr)
		}
		return cl.TransferLeadership(forwardCtx(ctx), r)
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.TransferLeadershipResponse{NewLeaderId: id}, nil
}

func (s *ClusterServer) forward(ctx context.Context, err error) bool {
	return errors.Is(err, node.ErrNotLeader) && !isForwarded(ctx)
}

// validateJoin checks a member's id and addresses (Join, Rejoin).
func validateJoin(r *pb.JoinRequest) error {
	if !nodeIDRe.MatchString(r.NodeId) {
		return invalid("node_id", "required: 1 to 32 of a-z 0-9 -")
	}
	if err := checkHostPort("raft_addr", r.RaftAddr, true); err != nil {
		return err
	}
	for _, a := range []struct{ field, addr string }{{"grpc_addr", r.GrpcAddr}, {"http_addr", r.HttpAddr}, {"internal_addr", r.InternalAddr}} {
		if err := checkHostPort(a.field, a.addr, false); err != nil {
			return err
		}
	}
	return nil
}

func checkHostPort(field, addr string, required bool) error {
	if addr == "" && !required {
		return nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return invalid(field, "%q is not host:port", addr)
	}
	return nil
}
