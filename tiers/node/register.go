package node

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/hashicorp/raft"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Refusals of RegisterMember.
var (
	// ErrNotMember: the id is not in the raft configuration at that raft
	// address.
	ErrNotMember = errors.New("not a member of the raft configuration at that address")
	// ErrInvalidRegistration: an address is not host:port.
	ErrInvalidRegistration = errors.New("invalid registration")
)

// registerCommand is the RegisterNode command for reg, proposed by the
// leader in term; its request id names every address, so a member that
// moves registers again, and the log version and the term, so that a
// member whose registration an older leader accepted without its log
// version (a rolling upgrade) registers again under a newer one.
func registerCommand(reg *pb.RegisterNode, term uint64) *pb.Command {
	return &pb.Command{
		RequestId: "register/" + reg.NodeId + "/" + reg.RaftAddr + "/" + reg.GrpcAddr + "/" + reg.HttpAddr + "/" + reg.InternalAddr + registerVersionSuffix(reg.LogVersion, term),
		Body:      &pb.Command_RegisterNode{RegisterNode: reg},
	}
}

// registerVersionSuffix keeps the request id of a registration without a
// log version as an older release made it, and names the version and the
// leader's term otherwise.
func registerVersionSuffix(v uint32, term uint64) string {
	if v == 0 {
		return ""
	}
	return fmt.Sprintf("/v%d/t%d", v, term)
}

func nodeInfo(reg *pb.RegisterNode) *pb.NodeInfo {
	return &pb.NodeInfo{NodeId: reg.NodeId, RaftAddr: reg.RaftAddr, GrpcAddr: reg.GrpcAddr, HttpAddr: reg.HttpAddr, InternalAddr: reg.InternalAddr, LogVersion: reg.LogVersion}
}

// register records this node's addresses: directly on the leader, through
// the leader's internal ForwardService.Register from a follower. It never
// forwards a raw command: the leader builds the RegisterNode itself after
// checking it against the raft configuration (RegisterMember).
func (n *Node) register(ctx context.Context, reg *pb.RegisterNode) error {
	if n.IsLeader() {
		_, err := n.ApplyLocal(ctx, registerCommand(reg, n.raft.CurrentTerm()))
		return err
	}
	addr := n.leaderInternalAddr()
	switch {
	case addr == "":
		return ErrNoLeader
	case n.cfg.Forwarder == nil:
		return ErrNotLeader
	}
	return n.cfg.Forwarder.Register(ctx, addr, reg)
}

// RegisterMember records the addresses a member of the group sent (the
// leader's end of ForwardService.Register). The member must be in the raft
// configuration under that id at that raft address, and every address must
// be host:port; only then does the leader propose the RegisterNode itself.
func (n *Node) RegisterMember(ctx context.Context, reg *pb.RegisterNode) error {
	for _, a := range []struct {
		field, addr string
		required    bool
	}{{"raft_addr", reg.RaftAddr, true}, {"grpc_addr", reg.GrpcAddr, false}, {"http_addr", reg.HttpAddr, false}, {"internal_addr", reg.InternalAddr, false}} {
		if a.addr == "" && !a.required {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return fmt.Errorf("%w: %s %q is not host:port", ErrInvalidRegistration, a.field, a.addr)
		}
	}
	addr, ok := n.memberAddr(reg.NodeId)
	if !ok || addr != raft.ServerAddress(reg.RaftAddr) {
		return fmt.Errorf("%w: %q at %s", ErrNotMember, reg.NodeId, reg.RaftAddr)
	}
	if !n.IsLeader() {
		return ErrNotLeader
	}
	_, err := n.ApplyLocal(ctx, registerCommand(&pb.RegisterNode{
		NodeId: reg.NodeId, RaftAddr: reg.RaftAddr, GrpcAddr: reg.GrpcAddr, HttpAddr: reg.HttpAddr, InternalAddr: reg.InternalAddr,
		LogVersion: reg.LogVersion,
	}, n.raft.CurrentTerm()))
	return err
}

// InternalAddr is this node's internal address, as registered.
func (n *Node) InternalAddr() string { return n.cfg.InternalAddr }

// leaderInternalAddr is the leader's internal listener ("" when unknown).
func (n *Node) leaderInternalAddr() string {
	addr, sid := n.raft.LeaderWithID()
	if sid == "" {
		return ""
	}
	return n.internalAddrOf(string(sid), string(addr))
}

// LeaderInternal returns the leader's id and its internal address ("" when
// unknown).
func (n *Node) LeaderInternal() (id, internalAddr string) {
	addr, sid := n.raft.LeaderWithID()
	if sid == "" {
		return "", ""
	}
	return string(sid), n.internalAddrOf(string(sid), string(addr))
}

// internalAddrOf finds a member's internal address: the replicated
// registry first, then the static peers of the configuration.
func (n *Node) internalAddrOf(id, raftAddr string) string {
	if id == n.cfg.ID {
		return n.cfg.InternalAddr
	}
	if nodes, err := n.store.Nodes(); err == nil {
		for _, ni := range nodes {
			if ni.NodeId == id && ni.InternalAddr != "" {
				return ni.InternalAddr
			}
		}
	}
	for _, p := range n.cfg.Peers {
		if p.ID == id || (raftAddr != "" && p.RaftAddr == raftAddr) {
			return p.InternalAddr
		}
	}
	return ""
}
