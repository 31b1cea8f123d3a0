package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/evaluation"
	"github.com/cityhub/cityhub/tiers/export"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
	"github.com/cityhub/cityhub/tiers/store"
)

// evalCases are closed and open cases of one week in 2025 (far from the
// clock of any case the test cluster itself might record).
func evalCases() []*pb.Case {
	at := func(day, hour int) *timestamppb.Timestamp {
		return timestamppb.New(time.Date(2025, 3, day, hour, 0, 0, 0, time.UTC))
	}
	var out []*pb.Case
	for i, u := range []string{"huanwei", "huanwei", "yuanlin", "water-co", "water-co", "water-co"} {
		c := &pb.Case{
			Id: fmt.Sprintf("320505-20250310-%06d", i+1), Source: pb.Source_SOURCE_INSPECTOR,
			GridCode: fmt.Sprintf("320505%03d001001", 1+i%2), OwnerUnit: u, State: pb.State_STATE_CLOSED,
			Deadline: at(12, 9),
			History: []*pb.HistoryEntry{
				{Action: pb.Action_ACTION_REPORT, Actor: fmt.Sprintf("insp-%d", i%3), Role: pb.Role_ROLE_INSPECTOR, At: at(10, 1), Version: 1},
				{Action: pb.Action_ACTION_FILE, Actor: "lead", Role: pb.Role_ROLE_SHIFT_LEADER, At: at(10, 2), Version: 2},
				{Action: pb.Action_ACTION_DISPATCH, Actor: "disp", Role: pb.Role_ROLE_DISPATCHER, At: at(10, 3), Unit: u, Version: 3},
				{Action: pb.Action_ACTION_HANDLE, Actor: u, Role: pb.Role_ROLE_HANDLING_UNIT, At: at(11+i%3, 4), Version: 4},
				{Action: pb.Action_ACTION_CLOSE, Actor: "lead", Role: pb.Role_ROLE_SHIFT_LEADER, At: at(11+i%3, 5), Version: 5},
			},
			Version: 5,
		}
		if i == 5 { // still being worked
			c.History, c.State, c.Version = c.History[:3], pb.State_STATE_DISPATCHED, 3
		}
		out = append(out, c)
	}
	return out
}

// observeInto writes the counters of cases into a replica's store, as the
// state machine does.
func observeInto(t *testing.T, s *store.Store, cases []*pb.Case) {
	t.Helper()
	if err := s.Update(func(tx *store.Tx) error {
		for _, c := range cases {
			if err := evaluation.Observe(tx, nil, c, 8*3600); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

var evalWeek = &pb.EvaluationRequest{Period: "week", At: "2025-03-12", Dimension: "unit"}

func TestGetEvaluation(t *testing.T) {
	c := testcluster.New(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cases := evalCases()
	observeInto(t, c.Replica(0).Node.Store(), cases)

	rep, err := c.Cases(0).GetEvaluation(ctx, evalWeek)
	if err != nil {
		t.Fatal(err)
	}
	want := evaluation.Recount(cases, evaluation.Query{Period: "week", At: "2025-03-12", Dimension: "unit"}, 8*3600)
	if !proto.Equal(rep, want) {
		t.Fatalf("report %v\nwant %v", rep, want)
	}
	if rep.PeriodKey != "2025-W11" || rep.Scheme != "department" || len(rep.Rows) != 3 {
		t.Fatalf("report %v", rep)
	}
	for _, r := range rep.Rows {
		if r.Key == "water-co" && (r.Due != 3 || r.Closed != 2 || r.ClosureRate != 66.67) {
			t.Fatalf("water-co %v", r)
		}
	}
	// Regions at district level, the other preset.
	rep, err = c.Cases(0).GetEvaluation(ctx, &pb.EvaluationRequest{Period: "month", At: "2025-03-01", Dimension: "region", RegionDigits: 6, Scheme: "jinhua"})
	if err != nil || len(rep.Rows) != 1 || rep.Rows[0].Key != "320505" || rep.Rows[0].Due != 6 || rep.Scheme != "jinhua" {
		t.Fatalf("district report %v, %v", rep, err)
	}
	// Defaults: this week, units, department.
	before, _ := evaluation.ParsePeriod("week", time.Now().Format(evaluation.DateLayout))
	rep, err = c.Cases(0).GetEvaluation(ctx, &pb.EvaluationRequest{})
	after, _ := evaluation.ParsePeriod("week", time.Now().Format(evaluation.DateLayout))
	if err != nil || rep.Period != "week" || rep.Dimension != "unit" || rep.Scheme != "department" || (rep.PeriodKey != before && rep.PeriodKey != after) {
		t.Fatalf("defaults: %v, %v", rep, err)
	}
	for _, tc := range []struct {
		req   *pb.EvaluationRequest
		field string
	}{
		{&pb.EvaluationRequest{Period: "fortnight"}, "period"},
		{&pb.EvaluationRequest{At: "12/03/2025"}, "at"},
		{&pb.EvaluationRequest{At: "2025-02-30"}, "at"},
		{&pb.EvaluationRequest{Dimension: "person"}, "dimension"},
		{&pb.EvaluationRequest{Dimension: "region", RegionDigits: 15}, "region_digits"},
		{&pb.EvaluationRequest{Scheme: "hangzhou"}, "scheme"},
		{&pb.EvaluationRequest{Consistency: 9}, "consistency"},
	} {
		_, err := c.Cases(0).GetEvaluation(ctx, tc.req)
		assertField(t, err, tc.field)
	}
}

func TestEvaluationREST(t *testing.T) {
	c := testcluster.New(t, 1)
	cases := evalCases()
	observeInto(t, c.Replica(0).Node.Store(), cases)
	base := c.HTTPBase(0)
	get := func(path string) (*http.Response, []byte) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	q := "period=week&at=2025-03-12&dimension=unit"
	want := evaluation.Recount(cases, evaluation.Query{Period: "week", At: "2025-03-12", Dimension: "unit"}, 8*3600)

	// JSON through the gateway.
	resp, body := get("/v1/evaluation?" + q)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/evaluation: %d %s", resp.StatusCode, body)
	}
	got := &pb.EvaluationReport{}
	if err := protojson.Unmarshal(body, got); err != nil || !proto.Equal(got, want) {
		t.Fatalf("JSON report %v (%v)\nwant %v", got, err, want)
	}

	// CSV download.
	resp, body = get("/v1/evaluation.csv?" + q)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), `filename="evaluation-2025-W11-unit.csv"`) {
		t.Fatalf("CSV: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	back, err := export.ReadEvaluationCSV(bytes.NewReader(body))
	if err != nil || !proto.Equal(back, want) {
		t.Fatalf("CSV %s read back as %v (%v)", body, back, err)
	}

	// The weekly bulletin: one sheet per dimension.
	resp, body = get("/v1/evaluation.xlsx?period=week&at=2025-03-12&dimension=unit,region&dimension=inspector&scheme=jinhua&consistency=stale")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" {
		t.Fatalf("XLSX: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	f, err := excelize.OpenReader(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("workbook: %v", err)
	}
	defer f.Close()
	if sheets := f.GetSheetList(); strings.Join(sheets, "|") != "2025-W11 unit|2025-W11 region|2025-W11 inspector" {
		t.Fatalf("sheets %q", sheets)
	}
	if v, _ := f.GetCellValue("2025-W11 unit", "B2"); v != "单位" {
		t.Fatalf("B2 = %q", v)
	}
	if rows, _ := f.GetRows("2025-W11 region"); len(rows) != 3+2 {
		t.Fatalf("region sheet rows %q", rows)
	}

	// Errors are the API's JSON errors, naming the field.
	for path, field := range map[string]string{
		"/v1/evaluation.csv?period=year":                           "period",
		"/v1/evaluation.csv?dimension=unit,region":                 "dimension",
		"/v1/evaluation.xlsx?at=2025-13-01":                        "at",
		"/v1/evaluation.xlsx?region_digits=x&dimension=region":     "region_digits",
		"/v1/evaluation.csv?consistency=eventual":                  "consistency",
		"/v1/evaluation.xlsx?dimension=unit,region,inspector,unit": "dimension",
		"/v1/evaluation?scheme=hangzhou":                           "scheme",
	} {
		resp, body := get(path)
		var e struct {
			Error struct {
				HTTPStatus int    `json:"http_status"`
				Field      string `json:"field"`
			} `json:"error"`
		}
		if err := json.Unmarshal(body, &e); err != nil || resp.StatusCode != http.StatusBadRequest || e.Error.Field != field {
			t.Errorf("GET %s: %d %s, want 400 naming %s", path, resp.StatusCode, body, field)
		}
	}
}

// A follower forwards a LEADER read to the leader and answers a STALE one
// from its own counters. (Here only the leader's store holds counters,
// written beside raft, so the two answers differ.)
func TestEvaluationFollowerForwards(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: run without -short")
	}
	c := testcluster.New(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := c.Leader()
	observeInto(t, c.Replica(l).Node.Store(), evalCases())
	f := (l + 1) % 3
	testcluster.WaitFor(t, 10*time.Second, "a forwarded evaluation", func() bool {
		rep, err := c.Cases(f).GetEvaluation(ctx, evalWeek)
		return err == nil && len(rep.Rows) == 3
	})
	stale := proto.Clone(evalWeek).(*pb.EvaluationRequest)
	stale.Consistency = pb.Consistency_CONSISTENCY_STALE
	rep, err := c.Cases(f).GetEvaluation(ctx, stale)
	if err != nil || len(rep.Rows) != 0 || rep.PeriodKey != "2025-W11" {
		t.Fatalf("stale read on the follower: %v, %v", rep, err)
	}
}
