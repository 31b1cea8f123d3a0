package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

var t0 = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)

func ts(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(t0.Add(d)) }

// sampleCase is a case that was dispatched, handled, failed its check and
// was accepted again.
func sampleCase() *pb.Case {
	return &pb.Case{
		Id: "320582-20261122-000001", Source: pb.Source_SOURCE_INSPECTOR, Kind: pb.Kind_KIND_EVENT,
		MajorCode: "01", MinorCode: "02", GridCode: "320582110152102",
		Description: "exposed garbage\nby the bus stop", Urgency: pb.Urgency_URGENCY_ORDINARY,
		Location:  &pb.Location{Address: "人民路 12 号", Lat: 31.3, Lng: 120.6},
		OwnerUnit: "huanwei-01", OwnerTier: pb.Tier_TIER_DISTRICT, State: pb.State_STATE_ACCEPTED,
		ReportedAt: ts(0), Deadline: ts(8 * time.Hour), UpdatedAt: ts(3 * time.Hour),
		ReworkCount: 1, Version: 8, ReportedAtNode: "single",
		Pending:        &pb.Pending{Action: pb.Action_ACTION_REQUEST_EXTENSION, Actor: "huanwei-01", Reason: "truck broken", ExtensionMinutes: 120, At: ts(3 * time.Hour)},
		AllowedActions: []pb.Action{pb.Action_ACTION_APPROVE_EXTENSION, pb.Action_ACTION_DENY_EXTENSION, pb.Action_ACTION_VOID},
		History: []*pb.HistoryEntry{
			{Action: pb.Action_ACTION_REPORT, Actor: "王五", Role: pb.Role_ROLE_INSPECTOR, At: ts(0), ToState: pb.State_STATE_REPORTED, Version: 1},
			{Action: pb.Action_ACTION_FILE, Actor: "李四", Role: pb.Role_ROLE_SHIFT_LEADER, At: ts(time.Minute), FromState: pb.State_STATE_REPORTED, ToState: pb.State_STATE_FILED, Version: 2},
			{Action: pb.Action_ACTION_DISPATCH, Actor: "赵六", Role: pb.Role_ROLE_DISPATCHER, At: ts(2 * time.Minute), FromState: pb.State_STATE_FILED, ToState: pb.State_STATE_DISPATCHED, Version: 3, Unit: "huanwei-01"},
			{Action: pb.Action_ACTION_CHECK_FAIL, Actor: "王五", Role: pb.Role_ROLE_INSPECTOR, At: ts(2 * time.Hour), FromState: pb.State_STATE_HANDLED, ToState: pb.State_STATE_DISPATCHED, Version: 6, Note: "still\tdirty", Attachments: []string{"photo://p2.jpg"}},
			{Action: pb.Action_ACTION_REQUEST_EXTENSION, Actor: "huanwei-01", Role: pb.Role_ROLE_HANDLING_UNIT, At: ts(3 * time.Hour), FromState: pb.State_STATE_ACCEPTED, ToState: pb.State_STATE_ACCEPTED, Version: 8, Note: "truck broken"},
		},
	}
}

func withUTC(t *testing.T) {
	old := displayLoc
	displayLoc = time.UTC
	t.Cleanup(func() { displayLoc = old })
}

func TestWriteCaseTable(t *testing.T) {
	withUTC(t)
	var buf bytes.Buffer
	if err := writeCase(&buf, sampleCase(), true, t0.Add(4*time.Hour)); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	t.Log("\n" + out)
	for _, want := range []string{
		"id:", "320582-20261122-000001",
		"state:", "accepted",
		"class:", "event 0102",
		"grid:", "320582110152102",
		"owner:", "huanwei-01 (district)",
		"deadline:", "2026-11-22T17:00:00Z (in 4h)",
		"pending:", "request-extension by huanwei-01 (+2h): truck broken",
		"version:", "8",
		"rework:", "1",
		"allowed actions:", "approve-extension, deny-extension, void",
		"description:", "exposed garbage by the bus stop",
		"人民路 12 号 (31.3, 120.6)",
		"history:",
		"TIME", "ACTION", "ACTOR", "ROLE", "FROM→TO", "NOTE",
		"2026-11-22 09:00:00", "report", "王五", "inspector", "—→reported",
		"reported→filed", "李四", "shift-leader",
		"filed→dispatched", "赵六", "dispatcher",
		"check-fail", "handled→dispatched", "still dirty [attachments: photo://p2.jpg]",
		"accepted (no change)", "handling-unit",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	// One line per history entry, each a table row (no note broke a line).
	lines := strings.Split(strings.TrimSpace(out[strings.Index(out, "history:"):]), "\n")
	if len(lines) != 2+5 {
		t.Errorf("history has %d lines, want header + 5 rows:\n%s", len(lines)-1, strings.Join(lines, "\n"))
	}
	for _, l := range lines[2:] {
		if !strings.HasPrefix(l, "2026-11-22 ") {
			t.Errorf("history row does not start with its time: %q", l)
		}
	}

	// Without history (the output of a write), and an overdue deadline.
	buf.Reset()
	if err := writeCase(&buf, sampleCase(), false, t0.Add(9*time.Hour+30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if out := buf.String(); strings.Contains(out, "history:") || !strings.Contains(out, "(overdue by 1h30m)") {
		t.Errorf("summary:\n%s", out)
	}
}

func TestWriteCaseJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := writeJSON(&buf, &pb.CaseResponse{Case: sampleCase(), Replayed: true}); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf.String())
	}
	c := got["case"].(map[string]any)
	if c["grid_code"] != "320582110152102" || c["state"] != "STATE_ACCEPTED" || got["replayed"] != true {
		t.Errorf("unexpected JSON (want proto field names):\n%s", buf.String())
	}
	if _, camel := c["gridCode"]; camel {
		t.Error("JSON uses camelCase names")
	}
	if !strings.Contains(buf.String(), "\n  \"case\": {\n    \"id\": \"320582-20261122-000001\",\n") {
		t.Errorf("JSON is not indented two spaces, one field a line:\n%s", buf.String())
	}
	if strings.Count(buf.String(), "\n") < 10 {
		t.Errorf("JSON is not multiline:\n%s", buf.String())
	}
}

func TestWriteCaseList(t *testing.T) {
	withUTC(t)
	closed := sampleCase()
	closed.Id, closed.State, closed.AllowedActions = "320582-20261122-000002", pb.State_STATE_CLOSED, nil
	closed.Holder = "c-320582001001"
	var buf bytes.Buffer
	resp := &pb.ListCasesResponse{Cases: []*pb.Case{sampleCase(), closed}, NextPageToken: "tok-2"}
	if err := writeCaseList(&buf, resp, t0.Add(10*time.Hour)); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	t.Log("\n" + out)
	for _, want := range []string{"ID", "STATE", "OWNER", "HOLDER", "DEADLINE", "REWORK", "c-320582001001",
		"320582-20261122-000001", "accepted", "2026-11-22 17:00:00 UTC (overdue)", "huanwei-01 (district)",
		"320582-20261122-000002", "closed", "next-page-token: tok-2"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q", want)
		}
	}
	if strings.Count(out, "(overdue)") != 1 {
		t.Error("a closed case is shown as overdue")
	}
}

func TestWriteClusterStatus(t *testing.T) {
	var buf bytes.Buffer
	st := &pb.ClusterStatus{NodeId: "n1", State: "Leader", LeaderId: "n1", LeaderRaftAddr: "127.0.0.1:7001",
		Term: 3, CommitIndex: 42, AppliedIndex: 41, LastLogIndex: 43, Tier: "district", Jurisdiction: "320582",
		Servers: []*pb.Server{
			{Id: "n1", RaftAddr: "127.0.0.1:7001", GrpcAddr: "127.0.0.1:7101", Suffrage: "Voter", Leader: true},
			{Id: "n2", RaftAddr: "127.0.0.1:7002", Suffrage: "Nonvoter"},
		}}
	if err := writeClusterStatus(&buf, st); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"node:", "n1", "Leader", "n1 (127.0.0.1:7001)", "term:", "3", "commit index:", "42",
		"applied index:", "41", "last log index:", "43", "tier:", "district", "jurisdiction:", "320582", "RAFT ADDR", "Nonvoter", "127.0.0.1:7101"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

func TestWriteStatusError(t *testing.T) {
	st, err := status.New(codes.InvalidArgument, "grid_code: must be 15 digits").WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "grid_code", Description: "must be 15 digits"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	writeStatusError(&buf, st)
	if want := "error: InvalidArgument: grid_code: must be 15 digits\nfield: grid_code\n"; buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}

	st, _ = status.New(codes.PermissionDenied, "denied").WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "role", Description: "inspectors may not close"}},
	})
	buf.Reset()
	writeStatusError(&buf, st)
	if want := "error: PermissionDenied: denied\nfield: role: inspectors may not close\n"; buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
}

func TestWriteCatalogue(t *testing.T) {
	var buf bytes.Buffer
	cat := &pb.Catalogue{Version: "2026.1", Classes: []*pb.CatalogueClass{
		{Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", Name: "暴露垃圾", MajorName: "市容环境"},
		{Kind: pb.Kind_KIND_COMPONENT, MajorCode: "01", MinorCode: "01", Name: "上水井盖", MajorName: "公用设施"},
	}}
	if err := writeCatalogue(&buf, cat); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"catalogue version: 2026.1", "KIND", "event", "市容环境 / 暴露垃圾", "component", "公用设施 / 上水井盖"} {
		if !strings.Contains(out, want) {
			t.Errorf("catalogue lacks %q:\n%s", want, out)
		}
	}
}

// TestTimesCarryTheirZone: every time a table or a case's details show is
// in the operator's zone and says which (the issue: a table without a
// zone beside UTC "Z" beside case ids dated in the node's zone).
func TestTimesCarryTheirZone(t *testing.T) {
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	old := displayLoc
	displayLoc = shanghai
	t.Cleanup(func() { displayLoc = old })
	c := sampleCase() // deadline 2026-11-22T17:00:00Z
	var list, details bytes.Buffer
	if err := writeCaseList(&list, &pb.ListCasesResponse{Cases: []*pb.Case{c}}, t0); err != nil {
		t.Fatal(err)
	}
	if err := writeCase(&details, c, true, t0); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(list.String(), "2026-11-23 01:00:00 CST") {
		t.Errorf("the list does not show the deadline in Shanghai time with its zone:\n%s", list.String())
	}
	if !strings.Contains(details.String(), "2026-11-23T01:00:00+08:00") {
		t.Errorf("the details do not show the deadline with its offset:\n%s", details.String())
	}
	// History rows: date, time and zone.
	hist := details.String()[strings.Index(details.String(), "history:"):]
	if !regexp.MustCompile(`\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} CST`).MatchString(hist) {
		t.Errorf("history rows without the zone:\n%s", hist)
	}
}
