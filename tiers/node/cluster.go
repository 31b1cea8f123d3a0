package node

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Join adds a server to the group (leader only). Joining again with the
// same id and address changes nothing; a known id at a new address, or a
// known address under a new id, replaces the old entry.
func (n *Node) Join(ctx context.Context, req *pb.JoinRequest) error {
	return n.join(ctx, req, false)
}

// Rejoin takes a member whose data was moved aside (cityhubd --rejoin)
// back into the group (leader only): it removes the server, then adds it
// again, and raft sends it a snapshot. Removing it first matters: a
// replica that lost its data has forgotten its votes and the entries it
// acknowledged, and must not count toward a quorum as the member it was.
func (n *Node) Rejoin(ctx context.Context, req *pb.JoinRequest) error {
	if req.NodeId == n.cfg.ID {
		return fmt.Errorf("%w: %s leads the group and cannot rejoin it; transfer leadership first", ErrRejoinSelf, req.NodeId)
	}
	return n.join(ctx, req, true)
}

func (n *Node) join(ctx context.Context, req *pb.JoinRequest, replace bool) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return fmt.Errorf("read configuration: %w", err)
	}
	id, addr := raft.ServerID(req.NodeId), raft.ServerAddress(req.RaftAddr)
	for _, s := range cf.Configuration().Servers {
		if s.ID == id && s.Address == addr && !replace {
			n.log.Info("join: already a member", "id", id)
			return n.registerPeer(ctx, req)
		}
		if s.ID == id || s.Address == addr {
			if err := n.raft.RemoveServer(s.ID, 0, timeoutOf(ctx)).Error(); err != nil {
				return fmt.Errorf("remove stale member %s: %w", s.ID, err)
			}
		}
	}
	var f raft.IndexFuture
	if req.Nonvoter {
		f = n.raft.AddNonvoter(id, addr, 0, timeoutOf(ctx))
	} else {
		f = n.raft.AddVoter(id, addr, 0, timeoutOf(ctx))
	}
	if err := f.Error(); err != nil {
		return fmt.Errorf("add %s at %s: %w", id, addr, err)
	}
	n.log.Info("member joined", "id", id, "raft_addr", addr, "voter", !req.Nonvoter, "rejoin", replace)
	return n.registerPeer(ctx, req)
}

func (n *Node) registerPeer(ctx context.Context, req *pb.JoinRequest) error {
	if req.GrpcAddr == "" {
		return nil
	}
	reg := &pb.RegisterNode{NodeId: req.NodeId, RaftAddr: req.RaftAddr, GrpcAddr: req.GrpcAddr, HttpAddr: req.HttpAddr, InternalAddr: req.InternalAddr}
	_, err := n.ApplyLocal(ctx, registerCommand(reg, n.raft.CurrentTerm()))
	return err
}

// Remove takes a server out of the group (leader only).
func (n *Node) Remove(ctx context.Context, id string) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return fmt.Errorf("read configuration: %w", err)
	}
	for _, s := range cf.Configuration().Servers {
		if string(s.ID) == id {
			if err := n.raft.RemoveServer(s.ID, 0, timeoutOf(ctx)).Error(); err != nil {
				return fmt.Errorf("remove %s: %w", id, err)
			}
			n.log.Info("member removed", "id", id)
			return nil
		}
	}
	return fmt.Errorf("%w: %q", ErrUnknownServer, id)
}

// TransferLeadership hands leadership to id, or to the most up-to-date
// follower when id is empty (leader only). It returns the new leader's id.
func (n *Node) TransferLeadership(ctx context.Context, id string) (string, error) {
	if !n.IsLeader() {
		return "", ErrNotLeader
	}
	if !n.hasOtherVoter() {
		return "", ErrNoOtherVoter
	}
	var f raft.Future
	if id == "" {
		f = n.raft.LeadershipTransfer()
	} else {
		addr, ok := n.memberAddr(id)
		if !ok {
			return "", fmt.Errorf("%w: %q", ErrUnknownServer, id)
		}
		f = n.raft.LeadershipTransferToServer(raft.ServerID(id), addr)
	}
	if err := f.Error(); err != nil {
		return "", fmt.Errorf("transfer leadership: %w", err)
	}
	for {
		if _, lid := n.raft.LeaderWithID(); lid != "" && string(lid) != n.cfg.ID {
			return string(lid), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("wait for new leader: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (n *Node) memberAddr(id string) (raft.ServerAddress, bool) {
	cf := n.raft.GetConfiguration()
	if cf.Error() != nil {
		return "", false
	}
	for _, s := range cf.Configuration().Servers {
		if string(s.ID) == id {
			return s.Address, true
		}
	}
	return "", false
}

// Status describes this replica and the group as it sees it.
func (n *Node) Status() *pb.ClusterStatus {
	addr, lid := n.raft.LeaderWithID()
	st := &pb.ClusterStatus{
		NodeId:         n.cfg.ID,
		State:          n.raft.State().String(),
		LeaderId:       string(lid),
		LeaderRaftAddr: string(addr),
		Term:           n.raft.CurrentTerm(),
		CommitIndex:    n.raft.CommitIndex(),
		AppliedIndex:   n.AppliedIndex(),
		StateIndex:     n.fsm.AppliedIndex(),
		LastLogIndex:   n.raft.LastIndex(),
		Jurisdiction:   n.cfg.Jurisdiction,
		Tier:           n.cfg.Tier,
	}
	cf := n.raft.GetConfiguration()
	if cf.Error() == nil {
		for _, s := range cf.Configuration().Servers {
			srv := &pb.Server{Id: string(s.ID), RaftAddr: string(s.Address), Suffrage: s.Suffrage.String(), Leader: s.ID == lid}
			srv.GrpcAddr = n.grpcAddrOf(srv.Id, srv.RaftAddr)
			srv.InternalAddr = n.internalAddrOf(srv.Id, srv.RaftAddr)
			if nodes, err := n.store.Nodes(); err == nil {
				for _, ni := range nodes {
					if ni.NodeId == srv.Id {
						srv.LogVersion = ni.LogVersion
						srv.HttpAddr = ni.HttpAddr
					}
				}
			}
			st.Servers = append(st.Servers, srv)
		}
	}
	return st
}

func timeoutOf(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl), time.Millisecond)
	}
	return 10 * time.Second
}

func (n *Node) hasOtherVoter() bool {
	cf := n.raft.GetConfiguration()
	if cf.Error() != nil {
		return false
	}
	for _, s := range cf.Configuration().Servers {
		if string(s.ID) != n.cfg.ID && s.Suffrage == raft.Voter {
			return true
		}
	}
	return false
}
