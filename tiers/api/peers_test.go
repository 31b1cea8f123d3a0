package api_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/api"
)

// forwardLeader is a leader's ForwardService: of this release (Apply), or
// of one before Apply (Propose only).
type forwardLeader struct {
	pb.UnimplementedForwardServiceServer
	old bool
}

func (l *forwardLeader) Propose(_ context.Context, r *pb.ProposeRequest) (*pb.CaseResponse, error) {
	return &pb.CaseResponse{Case: &pb.Case{Id: "320582-20261203-000007"}, Replayed: true}, nil
}

func (l *forwardLeader) Apply(_ context.Context, r *pb.ProposeRequest) (*pb.ProposeResponse, error) {
	if l.old {
		return nil, status.Error(codes.Unimplemented, "unknown method Apply")
	}
	return &pb.ProposeResponse{Result: &pb.CommandResult{Imported: 2, Already: 1, CaseIds: []string{"a", "b", "c"}}}, nil
}

func serveForward(t *testing.T, l *forwardLeader) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	pb.RegisterForwardServiceServer(gs, l)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}

// A follower's forward returns the leader's state machine's result (an
// import's counts and ids, not just a case); a leader of a release before
// Apply is asked through Propose and its case comes back.
func TestPeersForwardCarriesTheResult(t *testing.T) {
	p := api.NewPeers()
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := &pb.Command{RequestId: "fwd-r", Body: &pb.Command_ImportCases{ImportCases: &pb.ImportCases{}}}

	res, err := p.Propose(ctx, serveForward(t, &forwardLeader{}), cmd)
	if err != nil || res.Imported != 2 || res.Already != 1 || len(res.CaseIDs) != 3 {
		t.Fatalf("forward to a leader of this release: %+v, %v", res, err)
	}
	res, err = p.Propose(ctx, serveForward(t, &forwardLeader{old: true}), cmd)
	if err != nil || res.Case.GetId() != "320582-20261203-000007" || !res.Replayed {
		t.Fatalf("forward to a leader of an older release: %+v, %v", res, err)
	}
}
