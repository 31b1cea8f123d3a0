package relay

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/diskspace"
)

// Peer is the client side of a neighbour group's FederationService: one
// connection per replica, made on first use and kept until Close, and the
// replica that answered last, which Call tries first. The relay's
// deliveries and the anti-entropy calls (federation/antientropy) both
// follow the neighbour's leader through it.
type Peer struct {
	name  string
	addrs []string
	opts  []grpc.DialOption

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
	cur   int
}

// NewPeer returns the client of neighbour name, whose replicas are at
// addrs, connecting with opts. It connects to nothing yet.
func NewPeer(name string, addrs []string, opts []grpc.DialOption) *Peer {
	return &Peer{name: name, addrs: addrs, opts: opts, conns: map[string]*grpc.ClientConn{}}
}

// Len is the number of the neighbour's replicas.
func (p *Peer) Len() int { return len(p.addrs) }

// Current is the index of the replica Call tries first: the one that
// answered last.
func (p *Peer) Current() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

// Conn is the connection to replica i (0 <= i < Len), made on first use.
func (p *Peer) Conn(i int) (*grpc.ClientConn, error) {
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

// Call calls fn on the neighbour's replicas in turn, at most once each,
// starting with the one that answered last, until one answers: that one is
// then tried first next time. A replica that cannot be connected to is
// passed over; so is one whose error next accepts (next gets fn's error as
// returned, and may be PassOver). Any other error ends the search. The
// error is the last one, as "name at address: error" (a connection error
// as Conn returns it), or nil when a replica answered.
func (p *Peer) Call(ctx context.Context, fn func(context.Context, pb.FederationServiceClient) error, next func(error) bool) error {
	p.mu.Lock()
	start := p.cur
	p.mu.Unlock()
	var last error
	for k := 0; k < len(p.addrs); k++ {
		i := (start + k) % len(p.addrs)
		c, err := p.Conn(i)
		if err != nil {
			last = err
			continue
		}
		err = fn(ctx, pb.NewFederationServiceClient(c))
		if err == nil {
			p.mu.Lock()
			p.cur = i
			p.mu.Unlock()
			return nil
		}
		last = fmt.Errorf("%s at %s: %w", p.name, p.addrs[i], err)
		if !next(err) {
			return last
		}
	}
	return last
}

// PassOver reports whether a replica's error sends a call on to the next
// replica: Unavailable (not the leader, or not reachable) or
// DeadlineExceeded (too slow). A leader below its disk reserve is the
// leader all the same: its refusal ends the round (the relay backs off).
func PassOver(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable:
		return !diskspace.IsRefusal(err)
	case codes.DeadlineExceeded:
		return true
	}
	return false
}

// Close closes the connections to the replicas. The Peer connects again
// when used after it.
func (p *Peer) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for a, c := range p.conns {
		_ = c.Close()
		delete(p.conns, a)
	}
}
