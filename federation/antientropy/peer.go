package antientropy

import (
	"context"
	"time"

	"google.golang.org/grpc"

	"github.com/cityhub/cityhub/federation/wire"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/client"
)

// Peer is the other end of a link: the anti-entropy calls of its
// FederationService. Handler implements it (in-process tests and
// benchmarks); the runner calls neighbours over gRPC.
type Peer interface {
	Digest(ctx context.Context, req *pb.DigestRequest) (*pb.DigestResponse, error)
	CaseVersions(ctx context.Context, req *pb.CaseVersionsRequest) (*pb.CaseVersionsResponse, error)
	FetchCases(ctx context.Context, req *pb.FetchCasesRequest) (*pb.FetchCasesResponse, error)
	Repair(ctx context.Context, req *pb.RepairRequest) (*pb.RepairResponse, error)
}

// maxRecv bounds one answer from a peer (a Digest at MaxBuckets is about
// 3 MiB; CaseVersions and FetchCases are chunked well below this).
const maxRecv = 64 << 20

// grpcPeer calls a neighbour group's FederationService through the
// federation's wire (wire.Peer): it follows the neighbour's leader with
// tiers/client's policy, passing over a replica that does not lead or
// cannot be reached, backing off between rounds while none leads (an
// election there), for at most peerRounds rounds; a disk-reserve refusal
// or a final error ends the call (the next period tries again). Each call
// to a replica has its own timeout.
type grpcPeer struct {
	peer    *wire.Peer
	timeout time.Duration
}

func newGRPCPeer(name string, addrs []string, opts []grpc.DialOption, timeout time.Duration) *grpcPeer {
	return &grpcPeer{peer: wire.NewPeer(name, addrs, opts), timeout: timeout}
}

// peerRounds is how many times a call tries the neighbour's replicas when
// none of them leads, backing off from 100 ms between rounds.
const peerRounds = 4

// do calls fn on the neighbour's leader.
func (p *grpcPeer) do(ctx context.Context, fn func(context.Context, pb.FederationServiceClient) error) error {
	return p.peer.Call(ctx, client.Policy{
		Initial: 100 * time.Millisecond, Max: time.Second, Timeout: p.timeout,
		Attempts: peerRounds * max(p.peer.Len(), 1),
		// A disk refusal ends the call here: the runner's next period or
		// follow-up tries again, rather than a call waiting out RetryInfo.
		Classify: func(err error) client.Outcome {
			if o := client.Classify(err); o != client.DiskLow {
				return o
			}
			return client.Final
		},
	}, fn)
}

func (p *grpcPeer) Digest(ctx context.Context, req *pb.DigestRequest) (resp *pb.DigestResponse, err error) {
	err = p.do(ctx, func(ctx context.Context, c pb.FederationServiceClient) (err error) {
		resp, err = c.Digest(ctx, req, grpc.MaxCallRecvMsgSize(maxRecv))
		return err
	})
	return resp, err
}

func (p *grpcPeer) CaseVersions(ctx context.Context, req *pb.CaseVersionsRequest) (resp *pb.CaseVersionsResponse, err error) {
	err = p.do(ctx, func(ctx context.Context, c pb.FederationServiceClient) (err error) {
		resp, err = c.CaseVersions(ctx, req, grpc.MaxCallRecvMsgSize(maxRecv))
		return err
	})
	return resp, err
}

func (p *grpcPeer) FetchCases(ctx context.Context, req *pb.FetchCasesRequest) (resp *pb.FetchCasesResponse, err error) {
	err = p.do(ctx, func(ctx context.Context, c pb.FederationServiceClient) (err error) {
		resp, err = c.FetchCases(ctx, req, grpc.MaxCallRecvMsgSize(maxRecv))
		return err
	})
	return resp, err
}

func (p *grpcPeer) Repair(ctx context.Context, req *pb.RepairRequest) (resp *pb.RepairResponse, err error) {
	err = p.do(ctx, func(ctx context.Context, c pb.FederationServiceClient) (err error) {
		resp, err = c.Repair(ctx, req, grpc.MaxCallRecvMsgSize(maxRecv))
		return err
	})
	return resp, err
}

func (p *grpcPeer) close() { p.peer.Close() }
