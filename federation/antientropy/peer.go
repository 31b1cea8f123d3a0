package antientropy

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cityhub/cityhub/federation/relay"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/diskspace"
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

// grpcPeer calls a neighbour group's FederationService and follows its
// leader the way the relay does (relay.Peer): a replica that answers
// Unavailable (a follower) or cannot be reached is passed over for the
// next, and the one that answered last is tried first. Each call to a
// replica has its own timeout.
type grpcPeer struct {
	peer    *relay.Peer
	timeout time.Duration
}

// DialOptions are the options of the connections to a neighbour: the
// relay's reconnect backoff (bounded by retryMin and retryMax, not gRPC's
// two minutes), then the node's own (transport credentials), which take
// precedence.
func DialOptions(retryMin, retryMax time.Duration, own []grpc.DialOption) []grpc.DialOption {
	return append([]grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: retryMin, Multiplier: 1.6, Jitter: 0.2, MaxDelay: retryMax},
		MinConnectTimeout: 20 * time.Second,
	})}, own...)
}

func newGRPCPeer(name string, addrs []string, opts []grpc.DialOption, timeout time.Duration) *grpcPeer {
	return &grpcPeer{peer: relay.NewPeer(name, addrs, opts), timeout: timeout}
}

// peerRounds is how many times do tries the neighbour's replicas when none
// of them leads (an election), backing off from 100 ms between rounds.
const peerRounds = 4

// do calls fn on the neighbour's leader: each replica in turn, and again
// after a pause while every one answers Unavailable (an election there).
func (p *grpcPeer) do(ctx context.Context, fn func(context.Context, pb.FederationServiceClient) error) error {
	var last error
	pause := 100 * time.Millisecond
	for round := 0; round < peerRounds; round++ {
		if round > 0 {
			select {
			case <-ctx.Done():
				return last
			case <-time.After(pause):
			}
			pause *= 2
		}
		var again bool
		if again, last = p.once(ctx, fn); !again {
			return last
		}
	}
	return last
}

// once tries each replica at most once; again reports that every failure
// was Unavailable (no leader reachable), worth another round.
func (p *grpcPeer) once(ctx context.Context, fn func(context.Context, pb.FederationServiceClient) error) (again bool, err error) {
	again = true
	err = p.peer.Call(ctx, func(ctx context.Context, c pb.FederationServiceClient) error {
		cctx, cancel := context.WithTimeout(ctx, p.timeout)
		defer cancel()
		err := fn(cctx, c)
		if err == nil {
			again = false
		}
		return err
	}, func(err error) bool {
		if ctx.Err() != nil {
			again = false
			return false
		}
		if diskspace.IsRefusal(err) {
			again = false // the leader, below its disk reserve: the next period tries again
			return false
		}
		switch status.Code(err) {
		case codes.Unavailable:
			return true // not the leader, or not reachable: try the next replica
		case codes.DeadlineExceeded:
			again = false // a slow replica: next one, but no further round
			return true
		default:
			again = false
			return false
		}
	})
	return again, err
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
