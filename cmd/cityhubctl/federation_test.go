package main

import (
	"context"
	"encoding/json"
	"net"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// fakeCluster answers FederationStatus with resp (or err) and counts calls.
type fakeCluster struct {
	pb.UnimplementedClusterServiceServer
	resp  *pb.FederationStatusResponse
	err   error
	calls int
}

func (f *fakeCluster) FederationStatus(context.Context, *pb.FederationStatusRequest) (*pb.FederationStatusResponse, error) {
	f.calls++
	return f.resp, f.err
}

func startFakeCluster(t *testing.T, f *fakeCluster) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterClusterServiceServer(srv, f)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

var streetStatus = &pb.FederationStatusResponse{
	Node: "s-320505001", Tier: "street", Parent: "d-320505",
	Links: []*pb.LinkStatus{
		{Peer: "d-320505", Direction: "parent", OutLastSeq: 120, OutAcked: 117, LagEntries: 3, LagSeconds: 2.25, InHighWater: 40, Relaying: true,
			LastError: "rpc error: code = Unavailable\ndesc = connection refused"},
		{Peer: "c-320505001001", Direction: "child", OutLastSeq: 15, OutAcked: 15, InHighWater: 61, Relaying: true},
	},
}

func TestFederationStatusTable(t *testing.T) {
	f := &fakeCluster{resp: streetStatus}
	addr := startFakeCluster(t, f)
	code, out, errOut := runCLI(t, "--addr", addr, "federation", "status")
	if code != 0 || f.calls != 1 {
		t.Fatalf("exit %d, %d calls\n%s%s", code, f.calls, out, errOut)
	}
	for _, re := range []string{
		`(?m)^node: +s-320505001$`, `(?m)^tier: +street$`, `(?m)^parent: +d-320505$`,
		`(?m)^PEER +DIRECTION +QUEUED +ACKED +LAG +LAG AGE +RECEIVED +RELAYING +LAST ERROR$`,
		// The error is kept on one line.
		`(?m)^d-320505 +parent +120 +117 +3 +2\.2s +40 +yes +rpc error: code = Unavailable desc = connection refused$`,
		`(?m)^c-320505001001 +child +15 +15 +0 +0\.0s +61 +yes +-$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output lacks %s:\n%s", re, out)
		}
	}
}

func TestFederationStatusJSON(t *testing.T) {
	addr := startFakeCluster(t, &fakeCluster{resp: streetStatus})
	code, out, errOut := runCLI(t, "--addr", addr, "-o", "json", "federation", "status")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got struct {
		Node, Tier, Parent string
		Links              []struct {
			Peer, Direction string
			OutLastSeq      string  `json:"out_last_seq"`
			LagEntries      string  `json:"lag_entries"`
			LagSeconds      float64 `json:"lag_seconds"`
			InHighWater     string  `json:"in_high_water"`
			LastError       string  `json:"last_error"`
			Relaying        bool
		}
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if got.Node != "s-320505001" || got.Parent != "d-320505" || len(got.Links) != 2 {
		t.Fatalf("%+v", got)
	}
	l := got.Links[0]
	if l.Peer != "d-320505" || l.Direction != "parent" || l.OutLastSeq != "120" || l.LagEntries != "3" || l.LagSeconds != 2.25 ||
		l.InHighWater != "40" || !l.Relaying || !strings.Contains(l.LastError, "connection refused") {
		t.Errorf("link: %+v", l)
	}
}

func TestFederationStatusStandaloneAndErrors(t *testing.T) {
	addr := startFakeCluster(t, &fakeCluster{resp: &pb.FederationStatusResponse{}})
	code, out, _ := runCLI(t, "--addr", addr, "federation", "status")
	if code != 0 || !strings.Contains(out, "not federated") {
		t.Errorf("standalone node: exit %d, %q", code, out)
	}
	addr = startFakeCluster(t, &fakeCluster{err: status.Error(codes.Unavailable, "no leader")})
	code, _, errOut := runCLI(t, "--addr", addr, "federation", "status")
	if code != 1 || !strings.Contains(errOut, "error: Unavailable: no leader") {
		t.Errorf("failed call: exit %d, stderr %q", code, errOut)
	}
	if code, _, _ := runCLI(t, "--addr", addr, "federation", "status", "extra"); code != 2 {
		t.Errorf("extra argument: exit %d, want 2", code)
	}
}
