package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// fakeFeed serves two watches: the first sends two changes and drops the
// connection; the second must resume from the token of the first, sends one
// change and then answers that the position was compacted.
type fakeFeed struct {
	pb.UnimplementedFeedServiceServer
	mu   sync.Mutex
	reqs []*pb.WatchCasesRequest
}

func change(rev, version uint64, action pb.Action, state pb.State) *pb.CaseChange {
	return &pb.CaseChange{Revision: rev, CaseId: "320582-20261122-000001", Version: version, Action: action, State: state,
		OwnerUnit: "huanwei-01", GridCode: "320582110152102", Overdue: rev == 3}
}

func (f *fakeFeed) WatchCases(r *pb.WatchCasesRequest, ss pb.FeedService_WatchCasesServer) error {
	f.mu.Lock()
	f.reqs = append(f.reqs, r)
	n := len(f.reqs)
	f.mu.Unlock()
	switch n {
	case 1:
		_ = ss.Send(&pb.WatchCasesResponse{Revision: 0, ResumeToken: "tok-0", Heartbeat: true})
		_ = ss.Send(&pb.WatchCasesResponse{Changes: []*pb.CaseChange{
			change(1, 2, pb.Action_ACTION_DISPATCH, pb.State_STATE_DISPATCHED),
			change(2, 3, pb.Action_ACTION_ACCEPT, pb.State_STATE_ACCEPTED)}, Revision: 2, ResumeToken: "tok-2"})
		return status.Error(codes.Unavailable, "replica shutting down")
	case 2:
		_ = ss.Send(&pb.WatchCasesResponse{Changes: []*pb.CaseChange{change(3, 4, pb.Action_ACTION_SUPERVISE, pb.State_STATE_ACCEPTED)}, Revision: 3, ResumeToken: "tok-3"})
		st, _ := status.New(codes.OutOfRange, "feed position compacted").WithDetails(&errdetails.ErrorInfo{Reason: "FEED_COMPACTED", Metadata: map[string]string{"current_revision": "900"}})
		return st.Err()
	}
	return status.Error(codes.Internal, "called too often")
}

func TestWatchPrintsResumesAndExplains(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	f := &fakeFeed{}
	pb.RegisterFeedServiceServer(srv, f)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)

	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"--addr", lis.Addr().String(), "--token", "x", "cases", "watch",
		"--from", "41", "--state", "dispatched,accepted", "--unit", "huanwei-01"}, &out, &errb)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (the compacted position ends the watch); stderr:\n%s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want one per change:\n%s", len(lines), out.String())
	}
	for i, want := range [][]string{
		{"1 ", "320582-20261122-000001", "v2", "dispatch", "dispatched", "unit=huanwei-01", "grid=320582110152102"},
		{"2 ", "v3", "accept", "accepted"},
		{"3 ", "v4", "supervise", "overdue"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i+1, lines[i], w)
			}
		}
	}
	f.mu.Lock()
	reqs := f.reqs
	f.mu.Unlock()
	if len(reqs) != 2 {
		t.Fatalf("%d watches, want 2 (one resume)", len(reqs))
	}
	if r := reqs[0]; r.GetAfterRevision() != 41 || r.ResumeToken != "" || len(r.Filter.GetStates()) != 2 || r.Filter.GetOwnerUnit() != "huanwei-01" {
		t.Errorf("first watch: %v", r)
	}
	if r := reqs[1]; r.ResumeToken != "tok-2" || r.AfterRevision != nil || r.Filter.GetOwnerUnit() != "huanwei-01" {
		t.Errorf("the resume: %v, want resume_token tok-2 with the same filter", r)
	}
	for _, want := range []string{"reconnecting", "OutOfRange", "cases list", "--from 900"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb.String())
		}
	}
}

func TestWatchFromFlag(t *testing.T) {
	for in, want := range map[string]watchPos{"now": {}, "": {}, "oldest": {fromOldest: true}, "Y2YxOng6Mw": {token: "Y2YxOng6Mw"}} {
		got, err := parseFrom(in)
		if err != nil || got.fromOldest != want.fromOldest || got.token != want.token || got.after != nil {
			t.Errorf("--from %q = %+v, %v", in, got, err)
		}
	}
	if got, err := parseFrom("17"); err != nil || got.after == nil || *got.after != 17 {
		t.Errorf("--from 17 = %+v, %v", got, err)
	}
	if _, err := parseFrom("two words"); err == nil {
		t.Error("--from with a space accepted")
	}
}
