package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/export"
)

// fakeEval answers GetEvaluation with a fixed two-row report for the
// requested dimension, and refuses the scheme "bad".
type fakeEval struct {
	pb.UnimplementedCaseServiceServer
	mu   sync.Mutex
	reqs []*pb.EvaluationRequest
}

func (f *fakeEval) GetEvaluation(_ context.Context, r *pb.EvaluationRequest) (*pb.EvaluationReport, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, proto.Clone(r).(*pb.EvaluationRequest))
	f.mu.Unlock()
	if r.Scheme == "bad" {
		st, _ := status.New(codes.InvalidArgument, `scheme: "bad" is not a scheme`).WithDetails(&errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "scheme", Description: "presets: department, jinhua"}},
		})
		return nil, st.Err()
	}
	return evalReport(r.Dimension), nil
}

func evalReport(dim string) *pb.EvaluationReport {
	return &pb.EvaluationReport{Period: "week", PeriodKey: "2026-W47", Dimension: dim, Scheme: "department", Rows: []*pb.EvaluationRow{
		{Key: "water-co", Filed: 12, Dispatched: 11, Due: 10, Closed: 9, ClosedOnTime: 8, HandledOnTime: 9, Rework: 1, Overdue: 2, Extensions: 1, Recurrence: 0,
			ClosureRate: 90, OnTimeClosureRate: 80, OnTimeHandlingRate: 90, ReworkRate: 10, ExtensionRate: 9.09, Score: 91, Rank: 1},
		{Key: "监督员-张三", Filed: 3, Due: 4, Closed: 1, ClosureRate: 25, Score: 40.5, Rank: 2},
	}}
}

func startFakeEval(t *testing.T) (*fakeEval, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	f := &fakeEval{}
	pb.RegisterCaseServiceServer(srv, f)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return f, lis.Addr().String()
}

func TestReportTable(t *testing.T) {
	f, addr := startFakeEval(t)
	code, out, errOut := runCLI(t, "--addr", addr, "report", "--period", "week", "--at", "2026-11-20", "--dimension", "unit",
		"--region-digits", "12", "--scheme", "jinhua", "--consistency", "stale")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	want := &pb.EvaluationRequest{Period: "week", At: "2026-11-20", Dimension: "unit", RegionDigits: 12, Scheme: "jinhua", Consistency: pb.Consistency_CONSISTENCY_STALE}
	if len(f.reqs) != 1 || !proto.Equal(f.reqs[0], want) {
		t.Fatalf("requests %v, want %v", f.reqs, want)
	}
	for _, re := range []string{
		`(?m)^2026-W47 \(week\) by unit, scheme department: 2 rows$`,
		`(?m)^RANK +SCORE +FILED +DISPATCHED +DUE +CLOSED +ON TIME +HANDLED ON TIME +REWORK +OVERDUE +EXT +RECUR +CLOSURE% +ON-TIME% +HANDLING% +REWORK% +EXT% +UNIT$`,
		`(?m)^1 +91\.00 +12 +11 +10 +9 +8 +9 +1 +2 +1 +0 +90\.00 +80\.00 +90\.00 +10\.00 +9\.09 +water-co$`,
		`(?m)^2 +40\.50 +3 +0 +4 +1 .* 25\.00 .*监督员-张三$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output lacks %s:\n%s", re, out)
		}
	}
}

func TestReportDefaults(t *testing.T) {
	f, addr := startFakeEval(t)
	before := time.Now().Format("2006-01-02")
	if code, out, errOut := runCLI(t, "--addr", addr, "report"); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	after := time.Now().Format("2006-01-02")
	r := f.reqs[0]
	if r.Period != "week" || r.Dimension != "unit" || r.RegionDigits != 9 || r.Scheme != "department" || (r.At != before && r.At != after) {
		t.Fatalf("default request %v", r)
	}
}

func TestReportJSONAndCSV(t *testing.T) {
	_, addr := startFakeEval(t)
	code, out, errOut := runCLI(t, "--addr", addr, "-o", "json", "report", "--dimension", "region")
	if code != 0 {
		t.Fatalf("json: exit %d: %s", code, errOut)
	}
	var got struct {
		PeriodKey string `json:"period_key"`
		Dimension string
		Rows      []struct {
			Key         string
			Due         string
			ClosureRate float64 `json:"closure_rate"`
		}
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.PeriodKey != "2026-W47" || got.Dimension != "region" ||
		len(got.Rows) != 2 || got.Rows[0].Due != "10" || got.Rows[0].ClosureRate != 90 {
		t.Fatalf("json %+v (%v):\n%s", got, err, out)
	}
	code, out, errOut = runCLI(t, "--addr", addr, "-o", "csv", "report", "--dimension", "inspector")
	if code != 0 {
		t.Fatalf("csv: exit %d: %s", code, errOut)
	}
	rep, err := export.ReadEvaluationCSV(strings.NewReader(out))
	if err != nil || !proto.Equal(rep, evalReport("inspector")) {
		t.Fatalf("csv read back %v (%v):\n%s", rep, err, out)
	}
}

func TestReportXLSX(t *testing.T) {
	f, addr := startFakeEval(t)
	path := filepath.Join(t.TempDir(), "bulletin.xlsx")
	code, out, errOut := runCLI(t, "--addr", addr, "report", "--at", "2026-11-20", "--dimension", "unit, region,inspector", "--xlsx", path)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if len(f.reqs) != 3 || f.reqs[1].Dimension != "region" || f.reqs[2].At != "2026-11-20" {
		t.Fatalf("requests %v", f.reqs)
	}
	if !strings.Contains(errOut, "wrote "+path+" (3 sheets)") || strings.Count(out, "scheme department: 2 rows") != 3 {
		t.Fatalf("stdout %q stderr %q", out, errOut)
	}
	wb, err := excelize.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer wb.Close()
	if sheets := wb.GetSheetList(); strings.Join(sheets, "|") != "2026-W47 unit|2026-W47 region|2026-W47 inspector" {
		t.Fatalf("sheets %q", sheets)
	}
	if v, _ := wb.GetCellValue("2026-W47 inspector", "B5"); v != "监督员-张三" {
		t.Fatalf("B5 = %q", v)
	}
}

func TestReportErrors(t *testing.T) {
	_, addr := startFakeEval(t)
	for _, args := range [][]string{
		{"-o", "yaml", "report"},
		{"-o", "json", "report", "--dimension", "unit,region"},
		{"report", "--dimension", " , "},
		{"report", "--consistency", "eventual"},
		{"report", "--region-digits", "nine"},
		{"report", "extra"},
	} {
		code, _, errOut := runCLI(t, append([]string{"--addr", addr}, args...)...)
		if code != 2 || !strings.Contains(errOut, "error:") {
			t.Errorf("%q: exit %d, stderr %q; want a usage error", args, code, errOut)
		}
	}
	path := filepath.Join(t.TempDir(), "none.xlsx")
	code, _, errOut := runCLI(t, "--addr", addr, "report", "--scheme", "bad", "--xlsx", path)
	if code != 1 || !strings.Contains(errOut, "error: InvalidArgument") || !strings.Contains(errOut, "field: scheme") {
		t.Fatalf("refused call: exit %d, stderr %q", code, errOut)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("a failed report left %s (%v)", path, err)
	}
}
