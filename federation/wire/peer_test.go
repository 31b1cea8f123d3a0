package wire

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/client"
)

type fixedHighWater struct {
	pb.UnimplementedFederationServiceServer
}

func (fixedHighWater) Deliver(context.Context, *pb.DeliverRequest) (*pb.DeliverResponse, error) {
	return &pb.DeliverResponse{HighWater: 7}, nil
}

// refusingListener stands for a neighbour that is down: while refusing, it
// closes every connection at once (the client's connection attempt fails)
// and counts it.
type refusingListener struct {
	net.Listener
	refusing atomic.Bool
	refused  atomic.Int64
}

func (l *refusingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || !l.refusing.Load() {
			return c, err
		}
		l.refused.Add(1)
		c.Close()
	}
}

// A neighbour that comes back after its connection failed is reached again
// within its reconnect bounds (DialOptions: retry_min to reconnect_max), not after gRPC's default reconnect
// backoff (1 s at first, growing by 1.6 up to 120 s). The test counts
// connection attempts instead of timing them: with these delays
// (20-50 ms here) the client makes 10 attempts in well under a second,
// with gRPC's defaults the 10th comes after more than 80 s and the next one
// 50 s or more later; the generous bounds below sit far from both.
func TestReconnectWithinRetryDelays(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl := &refusingListener{Listener: l}
	rl.refusing.Store(true)
	srv := grpc.NewServer()
	pb.RegisterFederationServiceServer(srv, fixedHighWater{})
	go srv.Serve(rl)
	defer srv.Stop()

	p := NewPeer("peer", []string{l.Addr().String()}, DialOptions(20*time.Millisecond, 50*time.Millisecond,
		grpc.WithTransportCredentials(insecure.NewCredentials())))
	defer p.Close()
	req := &pb.DeliverRequest{From: "self", To: "peer"}
	deliver := func(ctx context.Context) (resp *pb.DeliverResponse, err error) {
		err = p.Round(ctx, client.Policy{}, func(ctx context.Context, c pb.FederationServiceClient) error {
			resp, err = c.Deliver(ctx, req)
			return err
		})
		return resp, err
	}

	const attempts = 10
	const attemptsBound = 30 * time.Second // gRPC's defaults: 89 s at the least
	down := time.Now()
	for rl.refused.Load() < attempts {
		if time.Since(down) > attemptsBound {
			t.Fatalf("%d connection attempts in %v: the client backs off like gRPC's defaults, not within the callers' retry delays (DialOptions)", rl.refused.Load(), attemptsBound)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := deliver(ctx)
		cancel()
		if err == nil {
			t.Fatal("delivery to a neighbour that is down succeeded")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%d connection attempts in %v while the neighbour was down", rl.refused.Load(), time.Since(down).Round(time.Millisecond))

	rl.refusing.Store(false)
	const backBound = 10 * time.Second // gRPC's defaults: 55 s at the least after 10 attempts
	back := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := deliver(ctx)
		cancel()
		if err == nil {
			if resp.HighWater != 7 {
				t.Fatalf("high water %d, want 7", resp.HighWater)
			}
			break
		}
		if time.Since(back) > backBound {
			t.Fatalf("neighbour not reached %v after it came back: %v", time.Since(back), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("reached %v after the neighbour came back", time.Since(back).Round(time.Millisecond))
}
