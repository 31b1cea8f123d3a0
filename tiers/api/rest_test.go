package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

type restClient struct {
	t    *testing.T
	base string
}

// do sends a request and decodes the JSON answer.
func (c restClient) do(method, path, body string) (int, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, "json") {
		c.t.Fatalf("%s %s: content type %q, body %s", method, path, ct, raw)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		c.t.Fatalf("%s %s: body is not JSON: %v: %s", method, path, err, raw)
	}
	return resp.StatusCode, out
}

func (c restClient) act(id, verb, body string) (int, map[string]any) {
	return c.do(http.MethodPost, "/v1/cases/"+id+":"+verb, body)
}

const reportJSON = `{"request_id":"%s","actor":"insp-7","role":"ROLE_INSPECTOR","source":"SOURCE_INSPECTOR",
 "kind":"KIND_COMPONENT","major_code":"01","minor_code":"01","grid_code":"320582110152102",
 "component_id":"3205820101000001","description":"上水井盖缺失","location":{"lat":31.3,"lng":120.6,"address":"人民路 1 号"}}`

// TestRESTWholeLifecycle walks a case through every stage over REST and
// checks the error statuses and bodies the gateway promises.
func TestRESTWholeLifecycle(t *testing.T) {
	c := testcluster.New(t, 1)
	rc := restClient{t: t, base: c.HTTPBase(0)}

	code, body := rc.do(http.MethodPost, "/v1/cases", fmt.Sprintf(reportJSON, "rest-1"))
	if code != http.StatusOK {
		t.Fatalf("report: %d %v", code, body)
	}
	cs := body["case"].(map[string]any)
	id := cs["id"].(string)
	if cs["state"] != "STATE_REPORTED" {
		t.Fatalf("state %v", cs["state"])
	}
	steps := []struct{ verb, body, want string }{
		{"file", `{"request_id":"s1","actor":"lead","role":"ROLE_SHIFT_LEADER"}`, "STATE_FILED"},
		{"dispatch", `{"request_id":"s2","actor":"disp","role":"ROLE_DISPATCHER","unit":"water-co","unit_tier":"TIER_DISTRICT","time_limit_minutes":360}`, "STATE_DISPATCHED"},
		{"accept", `{"request_id":"s3","actor":"water","role":"ROLE_HANDLING_UNIT"}`, "STATE_ACCEPTED"},
		{"requestExtension", `{"request_id":"s4","actor":"water","role":"ROLE_HANDLING_UNIT","extension_minutes":120,"note":"part on order"}`, "STATE_ACCEPTED"},
		{"approveExtension", `{"request_id":"s5","actor":"disp","role":"ROLE_DISPATCHER"}`, "STATE_ACCEPTED"},
		{"handle", `{"request_id":"s6","actor":"water","role":"ROLE_HANDLING_UNIT","note":"cover replaced","attachments":["photo://after.jpg"]}`, "STATE_HANDLED"},
		{"checkFail", `{"request_id":"s7","actor":"insp-7","role":"ROLE_INSPECTOR","note":"cover loose"}`, "STATE_DISPATCHED"},
		{"accept", `{"request_id":"s8","actor":"water","role":"ROLE_HANDLING_UNIT"}`, "STATE_ACCEPTED"},
		{"handle", `{"request_id":"s9","actor":"water","role":"ROLE_HANDLING_UNIT","note":"fixed"}`, "STATE_HANDLED"},
		{"checkPass", `{"request_id":"s10","actor":"insp-7","role":"ROLE_INSPECTOR"}`, "STATE_CHECKED"},
		{"close", `{"request_id":"s11","actor":"lead","role":"ROLE_SHIFT_LEADER"}`, "STATE_CLOSED"},
	}
	for _, s := range steps {
		code, body := rc.act(id, s.verb, s.body)
		if code != http.StatusOK {
			t.Fatalf("%s: %d %v", s.verb, code, body)
		}
		if got := body["case"].(map[string]any)["state"]; got != s.want {
			t.Fatalf("%s: state %v, want %s", s.verb, got, s.want)
		}
	}
	code, got := rc.do(http.MethodGet, "/v1/cases/"+id, "")
	if code != http.StatusOK {
		t.Fatalf("get: %d %v", code, got)
	}
	if hist := got["history"].([]any); len(hist) != len(steps)+1 {
		t.Fatalf("history has %d entries, want %d", len(hist), len(steps)+1)
	}
	if got["rework_count"] != float64(1) || got["extension_count"] != float64(1) {
		t.Fatalf("counters: rework %v extension %v", got["rework_count"], got["extension_count"])
	}

	// A forbidden transition: 409 naming the state and what is allowed.
	code, body = rc.act(id, "dispatch", `{"request_id":"bad1","actor":"disp","role":"ROLE_DISPATCHER","unit":"x"}`)
	msg := body["error"].(map[string]any)["message"].(string)
	if code != http.StatusConflict || !strings.Contains(msg, "STATE_CLOSED") {
		t.Fatalf("forbidden dispatch: %d %v", code, body)
	}
	// Transfer up (上交): the route exists, the reason is required (400 naming
	// note, refused before the log), and a closed case cannot be handed up.
	code, body = rc.act(id, "transferUp", `{"request_id":"bad-up1","actor":"lead","role":"ROLE_SHIFT_LEADER","note":"  "}`)
	if f := body["error"].(map[string]any)["field"]; code != http.StatusBadRequest || f != "note" {
		t.Fatalf("transfer up without a reason: %d %v", code, body)
	}
	code, body = rc.act(id, "transferUp", `{"request_id":"bad-up2","actor":"lead","role":"ROLE_SHIFT_LEADER","note":"city road"}`)
	msg = body["error"].(map[string]any)["message"].(string)
	if code != http.StatusConflict || !strings.Contains(msg, "STATE_CLOSED") || !strings.Contains(msg, "ACTION_TRANSFER_UP is allowed only from") {
		t.Fatalf("forbidden transfer up: %d %v", code, body)
	}
	// The wrong role: 403.
	code2, _ := rc.do(http.MethodPost, "/v1/cases", fmt.Sprintf(reportJSON, "rest-2"))
	if code2 != http.StatusOK {
		t.Fatal("second report failed")
	}
	list := mustList(t, rc, "/v1/cases?state=STATE_REPORTED")
	id2 := list[0]["id"].(string)
	if code, body := rc.act(id2, "file", `{"request_id":"bad2","actor":"someone","role":"ROLE_CITIZEN"}`); code != http.StatusForbidden {
		t.Fatalf("wrong role: %d %v", code, body)
	}
	// Missing case: 404. Bad JSON, unknown field, bad code: 400 with the field.
	if code, body := rc.do(http.MethodGet, "/v1/cases/320582-20990101-000001", ""); code != http.StatusNotFound {
		t.Fatalf("missing case: %d %v", code, body)
	}
	for _, bad := range []struct{ body, field string }{
		{`{"request_id":`, ""},
		{`{"request_id":"x","no_such_field":1}`, ""},
		{fmt.Sprintf(reportJSON, "rest-8") + ` {"request_id":"rest-9"}`, ""}, // one JSON value a body
		{fmt.Sprintf(reportJSON, "rest-10") + ` x`, ""},
		{strings.Replace(fmt.Sprintf(reportJSON, "rest-3"), `"320582110152102"`, `"32058211015210"`, 1), "grid_code"},
		{strings.Replace(fmt.Sprintf(reportJSON, "rest-4"), `"minor_code":"01"`, `"minor_code":"99"`, 1), "minor_code"},
		{strings.Replace(fmt.Sprintf(reportJSON, "rest-5"), `"lat":31.3`, `"lat":91`, 1), "location.lat"},
		{strings.Replace(fmt.Sprintf(reportJSON, "rest-6"), `"request_id":"rest-6"`, `"request_id":""`, 1), "request_id"},
		{strings.Replace(strings.Replace(fmt.Sprintf(reportJSON, "rest-7"), `"320582110152102"`, `"320583110152102"`, 1), `"3205820101000001"`, `"3205830101000001"`, 1), "grid_code"},
	} {
		code, body := rc.do(http.MethodPost, "/v1/cases", bad.body)
		if code != http.StatusBadRequest {
			t.Fatalf("bad report %q: %d %v", bad.body, code, body)
		}
		if f := body["error"].(map[string]any)["field"]; bad.field != "" && f != bad.field {
			t.Fatalf("bad report: field %v, want %s (%v)", f, bad.field, body)
		}
	}
	// Nothing of the refused requests was written.
	if all := mustList(t, rc, "/v1/cases"); len(all) != 2 {
		t.Fatalf("%d cases after refused requests, want 2", len(all))
	}
	// Health, readiness, metrics and OpenAPI.
	if code, _ := rc.do(http.MethodGet, "/healthz", ""); code != http.StatusOK {
		t.Fatalf("healthz %d", code)
	}
	if code, body := rc.do(http.MethodGet, "/readyz", ""); code != http.StatusOK || body["ready"] != true {
		t.Fatalf("readyz %d %v", code, body)
	}
	code, doc := rc.do(http.MethodGet, "/openapi.json", "")
	if code != http.StatusOK || doc["paths"].(map[string]any)["/v1/cases/{case_id}:dispatch"] == nil ||
		doc["paths"].(map[string]any)["/v1/cases/{case_id}:transferUp"] == nil {
		t.Fatalf("openapi: %d, paths %v", code, doc["paths"])
	}
	metrics := httpGet(t, c.HTTPBase(0)+"/metrics")
	for _, want := range []string{`cityhub_cases{state="STATE_CLOSED"} 1`, `cityhub_cases{state="STATE_REPORTED"} 1`, `cityhub_raft_state{state="Leader"} 1`, "cityhub_http_request_duration_seconds_bucket", "cityhub_raft_applied_index", "cityhub_cases_overdue 0", "cityhub_cases_in_review 0"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func mustList(t *testing.T, rc restClient, path string) []map[string]any {
	t.Helper()
	code, body := rc.do(http.MethodGet, path, "")
	if code != http.StatusOK {
		t.Fatalf("list %s: %d %v", path, code, body)
	}
	var out []map[string]any
	for _, c := range body["cases"].([]any) {
		out = append(out, c.(map[string]any))
	}
	return out
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = io.Copy(&b, resp.Body)
	return b.String()
}

// TestBadInputWritesNothing sends malformed gRPC requests and checks that
// each is refused with InvalidArgument naming the field and that the raft
// log did not grow.
func TestBadInputWritesNothing(t *testing.T) {
	c := testcluster.New(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := c.Cases(0)
	node := c.Members[0].R.Node
	testcluster.WaitFor(t, 5*time.Second, "self registration", func() bool {
		n, _ := node.Store().Nodes()
		return len(n) == 1
	})
	before := node.Raft().LastIndex()
	good := func() *pb.ReportCaseRequest {
		return &pb.ReportCaseRequest{RequestId: "g", Actor: "a", Role: pb.Role_ROLE_INSPECTOR, Source: pb.Source_SOURCE_APP,
			Kind: pb.Kind_KIND_EVENT, MajorCode: "05", MinorCode: "05", GridCode: "320582110152102", Description: "parked on the pavement"}
	}
	cases := []struct {
		field string
		edit  func(r *pb.ReportCaseRequest)
	}{
		{"request_id", func(r *pb.ReportCaseRequest) { r.RequestId = "" }},
		{"request_id", func(r *pb.ReportCaseRequest) { r.RequestId = "has space" }},
		{"actor", func(r *pb.ReportCaseRequest) { r.Actor = "" }},
		{"role", func(r *pb.ReportCaseRequest) { r.Role = 99 }},
		{"source", func(r *pb.ReportCaseRequest) { r.Source = 0 }},
		{"kind", func(r *pb.ReportCaseRequest) { r.Kind = 7 }},
		{"grid_code", func(r *pb.ReportCaseRequest) { r.GridCode = "３２０５８２１１０１５２１０２" }},
		{"major_code", func(r *pb.ReportCaseRequest) { r.MajorCode = "77" }},
		{"component_id", func(r *pb.ReportCaseRequest) { r.ComponentId = "3205820101000001" }},
		{"description", func(r *pb.ReportCaseRequest) { r.Description = "" }},
		{"description", func(r *pb.ReportCaseRequest) { r.Description = strings.Repeat("字", 4001) }},
		{"location.lng", func(r *pb.ReportCaseRequest) { r.Location = &pb.Location{Lat: 1, Lng: 500} }},
		{"media", func(r *pb.ReportCaseRequest) { r.Media = make([]string, 21) }},
		{"urgency", func(r *pb.ReportCaseRequest) { r.Urgency = 9 }},
	}
	for _, tc := range cases {
		r := good()
		tc.edit(r)
		_, err := cl.ReportCase(ctx, r)
		assertField(t, err, tc.field)
	}
	acts := []struct {
		field string
		req   *pb.ActRequest
	}{
		{"case_id", &pb.ActRequest{CaseId: "../etc", RequestId: "x", Action: pb.Action_ACTION_FILE, Actor: "a", Role: pb.Role_ROLE_SHIFT_LEADER}},
		{"action", &pb.ActRequest{CaseId: "320582-20261122-000001", RequestId: "x", Actor: "a", Role: pb.Role_ROLE_SHIFT_LEADER}},
		{"unit", &pb.ActRequest{CaseId: "320582-20261122-000001", RequestId: "x", Action: pb.Action_ACTION_DISPATCH, Actor: "a", Role: pb.Role_ROLE_DISPATCHER}},
		{"time_limit_minutes", &pb.ActRequest{CaseId: "320582-20261122-000001", RequestId: "x", Action: pb.Action_ACTION_DISPATCH, Unit: "u", TimeLimitMinutes: -5, Actor: "a", Role: pb.Role_ROLE_DISPATCHER}},
		{"extension_minutes", &pb.ActRequest{CaseId: "320582-20261122-000001", RequestId: "x", Action: pb.Action_ACTION_REQUEST_EXTENSION, Actor: "a", Role: pb.Role_ROLE_HANDLING_UNIT}},
		{"note", &pb.ActRequest{CaseId: "320582-20261122-000001", RequestId: "x", Action: pb.Action_ACTION_TRANSFER_UP, Actor: "a", Role: pb.Role_ROLE_SHIFT_LEADER}},
		{"note", &pb.ActRequest{CaseId: "320582-20261122-000001", RequestId: "x", Action: pb.Action_ACTION_TRANSFER_UP, Actor: "a", Role: pb.Role_ROLE_DISPATCHER, Note: " \t"}},
	}
	for _, tc := range acts {
		_, err := cl.Act(ctx, tc.req)
		assertField(t, err, tc.field)
	}
	// The TransferUp method fixes the action itself, and checks the reason.
	_, err := cl.TransferUp(ctx, &pb.ActRequest{CaseId: "320582-20261122-000001", RequestId: "x", Actor: "a", Role: pb.Role_ROLE_SHIFT_LEADER})
	assertField(t, err, "note")
	if _, err := cl.ListCases(ctx, &pb.ListCasesRequest{PageToken: "not-a-token!"}); err == nil {
		t.Fatal("bad page token accepted")
	}
	if after := node.Raft().LastIndex(); after != before {
		t.Fatalf("refused requests grew the raft log from %d to %d", before, after)
	}
}

// TestRESTSampleReports posts every report of testdata/reports.jsonl: all
// must be accepted, each with the class and grid it asked for.
func TestRESTSampleReports(t *testing.T) {
	c := testcluster.New(t, 1)
	rc := restClient{t: t, base: c.HTTPBase(0)}
	raw, err := os.ReadFile("../../testdata/reports.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) < 10 {
		t.Fatalf("%d sample reports, want at least 10", len(lines))
	}
	for i, line := range lines {
		var want map[string]any
		if err := json.Unmarshal([]byte(line), &want); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		code, body := rc.do(http.MethodPost, "/v1/cases", line)
		if code != http.StatusOK {
			t.Fatalf("line %d: %d %v", i+1, code, body)
		}
		got := body["case"].(map[string]any)
		for _, k := range []string{"grid_code", "major_code", "minor_code", "source", "kind"} {
			if got[k] != want[k] {
				t.Errorf("line %d: %s = %v, want %v", i+1, k, got[k], want[k])
			}
		}
	}
}
