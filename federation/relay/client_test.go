package relay

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

type fixedHighWater struct {
	pb.UnimplementedFederationServiceServer
}

func (fixedHighWater) Deliver(context.Context, *pb.DeliverRequest) (*pb.DeliverResponse, error) {
	return &pb.DeliverResponse{HighWater: 7}, nil
}

// A neighbour that comes back after its connection failed is reached again
// within the relay's retry delays, not after gRPC's default reconnect
// backoff (1 s at first, up to 120 s after a long partition).
func TestReconnectWithinRetryDelays(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nobody listens: the first calls fail and gRPC backs off

	o := Options{Dial: func(string) []grpc.DialOption {
		return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}, RetryMin: 20 * time.Millisecond, RetryMax: 50 * time.Millisecond}
	o.defaults()
	p := newPeerClient("peer", []string{addr}, dialOptions(o, "peer"))
	defer p.close()
	req := &pb.DeliverRequest{From: "self", To: "peer"}
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := p.deliver(ctx, req)
		cancel()
		if err == nil {
			t.Fatal("delivery to a closed port succeeded")
		}
		time.Sleep(20 * time.Millisecond)
	}

	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	srv := grpc.NewServer()
	pb.RegisterFederationServiceServer(srv, fixedHighWater{})
	go srv.Serve(l)
	defer srv.Stop()

	back := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := p.deliver(ctx, req)
		cancel()
		if err == nil {
			if resp.HighWater != 7 {
				t.Fatalf("high water %d, want 7", resp.HighWater)
			}
			break
		}
		// gRPC's default backoff starts at 1 s ± 20 %.
		if time.Since(back) > 700*time.Millisecond {
			t.Fatalf("neighbour not reached %v after it came back: %v", time.Since(back), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("reached %v after the neighbour came back", time.Since(back).Round(time.Millisecond))
}
