package antientropy

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	"github.com/cityhub/cityhub/federation/wire"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/node"
)

// follower is a replica that does not lead.
type follower struct{ *memLocal }

func (follower) IsLeader() bool { return false }

// serve starts a FederationService of node self over bufconn.
func serve(t *testing.T, self string, local node.Leader, withHandler bool) *bufconn.Listener {
	topo := testTopo(t)
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	rs := wire.NewServer(self, topo, local, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if withHandler {
		rs.SetAntiEntropy(NewHandler(self, topo, local))
	}
	pb.RegisterFederationServiceServer(srv, rs)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis
}

func dialer(byAddr map[string]*bufconn.Listener) grpc.DialOption {
	return grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return byAddr[addr].DialContext(ctx) })
}

func TestServedLikeDeliver(t *testing.T) {
	topo := testTopo(t)
	child := newMemLocal(t, topo, "s-1", "")
	x := testCase(1, "320502", "c-1", 2, 3, "x")
	child.put(t, x)
	lead := serve(t, "s-1", child, true)
	lis := map[string]*bufconn.Listener{
		"follower:1": serve(t, "s-1", follower{child}, true),
		"leader:1":   lead,
		"bare:1":     serve(t, "s-1", child, false),
	}
	opts := wire.DialOptions(time.Millisecond, 10*time.Millisecond, grpc.WithTransportCredentials(insecure.NewCredentials()), dialer(lis))
	ctx := context.Background()

	// The client passes over the follower to the leader, and starts there
	// next time.
	p := newGRPCPeer("s-1", []string{"passthrough:///follower:1", "passthrough:///leader:1"}, opts, 10*time.Second)
	defer p.close()
	resp, err := p.FetchCases(ctx, &pb.FetchCasesRequest{From: "d-1", To: "s-1", CaseIds: []string{x.Id, "nope"}})
	if err != nil || len(resp.Cases) != 1 || !proto.Equal(resp.Cases[0], x) || p.peer.Current() != 1 {
		t.Fatalf("fetch through the leader: %v, %v (cur %d)", resp, err, p.peer.Current())
	}
	d, err := p.Digest(ctx, &pb.DigestRequest{From: "d-1", To: "s-1", Buckets: 64})
	if err != nil || len(d.Buckets) != 1 || d.Buckets[0].Count != 1 {
		t.Fatalf("digest: %v, %v", d, err)
	}

	leader := newGRPCPeer("s-1", []string{"passthrough:///leader:1"}, opts, 10*time.Second)
	defer leader.close()
	for _, tc := range []struct {
		name string
		call func() error
		code codes.Code
	}{
		{"not a neighbour", func() error {
			_, err := leader.Digest(ctx, &pb.DigestRequest{From: "d-2", To: "s-1", Buckets: 64})
			return err
		}, codes.PermissionDenied},
		{"another node", func() error {
			_, err := leader.CaseVersions(ctx, &pb.CaseVersionsRequest{From: "d-1", To: "s-2", Buckets: 64})
			return err
		}, codes.InvalidArgument},
		{"bad buckets", func() error {
			_, err := leader.Digest(ctx, &pb.DigestRequest{From: "d-1", To: "s-1", Buckets: 48})
			return err
		}, codes.InvalidArgument},
		{"bucket out of range", func() error {
			_, err := leader.CaseVersions(ctx, &pb.CaseVersionsRequest{From: "d-1", To: "s-1", Buckets: 64, Bucket: []uint32{64}})
			return err
		}, codes.InvalidArgument},
		{"too many ids", func() error {
			_, err := leader.FetchCases(ctx, &pb.FetchCasesRequest{From: "d-1", To: "s-1", CaseIds: make([]string, MaxFetch+1)})
			return err
		}, codes.InvalidArgument},
		{"follower only", func() error {
			f := newGRPCPeer("s-1", []string{"passthrough:///follower:1"}, opts, 10*time.Second)
			defer f.close()
			_, err := f.Repair(ctx, &pb.RepairRequest{From: "d-1", To: "s-1", Drop: []string{x.Id}})
			return err
		}, codes.Unavailable},
		{"no anti-entropy", func() error {
			f := newGRPCPeer("s-1", []string{"passthrough:///bare:1"}, opts, 10*time.Second)
			defer f.close()
			_, err := f.Digest(ctx, &pb.DigestRequest{From: "d-1", To: "s-1", Buckets: 64})
			return err
		}, codes.Unimplemented},
	} {
		if err := tc.call(); status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}
	if child.get(t, x.Id) == nil {
		t.Fatal("a refused call changed the store")
	}
	// Repair through the leader's log: the stray copy goes.
	r, err := leader.Repair(ctx, &pb.RepairRequest{From: "d-1", To: "s-1", Drop: []string{x.Id}})
	if err != nil || r.Applied != 1 || child.get(t, x.Id) != nil {
		t.Fatalf("repair: %v, %v", r, err)
	}
}
