package relay

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// peerClient calls the FederationService of a neighbour group, following
// its leader: a replica that answers "not leader" or cannot be reached is
// passed over for the next one, and the one that last accepted is tried
// first.
type peerClient struct {
	name  string
	addrs []string
	opts  []grpc.DialOption

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
	cur   int
}

func newPeerClient(name string, addrs []string, opts []grpc.DialOption) *peerClient {
	return &peerClient{name: name, addrs: addrs, opts: opts, conns: map[string]*grpc.ClientConn{}}
}

func (p *peerClient) conn(i int) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	addr := p.addrs[i]
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr, p.opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s (%s): %w", p.name, addr, err)
	}
	p.conns[addr] = c
	return c, nil
}

// deliver sends req to the neighbour's leader, trying each replica at most
// once.
func (p *peerClient) deliver(ctx context.Context, req *pb.DeliverRequest) (*pb.DeliverResponse, error) {
	p.mu.Lock()
	start := p.cur
	p.mu.Unlock()
	var last error
	for k := 0; k < len(p.addrs); k++ {
		i := (start + k) % len(p.addrs)
		c, err := p.conn(i)
		if err != nil {
			last = err
			continue
		}
		resp, err := pb.NewFederationServiceClient(c).Deliver(ctx, req)
		if err == nil {
			p.mu.Lock()
			p.cur = i
			p.mu.Unlock()
			return resp, nil
		}
		last = fmt.Errorf("%s at %s: %w", p.name, p.addrs[i], err)
		switch status.Code(err) {
		case codes.Unavailable, codes.DeadlineExceeded:
			continue // not the leader, or not reachable: try the next replica
		default:
			return nil, last
		}
	}
	return nil, last
}

func (p *peerClient) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for a, c := range p.conns {
		_ = c.Close()
		delete(p.conns, a)
	}
}
