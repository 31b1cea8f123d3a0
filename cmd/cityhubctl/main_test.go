package main

import (
	"bytes"
	"context"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// fakeCases records the requests it gets; reports fail with a field error.
type fakeCases struct {
	pb.UnimplementedCaseServiceServer
	mu    sync.Mutex
	acts  []*pb.ActRequest
	lists []*pb.ListCasesRequest
}

func (f *fakeCases) ReportCase(context.Context, *pb.ReportCaseRequest) (*pb.CaseResponse, error) {
	st, _ := status.New(codes.InvalidArgument, "grid code is 14 digits, want 15").WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "grid_code", Description: "want 15 digits"}},
	})
	return nil, st.Err()
}

func (f *fakeCases) Act(_ context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	f.mu.Lock()
	f.acts = append(f.acts, r)
	f.mu.Unlock()
	return &pb.CaseResponse{Case: &pb.Case{Id: r.CaseId, State: pb.State_STATE_DISPATCHED, Version: 3}}, nil
}

// ListCases serves three pages of one case each.
func (f *fakeCases) ListCases(_ context.Context, r *pb.ListCasesRequest) (*pb.ListCasesResponse, error) {
	f.mu.Lock()
	f.lists = append(f.lists, r)
	f.mu.Unlock()
	next := map[string]string{"": "p2", "p2": "p3", "p3": ""}[r.PageToken]
	return &pb.ListCasesResponse{
		Cases:         []*pb.Case{{Id: "320582-20261122-00000" + map[string]string{"": "1", "p2": "2", "p3": "3"}[r.PageToken]}},
		NextPageToken: next,
	}, nil
}

func startFake(t *testing.T) (*fakeCases, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	f := &fakeCases{}
	pb.RegisterCaseServiceServer(srv, f)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return f, lis.Addr().String()
}

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestActSendsRequest(t *testing.T) {
	f, addr := startFake(t)
	code, out, errOut := runCLI(t, "--addr", addr, "cases", "act", "320582-20261122-000001", "dispatch",
		"--unit", "huanwei-01", "--unit-tier", "district", "--time-limit", "4h",
		"--actor", "赵六", "--role", "dispatcher", "--note", "go", "--attach", "a.jpg", "--attach", "b.jpg",
		"--expected-version", "2")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	m := regexp.MustCompile(`(?m)^request-id: ([0-9a-f]{32})$`).FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("no generated request id on stderr: %q", errOut)
	}
	if len(f.acts) != 1 {
		t.Fatalf("%d Act calls", len(f.acts))
	}
	r := f.acts[0]
	if r.RequestId != m[1] || r.Action != pb.Action_ACTION_DISPATCH || r.Role != pb.Role_ROLE_DISPATCHER ||
		r.Actor != "赵六" || r.Unit != "huanwei-01" || r.UnitTier != pb.Tier_TIER_DISTRICT ||
		r.TimeLimitMinutes != 240 || r.ExpectedVersion != 2 || r.Note != "go" ||
		strings.Join(r.Attachments, ",") != "a.jpg,b.jpg" || r.Deadline != nil {
		t.Errorf("request: %v", r)
	}
	if !strings.Contains(out, "dispatched") {
		t.Errorf("stdout: %q", out)
	}

	// A given request id is sent as is and not echoed; --extension is minutes.
	code, _, errOut = runCLI(t, "--addr", addr, "cases", "act", "320582-20261122-000001", "ACTION_REQUEST_EXTENSION",
		"--extension", "1d", "--actor", "huanwei-01", "--role", "HANDLING_UNIT", "--request-id", "retry-7")
	if code != 0 || strings.Contains(errOut, "request-id") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if r := f.acts[1]; r.RequestId != "retry-7" || r.ExtensionMinutes != 1440 || r.Action != pb.Action_ACTION_REQUEST_EXTENSION {
		t.Errorf("request: %v", r)
	}

	// transfer-up (上交) sends the action with its reason and nothing else.
	for i, name := range []string{"transfer-up", "上交"} {
		code, out, errOut = runCLI(t, "--addr", addr, "cases", "act", "320582-20261122-000001", name,
			"--note", "city trunk road", "--actor", "李四", "--role", "shift-leader", "--request-id", "up-"+name)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s%s", name, code, out, errOut)
		}
		if len(f.acts) != 3+i {
			t.Fatalf("%s: %d Act calls", name, len(f.acts))
		}
		r := f.acts[2+i]
		if r.Action != pb.Action_ACTION_TRANSFER_UP || r.Note != "city trunk road" || r.Actor != "李四" ||
			r.Role != pb.Role_ROLE_SHIFT_LEADER || r.RequestId != "up-"+name || r.CaseId != "320582-20261122-000001" ||
			r.Unit != "" || r.TimeLimitMinutes != 0 || r.Deadline != nil || r.ExtensionMinutes != 0 {
			t.Errorf("%s: request %v", name, r)
		}
	}
}

func TestCallErrorExitsOne(t *testing.T) {
	_, addr := startFake(t)
	code, _, errOut := runCLI(t, "--addr", addr, "cases", "report", "--source", "inspector", "--kind", "event",
		"--major", "01", "--minor", "02", "--grid", "32058211015210", "--desc", "x", "--actor", "a", "--role", "inspector")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	for _, want := range []string{"request-id: ", "error: InvalidArgument: grid code is 14 digits, want 15", "field: grid_code: want 15 digits"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
}

func TestListAll(t *testing.T) {
	f, addr := startFake(t)
	code, out, errOut := runCLI(t, "--addr", addr, "cases", "list", "--all", "--limit", "1", "--state", "dispatched", "--due-before", "2h")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, id := range []string{"000001", "000002", "000003"} {
		if !strings.Contains(out, id) {
			t.Errorf("output lacks case %s:\n%s", id, out)
		}
	}
	if strings.Contains(out, "next-page-token") || len(f.lists) != 3 {
		t.Errorf("%d calls; output:\n%s", len(f.lists), out)
	}
	r := f.lists[0]
	if r.PageSize != 1 || r.State != pb.State_STATE_DISPATCHED || r.DueBefore == nil ||
		r.DueBefore.AsTime().Sub(time.Now()) > 2*time.Hour || r.DueBefore.AsTime().Sub(time.Now()) < 119*time.Minute {
		t.Errorf("request: %v", r)
	}

	if r.Overdue {
		t.Error("overdue asked for without --overdue")
	}
	// --overdue asks for the 督办 list.
	if code, _, errOut := runCLI(t, "--addr", addr, "cases", "list", "--overdue"); code != 0 || !f.lists[len(f.lists)-1].Overdue {
		t.Errorf("--overdue: exit %d %s, request %v", code, errOut, f.lists[len(f.lists)-1])
	}

	// Without --all: one page and its token.
	code, out, _ = runCLI(t, "--addr", addr, "cases", "list", "-o", "table")
	if code != 0 || !strings.Contains(out, "next-page-token: p2") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"cases", "act", "320582-20261122-000001", "approve", "--actor", "a", "--role", "dispatcher"},
		{"cases", "act", "320582-20261122-000001", "file", "--actor", "a", "--role", "mayor"},
		{"cases", "act", "320582-20261122-000001", "file", "--role", "shift-leader"}, // no --actor
		{"cases", "act", "320582-20261122-000001"},                                   // no action
		{"cases", "act", "x", "dispatch", "--actor", "a", "--role", "dispatcher", "--time-limit", "90s"},
		{"cases", "act", "x", "dispatch", "--actor", "a", "--role", "dispatcher", "--time-limit", "4h", "--deadline", "2h"},
		{"cases", "get", "x", "--bogus"},
		{"cases", "list", "--state", "open"},
		{"--output", "yaml", "cluster", "status"},
		{"nonsense"},
	} {
		code, _, errOut := runCLI(t, append([]string{"--addr", "127.0.0.1:1"}, args...)...)
		if code != 2 || !strings.HasPrefix(errOut, "error: ") || strings.Contains(errOut, "request-id") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and an error before any request", args, code, errOut)
		}
	}
	code, _, errOut := runCLI(t, "--addr", "127.0.0.1:1", "cases", "act", "x", "bogus", "--actor", "a", "--role", "inspector")
	if code != 2 || !strings.Contains(errOut, "valid: verify, file, reject") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

// TestVersionAndHelp: --version prints the build on one line and --help
// exits 0, without a node to talk to.
func TestVersionAndHelp(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"--version"}, &out, &errOut); code != 0 {
		t.Fatalf("--version exited %d: %s", code, errOut.String())
	}
	if l := out.String(); !strings.HasPrefix(l, "cityhubctl ") || !strings.Contains(l, " go1.") || strings.Count(l, "\n") != 1 {
		t.Errorf("--version printed %q", l)
	}
	out.Reset()
	if code := run(context.Background(), []string{"--help"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "--addr") {
		t.Errorf("--help exited %d, printed %q", code, out.String())
	}
}
