package main

import (
	"context"
	"encoding/csv"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// ownerResolveSampleCity asks the sample city's responsibility catalogue
// (through the node at addr) the example questions of DOMAIN.md section 5.
func ownerResolveSampleCity(t *testing.T, addr string) {
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"city trunk road collapse (市属)", []string{"--kind", "event", "--class", "0401", "--grid", "320505001001002"}, []string{
			`(?m)^owner: +city-municipal$`, `(?m)^node: +city$`, `(?m)^tier: +city$`, `(?m)^rule: +trunk-road-collapse$`,
			`(?m)^catalogue: +2026\.1$`, `(?m)^explanation: +\S`,
		}},
		{"lane collapse (区属)", []string{"--kind", "事件", "--class", "0401", "--grid", "320505001001007", "--at", "2026-03-15"}, []string{
			`(?m)^owner: +320505-roads$`, `(?m)^node: +d-320505$`, `(?m)^tier: +district$`, `(?m)^rule: +lane-collapse-320505$`,
		}},
		{"burst water main in 吴中区: disputed", []string{"--kind", "EVENT", "--class", "0402", "--grid", "320506001001005"}, []string{
			`(?m)^owner: +disputed: no single owner`, `(?m)^dispute: +\S`,
		}},
	} {
		code, out, errOut := runCLI(t, append([]string{"--addr", addr, "owner", "resolve"}, tc.args...)...)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s%s", tc.name, code, out, errOut)
		}
		t.Logf("%s:\n%s", tc.name, out)
		for _, re := range tc.want {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("%s: output lacks %s:\n%s", tc.name, re, out)
			}
		}
		if strings.Contains(out, "disputed") != strings.Contains(tc.name, "disputed") {
			t.Errorf("%s: disputed or not?\n%s", tc.name, out)
		}
	}
	// -o json is the Ownership message.
	code, out, errOut := runCLI(t, "--addr", addr, "-o", "json", "owner", "resolve", "--kind", "event", "--class", "0402", "--grid", "320506001001005")
	var o pb.Ownership
	if code != 0 || protojson.Unmarshal([]byte(out), &o) != nil || !o.Disputed || o.Unit != "" || o.Dispute == "" {
		t.Fatalf("json: exit %d %s\n%s", code, errOut, out)
	}
	// Bad input: the flag or the field is named.
	for _, tc := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"--kind", "event", "--class", "0401"}, 2, []string{`required flag(s) "grid" not set`}},
		{[]string{"--kind", "incident", "--class", "0401", "--grid", "320505001001002"}, 2, []string{"--kind", `unknown kind "incident"`}},
		{[]string{"--kind", "event", "--class", "04", "--grid", "320505001001002"}, 2, []string{"--class"}},
		{[]string{"--kind", "event", "--class", "0401", "--grid", "320505001001002", "--at", "March"}, 2, []string{"--at"}},
		{[]string{"--kind", "event", "--class", "0401", "--grid", "3205050010"}, 1, []string{"error: InvalidArgument", "field: grid_code"}},
	} {
		code, _, errOut := runCLI(t, append([]string{"--addr", addr, "owner", "resolve"}, tc.args...)...)
		if code != tc.code {
			t.Errorf("%q: exit %d, want %d; stderr %q", tc.args, code, tc.code, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%q: stderr lacks %q: %q", tc.args, w, errOut)
			}
		}
	}
}

// fakeOwnership answers ResolveOwner with a fixed answer and records the
// requests.
type fakeOwnership struct {
	pb.UnimplementedOwnershipServiceServer
	mu   sync.Mutex
	reqs []*pb.ResolveOwnerRequest
}

func (f *fakeOwnership) ResolveOwner(_ context.Context, r *pb.ResolveOwnerRequest) (*pb.Ownership, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, proto.Clone(r).(*pb.ResolveOwnerRequest))
	f.mu.Unlock()
	return &pb.Ownership{Unit: "city-water", Node: "city", Tier: pb.Tier_TIER_CITY, Rule: "water-covers", CatalogueVersion: "2026.1",
		Explanation: "上水井盖: 市自来水有限公司"}, nil
}

func TestOwnerResolveRequest(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	f := &fakeOwnership{}
	pb.RegisterOwnershipServiceServer(srv, f)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	withUTC(t)

	code, out, errOut := runCLI(t, "--addr", lis.Addr().String(), "owner", "resolve", "--kind", "component", "--class", "01001",
		"--grid", "320505001001003", "--component", "32050501001000001", "--at", "2026-03-15")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	want := &pb.ResolveOwnerRequest{Kind: pb.Kind_KIND_COMPONENT, MajorCode: "01", MinorCode: "001", GridCode: "320505001001003",
		ComponentId: "32050501001000001"}
	r := f.reqs[0]
	if r.At == nil || !r.At.AsTime().Equal(time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)) {
		t.Fatalf("at %v, want noon of 2026-03-15", r.At)
	}
	r.At = nil
	if !proto.Equal(r, want) {
		t.Fatalf("request %v, want %v", r, want)
	}
	for _, re := range []string{`(?m)^owner: +city-water$`, `(?m)^node: +city$`, `(?m)^tier: +city$`, `(?m)^rule: +water-covers$`, `(?m)^explanation: +上水井盖: 市自来水有限公司$`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output lacks %s:\n%s", re, out)
		}
	}
	// An RFC 3339 --at is sent as is; no --at sends none (the server's now).
	runCLI(t, "--addr", lis.Addr().String(), "owner", "resolve", "--kind", "event", "--class", "0401", "--grid", "320505001001003", "--at", "2026-03-31T23:30:00+08:00")
	runCLI(t, "--addr", lis.Addr().String(), "owner", "resolve", "--kind", "event", "--class", "0401", "--grid", "320505001001003")
	if len(f.reqs) != 3 || !f.reqs[1].At.AsTime().Equal(time.Date(2026, 3, 31, 15, 30, 0, 0, time.UTC)) || f.reqs[2].At != nil {
		t.Fatalf("requests %v", f.reqs)
	}
	// Usage errors reach no server.
	for _, args := range [][]string{
		{"--class", "0401", "--grid", "320505001001003"},
		{"--kind", "event", "--grid", "320505001001003"},
		{"--kind", "event", "--class", "04a1", "--grid", "320505001001003"},
		{"--kind", "event", "--class", "0401", "--grid", "320505001001003", "extra"},
		{"--kind", "event", "--class", "0401", "--grid", "320505001001003", "-o", "csv"},
	} {
		code, _, errOut := runCLI(t, append([]string{"--addr", lis.Addr().String(), "owner", "resolve"}, args...)...)
		if code != 2 || !strings.HasPrefix(errOut, "error: ") {
			t.Errorf("%q: exit %d, stderr %q", args, code, errOut)
		}
	}
	if len(f.reqs) != 3 {
		t.Fatalf("%d requests after usage errors, want 3", len(f.reqs))
	}
}

// fakeReview serves the joint review queue in three pages and records
// DecideOwner and Act requests.
type fakeReview struct {
	pb.UnimplementedCaseServiceServer
	mu      sync.Mutex
	lists   []*pb.ListCasesRequest
	decides []*pb.ActRequest
	acts    []*pb.ActRequest
}

// reviewCases are the queue, reported some time before now.
func reviewCases(now time.Time) []*pb.Case {
	ago := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(now.Add(-d)) }
	return []*pb.Case{
		{Id: "320505-20190304-000012", Kind: pb.Kind_KIND_COMPONENT, MajorCode: "02", MinorCode: "03", GridCode: "320505001001003",
			ReportedAt: ago(400 * 24 * time.Hour), Holder: "city",
			Ownership: &pb.Ownership{Disputed: true, InReview: true, Dispute: "no rule covers component 0203 at 320505001001003",
				Reasons: []string{"referred to joint review by reconciler at d-320505: disputed ownership", "city-umb: not a city facility"}}},
		{Id: "320505-20240101-000003", Kind: pb.Kind_KIND_EVENT, MajorCode: "04", MinorCode: "01", GridCode: "320505001001007",
			ReportedAt: ago(3*24*time.Hour + time.Hour), Holder: "city",
			Ownership: &pb.Ownership{Unit: "320505-roads", InReview: true, Rejections: 2,
				Reasons: []string{"owner 320505-roads returned it (道路所): 不属于我所", "owner 320505-roads returned it (道路所): 仍不属于"}}},
		{Id: "320505-20261122-000001", Kind: pb.Kind_KIND_EVENT, MajorCode: "04", MinorCode: "02", GridCode: "320505002001001",
			ReportedAt: ago(2*time.Hour + 30*time.Second), Holder: "city", Ownership: &pb.Ownership{InReview: true}},
	}
}

func (f *fakeReview) ListCases(_ context.Context, r *pb.ListCasesRequest) (*pb.ListCasesResponse, error) {
	f.mu.Lock()
	f.lists = append(f.lists, proto.Clone(r).(*pb.ListCasesRequest))
	f.mu.Unlock()
	i := map[string]int{"": 0, "p2": 1, "p3": 2}[r.PageToken]
	return &pb.ListCasesResponse{Cases: reviewCases(time.Now())[i : i+1], NextPageToken: []string{"p2", "p3", ""}[i]}, nil
}

func (f *fakeReview) DecideOwner(_ context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	f.mu.Lock()
	f.decides = append(f.decides, proto.Clone(r).(*pb.ActRequest))
	f.mu.Unlock()
	c := reviewCases(time.Now())[0]
	c.State, c.OwnerUnit, c.OwnerTier, c.Holder, c.Version = pb.State_STATE_DISPATCHED, r.Unit, pb.Tier_TIER_DISTRICT, "d-320505", 9
	c.Ownership = &pb.Ownership{Unit: r.Unit, Tier: pb.Tier_TIER_DISTRICT, Node: "d-320505", Rule: "joint-review", Decided: true,
		Explanation: "decided by joint review (会诊) by " + r.Actor + ": " + r.Note, Reasons: c.Ownership.Reasons}
	return &pb.CaseResponse{Case: c}, nil
}

func (f *fakeReview) Act(_ context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	f.mu.Lock()
	f.acts = append(f.acts, proto.Clone(r).(*pb.ActRequest))
	f.mu.Unlock()
	return &pb.CaseResponse{Case: &pb.Case{Id: r.CaseId, State: pb.State_STATE_FILED, Version: 4}}, nil
}

func startFakeReview(t *testing.T) (*fakeReview, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	f := &fakeReview{}
	pb.RegisterCaseServiceServer(srv, f)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return f, lis.Addr().String()
}

func TestReviewListPagesThrough(t *testing.T) {
	withUTC(t)
	f, addr := startFakeReview(t)
	code, out, errOut := runCLI(t, "--addr", addr, "review", "list")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if len(f.lists) != 3 {
		t.Fatalf("%d ListCases calls, want 3 pages", len(f.lists))
	}
	for _, r := range f.lists {
		if !r.InReview || r.PageSize != 500 {
			t.Fatalf("request %v: want in_review and pages of 500", r)
		}
	}
	for _, re := range []string{
		`(?m)^joint review queue \(疑难案件会诊\): 3 cases$`,
		`(?m)^ID +CLASS +GRID +AGE +HELD AT +REJECTIONS +DISPUTE +REASONS$`,
		`(?m)^320505-20190304-000012 +component 0203 +320505001001003 +1y1mo +city +0 +no rule covers component 0203 at 320505001001003 +referred to joint review by reconciler at d-320505: disputed ownership \| city-umb: not a city facility$`,
		`(?m)^320505-20240101-000003 +event 0401 +320505001001007 +3d +city +2 +- +owner 320505-roads returned it \(道路所\): 不属于我所 \| owner 320505-roads returned it \(道路所\): 仍不属于$`,
		`(?m)^320505-20261122-000001 +event 0402 +320505002001001 +2h +city +0 +- +-$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output lacks %s:\n%s", re, out)
		}
	}

	code, out, _ = runCLI(t, "--addr", addr, "-o", "csv", "review", "list")
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if code != 0 || err != nil || len(recs) != 4 {
		t.Fatalf("csv: exit %d %v\n%s", code, err, out)
	}
	if strings.Join(recs[0], ",") != "id,class,grid,reported_at,age_days,held_at,rejections,dispute,reasons" ||
		recs[2][0] != "320505-20240101-000003" || recs[2][6] != "2" || !strings.HasPrefix(recs[2][8], "owner 320505-roads returned it") {
		t.Fatalf("csv rows %q", recs)
	}
	code, out, _ = runCLI(t, "--addr", addr, "-o", "json", "review", "list")
	var resp pb.ListCasesResponse
	if code != 0 || protojson.Unmarshal([]byte(out), &resp) != nil || len(resp.Cases) != 3 || resp.Cases[1].Ownership.Rejections != 2 {
		t.Fatalf("json: exit %d\n%s", code, out)
	}
}

func TestReviewDecideRequest(t *testing.T) {
	withUTC(t)
	f, addr := startFakeReview(t)
	code, out, errOut := runCLI(t, "--addr", addr, "review", "decide", "320505-20190304-000012", "--unit", "320505-roads",
		"--note", "handover record 2019", "--actor", "张主任", "--time-limit", "2d", "--request-id", "rv-1")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	want := &pb.ActRequest{CaseId: "320505-20190304-000012", RequestId: "rv-1", Action: pb.Action_ACTION_DECIDE_OWNER, Actor: "张主任",
		Role: pb.Role_ROLE_SHIFT_LEADER, Note: "handover record 2019", Unit: "320505-roads", TimeLimitMinutes: 2 * 24 * 60}
	if len(f.decides) != 1 || !proto.Equal(f.decides[0], want) {
		t.Fatalf("requests %v, want %v", f.decides, want)
	}
	for _, re := range []string{
		`(?m)^decided: 320505-20190304-000012 is owned by 320505-roads, held by d-320505$`,
		`(?m)^holder: +d-320505$`,
		`(?m)^ownership: +320505-roads \(district\) at node d-320505$`,
		`(?m)^  rule: +joint-review$`,
		`(?m)^  status: +decided by joint review \(会诊裁定\)$`,
		`(?m)^  reasons: +referred to joint review by reconciler at d-320505: disputed ownership$`,
		`(?m)^ +city-umb: not a city facility$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output lacks %s:\n%s", re, out)
		}
	}
	// Without --actor: the login name; without --time-limit: none (the
	// server stamps the class's deadline).
	t.Setenv("USER", "lead-7")
	if code, _, errOut := runCLI(t, "--addr", addr, "review", "decide", "x", "--unit", "u", "--note", "n"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if r := f.decides[1]; r.Actor != "lead-7" || r.TimeLimitMinutes != 0 || r.Deadline != nil || r.RequestId == "" {
		t.Fatalf("request %v", r)
	}
	// Usage errors name the flag and send nothing.
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"x", "--note", "n"}, "--unit"},
		{[]string{"x", "--unit", "u"}, "--note"},
		{[]string{"x", "--unit", "u", "--note", "n", "--unit-tier", "province"}, "--unit-tier"},
		{[]string{"x", "--unit", "u", "--note", "n", "--time-limit", "90s"}, "--time-limit"},
		{[]string{"--unit", "u", "--note", "n"}, "arg"},
	} {
		code, _, errOut := runCLI(t, append([]string{"--addr", addr, "review", "decide"}, tc.args...)...)
		if code != 2 || !strings.Contains(errOut, tc.flag) {
			t.Errorf("%q: exit %d, stderr %q; want 2 naming %s", tc.args, code, errOut, tc.flag)
		}
	}
	if len(f.decides) != 2 {
		t.Fatalf("%d DecideOwner calls after usage errors", len(f.decides))
	}

	// cases act takes the ownership verbs too (Act with the action).
	for _, tc := range []struct {
		args []string
		want *pb.ActRequest
	}{
		{[]string{"decide-owner", "--unit", "320505-roads", "--note", "会诊", "--role", "shift-leader"},
			&pb.ActRequest{Action: pb.Action_ACTION_DECIDE_OWNER, Unit: "320505-roads", Note: "会诊", Role: pb.Role_ROLE_SHIFT_LEADER}},
		{[]string{"提请会诊", "--note", "both refuse", "--role", "dispatcher"},
			&pb.ActRequest{Action: pb.Action_ACTION_REFER_REVIEW, Note: "both refuse", Role: pb.Role_ROLE_DISPATCHER}},
		{[]string{"reassign", "--unit", "320505-parks", "--note", "trees", "--time-limit", "4h", "--role", "dispatcher"},
			&pb.ActRequest{Action: pb.Action_ACTION_REASSIGN, Unit: "320505-parks", Note: "trees", TimeLimitMinutes: 240, Role: pb.Role_ROLE_DISPATCHER}},
	} {
		args := append([]string{"--addr", addr, "cases", "act", "c-1", tc.args[0], "--actor", "a", "--request-id", "q"}, tc.args[1:]...)
		if code, _, errOut := runCLI(t, args...); code != 0 {
			t.Fatalf("%q: exit %d %s", tc.args, code, errOut)
		}
		tc.want.CaseId, tc.want.Actor, tc.want.RequestId = "c-1", "a", "q"
		if got := f.acts[len(f.acts)-1]; !proto.Equal(got, tc.want) {
			t.Errorf("%q: request %v, want %v", tc.args, got, tc.want)
		}
	}
}

func TestWriteCaseOwnership(t *testing.T) {
	withUTC(t)
	c := sampleCase()
	c.LegacyId, c.Holder = "320505-L0000042", "d-320505"
	c.Ownership = &pb.Ownership{Disputed: true, Dispute: "rules water-main-burst and water-main-burst-320506 disagree", InReview: true,
		Rejections: 1, Rule: "", Reasons: []string{"owner city-water returned it (水司): 非我司管网", "referred to joint review by reconciler at d-320506: disputed"}}
	var buf strings.Builder
	if err := writeCase(&buf, c, false, t0); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, re := range []string{
		`(?m)^holder: +d-320505$`,
		`(?m)^legacy id: +320505-L0000042$`,
		`(?m)^ownership: +disputed: no single owner$`,
		`(?m)^  rule: +-$`,
		`(?m)^  status: +disputed: rules water-main-burst and water-main-burst-320506 disagree; in the joint review queue \(疑难案件会诊\)$`,
		`(?m)^  rejections: +1$`,
		`(?m)^  reasons: +owner city-water returned it \(水司\): 非我司管网$`,
		`(?m)^ +referred to joint review by reconciler at d-320506: disputed$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output lacks %s:\n%s", re, out)
		}
	}
	// A case without ownership or legacy id shows neither.
	buf.Reset()
	_ = writeCase(&buf, sampleCase(), false, t0)
	if s := buf.String(); strings.Contains(s, "ownership:") || strings.Contains(s, "legacy id:") || strings.Contains(s, "holder:") {
		t.Errorf("empty ownership shown:\n%s", s)
	}
}
