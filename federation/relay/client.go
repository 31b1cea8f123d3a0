package relay

import (
	"context"

	"google.golang.org/grpc"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// peerClient delivers to a neighbour group, following its leader (Peer): a
// replica that answers "not leader" or cannot be reached is passed over for
// the next one, and the one that last accepted is tried first.
type peerClient struct{ *Peer }

func newPeerClient(name string, addrs []string, opts []grpc.DialOption) *peerClient {
	return &peerClient{NewPeer(name, addrs, opts)}
}

// deliver sends req to the neighbour's leader, trying each replica at most
// once.
func (p *peerClient) deliver(ctx context.Context, req *pb.DeliverRequest) (*pb.DeliverResponse, error) {
	var resp *pb.DeliverResponse
	err := p.Call(ctx, func(ctx context.Context, c pb.FederationServiceClient) (err error) {
		resp, err = c.Deliver(ctx, req)
		return err
	}, PassOver)
	if err != nil {
		return nil, err
	}
	return resp, nil
}

func (p *peerClient) close() { p.Close() }
