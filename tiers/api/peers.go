package api

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/client"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/node"
)

// Peers keeps one gRPC connection per fellow replica, for forwarding writes,
// reads and cluster changes to the leader. It implements node.Forwarder:
// writes (imports too) go to the leader's internal listener (see
// UseInternal), reads and cluster changes to its public API as the
// client's request.
type Peers struct {
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
	opts  []grpc.DialOption
	// internal dials the members' internal listeners (mutual TLS with the
	// group's identity; plain text in the loopback development mode).
	internal     map[string]*grpc.ClientConn
	internalOpts []grpc.DialOption
}

var _ node.Forwarder = (*Peers)(nil)

// staticWindows are the receive windows of a replica's calls to its
// fellows, as the servers' own (StreamWindow, ConnWindow): fixed, so that
// gRPC takes no bandwidth sample, a PING and its answer, on every
// forwarded call.
var staticWindows = []grpc.DialOption{
	grpc.WithStaticStreamWindowSize(StreamWindow), grpc.WithStaticConnWindowSize(ConnWindow),
}

// NewPeers returns an empty connection pool. Traffic inside one Raft group
// stays on the operator's network; mTLS between tiers comes with the
// federation layer.
func NewPeers(opts ...grpc.DialOption) *Peers {
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	return &Peers{
		conns: map[string]*grpc.ClientConn{}, opts: opts,
		internal: map[string]*grpc.ClientConn{}, internalOpts: []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())},
	}
}

// UseInternal sets the dial options of the connections to the members'
// internal listeners (before the first call).
func (p *Peers) UseInternal(opts ...grpc.DialOption) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.internalOpts = opts
}

func (p *Peers) internalConn(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.internal[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr, slices.Concat(p.internalOpts, staticWindows)...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	p.internal[addr] = c
	return c, nil
}

func (p *Peers) conn(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr, slices.Concat(p.opts, staticWindows)...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	p.conns[addr] = c
	return c, nil
}

// Close closes every connection.
func (p *Peers) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, c := range p.conns {
		_ = c.Close()
		delete(p.conns, addr)
	}
	for addr, c := range p.internal {
		_ = c.Close()
		delete(p.internal, addr)
	}
}

// Propose sends cmd to the ForwardService on the leader's internal
// listener (Apply) and returns the leader's state machine's result. A
// leader that cannot be reached, or that is no longer the leader, is
// reported as node.ErrNoLeader so the node retries (the request id makes
// that safe). A leader of a release before Apply is asked through
// Propose, which answers a case only (a rolling upgrade).
func (p *Peers) Propose(ctx context.Context, leaderAddr string, cmd *pb.Command) (*fsm.Result, error) {
	c, err := p.internalConn(leaderAddr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", node.ErrNoLeader, err)
	}
	fc := pb.NewForwardServiceClient(c)
	req := &pb.ProposeRequest{Command: cmd}
	var res *fsm.Result
	resp, err := fc.Apply(forwardCtx(ctx), req)
	if status.Code(err) == codes.Unimplemented {
		var cr *pb.CaseResponse
		if cr, err = fc.Propose(forwardCtx(ctx), req); err == nil {
			res = &fsm.Result{Case: cr.Case, Replayed: cr.Replayed}
		}
	} else if err == nil {
		res = fsm.ResultFromProto(resp.GetResult())
	}
	// Whatever the client policy would try on another replica (not the
	// leader any more, unreachable, too slow) the node retries through
	// whichever replica leads then. A leader below its disk reserve
	// answers for itself (client.DiskLow): the caller gets its refusal at
	// once, not retries until the deadline.
	if client.Classify(err) == client.RetryElsewhere {
		return nil, fmt.Errorf("%w: leader %s: %w", node.ErrNoLeader, leaderAddr, err)
	}
	return res, err
}

// Register asks the leader, over its internal listener, to record reg.
func (p *Peers) Register(ctx context.Context, leaderAddr string, reg *pb.RegisterNode) error {
	c, err := p.internalConn(leaderAddr)
	if err != nil {
		return fmt.Errorf("%w: %w", node.ErrNoLeader, err)
	}
	_, err = pb.NewForwardServiceClient(c).Register(ctx, &pb.RegisterRequest{Node: reg})
	if client.Classify(err) == client.RetryElsewhere {
		return fmt.Errorf("%w: leader %s: %w", node.ErrNoLeader, leaderAddr, err)
	}
	return err
}

// Rejoin asks the member at internalAddr (its internal listener) to take
// this replica back into the group (ForwardService.Rejoin: only the leader
// does; the others answer FailedPrecondition).
func (p *Peers) Rejoin(ctx context.Context, internalAddr string, req *pb.JoinRequest) (*pb.JoinResponse, error) {
	c, err := p.internalConn(internalAddr)
	if err != nil {
		return nil, err
	}
	return pb.NewForwardServiceClient(c).Rejoin(ctx, req)
}

// Join asks the member at internalAddr (its internal listener) to add this
// replica to the group (ForwardService.Join: only the leader does; the
// others answer FailedPrecondition).
func (p *Peers) Join(ctx context.Context, internalAddr string, req *pb.JoinRequest) (*pb.JoinResponse, error) {
	c, err := p.internalConn(internalAddr)
	if err != nil {
		return nil, err
	}
	return pb.NewForwardServiceClient(c).Join(ctx, req)
}

// leaderAddrWait bounds how long a call waits for the API address of a
// leader this replica knows by id only.
const leaderAddrWait = 5 * time.Second

func (p *Peers) leaderConn(ctx context.Context, r Replica) (*grpc.ClientConn, error) {
	id, addr := r.Leader()
	if addr == "" && id != "" {
		// A replica that has just joined knows its leader from raft before
		// it has applied the leader's registration (its API address):
		// wait for it a moment rather than send the caller away.
		wait, cancel := context.WithTimeout(ctx, leaderAddrWait)
		defer cancel()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
	waiting:
		for addr == "" && id != "" {
			select {
			case <-wait.Done():
				break waiting
			case <-tick.C:
			}
			id, addr = r.Leader()
		}
	}
	if addr == "" {
		return nil, fmt.Errorf("%w: leader %q has no known API address", node.ErrNoLeader, id)
	}
	return p.conn(addr)
}

func (p *Peers) leaderCases(ctx context.Context, r Replica) (pb.CaseServiceClient, error) {
	c, err := p.leaderConn(ctx, r)
	if err != nil {
		return nil, err
	}
	return pb.NewCaseServiceClient(c), nil
}

func (p *Peers) leaderCluster(ctx context.Context, r Replica) (pb.ClusterServiceClient, error) {
	c, err := p.leaderConn(ctx, r)
	if err != nil {
		return nil, err
	}
	return pb.NewClusterServiceClient(c), nil
}

// Cluster returns a ClusterService client for addr.
func (p *Peers) Cluster(addr string) (pb.ClusterServiceClient, error) {
	c, err := p.conn(addr)
	if err != nil {
		return nil, err
	}
	return pb.NewClusterServiceClient(c), nil
}

func (p *Peers) leaderOwnership(ctx context.Context, r Replica) (pb.OwnershipServiceClient, error) {
	c, err := p.leaderConn(ctx, r)
	if err != nil {
		return nil, err
	}
	return pb.NewOwnershipServiceClient(c), nil
}
