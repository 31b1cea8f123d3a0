package relay

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

// lowMarkPeer answers every batch with a fixed high-water mark.
type lowMarkPeer struct {
	pb.UnimplementedFederationServiceServer
	mu    sync.Mutex
	calls int
	first uint64
	mark  uint64
}

func (p *lowMarkPeer) Deliver(_ context.Context, req *pb.DeliverRequest) (*pb.DeliverResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	p.first = req.Entries[0].Seq
	return &pb.DeliverResponse{HighWater: p.mark}, nil
}

// A neighbour that answers a mark below what it acknowledged before has lost
// state: the relay must say so in the link status instead of looping.
func TestRelayReportsAReceiverThatLostState(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peer := &lowMarkPeer{mark: 1}
	gs := grpc.NewServer()
	pb.RegisterFederationServiceServer(gs, peer)
	go gs.Serve(lis)
	defer gs.Stop()

	topo, err := topology.New([]topology.Node{
		{Name: "city", Tier: topology.City, Jurisdiction: "320500", Replicas: []string{lis.Addr().String()}},
		{Name: "d1", Tier: topology.District, Jurisdiction: "320505", Parent: "city", Replicas: []string{"127.0.0.1:1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, local := testServer(t, nil)
	// d1's outbox toward the city: 5 entries, 3 acknowledged and trimmed.
	if err := local.st.Update(func(tx *store.Tx) error {
		for i := 0; i < 5; i++ {
			if _, err := tx.Enqueue("city", &pb.LinkEntry{Case: &pb.Case{Id: "320505-20261122-000001"}}); err != nil {
				return err
			}
		}
		_, err := tx.Trim("city", 3)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	r, err := New(Options{Self: "d1", Topology: topo, Local: local, RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond,
		Dial: func(string) []grpc.DialOption {
			return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		}})
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	defer r.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := r.Status()
		if err != nil {
			t.Fatal(err)
		}
		if len(st) == 1 && strings.Contains(st[0].LastError, "below the acknowledged 3") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("link status never reported the lost state: %v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	peer.mu.Lock()
	defer peer.mu.Unlock()
	if peer.first != 4 {
		t.Fatalf("the relay started at %d, want 4 (acked + 1)", peer.first)
	}
}
