package wire

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/client"
)

// Peer is the client side of a neighbour group's FederationService: the
// leader-following caller of tiers/client (one connection per replica,
// made on first use and kept until Close; the replica that answered last
// tried first; a replica that does not lead or cannot be reached passed
// over; a disk-reserve refusal never passed over, since it comes from the
// leader). The relay's deliveries, anti-entropy's calls and the replica's
// evidence fetches all reach a neighbour through it.
type Peer struct{ r *client.Replicas }

// NewPeer returns the client of neighbour name, whose replicas are at
// addrs, connecting with opts (DialOptions). It connects to nothing yet.
func NewPeer(name string, addrs []string, opts []grpc.DialOption) *Peer {
	return &Peer{r: client.NewReplicas(name, addrs, opts...)}
}

// Name is the neighbour's node name.
func (p *Peer) Name() string { return p.r.Name() }

// Len is the number of the neighbour's replicas.
func (p *Peer) Len() int { return p.r.Len() }

// Current is the index of the replica a call tries first: the one that
// answered last.
func (p *Peer) Current() int { return p.r.Current() }

// Conn is the connection to replica i (0 <= i < Len), made on first use.
func (p *Peer) Conn(i int) (*grpc.ClientConn, error) { return p.r.Conn(i) }

// Round calls fn on the neighbour's replicas in turn, at most once each,
// starting with the one that answered last, while they answer "not the
// leader" or cannot be reached (client.Replicas.Round): it never waits,
// for a caller that backs off on its own (the relay's send loop). pol's
// Timeout bounds each call. The error is nil or a *client.Error naming
// the replica of the last error.
func (p *Peer) Round(ctx context.Context, pol client.Policy, fn func(context.Context, pb.FederationServiceClient) error) error {
	return p.r.Round(ctx, pol, func(ctx context.Context, c *grpc.ClientConn) error {
		return fn(ctx, pb.NewFederationServiceClient(c))
	})
}

// Call calls fn on the neighbour's leader by pol (client.Replicas.Call):
// round after round with pol's backoff while no replica leads, and again
// on the leader after a disk refusal.
func (p *Peer) Call(ctx context.Context, pol client.Policy, fn func(context.Context, pb.FederationServiceClient) error) error {
	return p.r.Call(ctx, pol, func(ctx context.Context, c *grpc.ClientConn) error {
		return fn(ctx, pb.NewFederationServiceClient(c))
	})
}

// Reconnected is closed when a connection to one of the neighbour's
// replicas that is not ready now becomes ready (client.Replicas.
// Reconnected); nil when there is none.
func (p *Peer) Reconnected(ctx context.Context) <-chan struct{} { return p.r.Reconnected(ctx) }

// Close closes the connections to the replicas. The Peer connects again
// when used after it.
func (p *Peer) Close() { p.r.Close() }

// DialOptions are the options of the connections to a neighbour: gRPC's
// own reconnect backoff (1 s, growing to 120 s) would keep a link idle for
// up to two minutes after a long partition heals, whatever the callers'
// retry delays, so it runs from retryMin to reconnectMax instead (plus
// gRPC's 20 % jitter): a healed link is found within about reconnectMax,
// and the relay's wait ends then (Reconnected); then
// the node's own options (transport credentials: mTLS expecting the
// neighbour's name in its certificate, or insecure when configured), which
// come later and so take precedence.
func DialOptions(retryMin, reconnectMax time.Duration, own ...grpc.DialOption) []grpc.DialOption {
	return append([]grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: retryMin, Multiplier: 1.6, Jitter: 0.2, MaxDelay: max(retryMin, reconnectMax)},
		MinConnectTimeout: 20 * time.Second,
	})}, own...)
}
