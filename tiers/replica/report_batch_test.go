package replica_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// TestReportCasesBatch: a batch of reports sent to a follower (which
// passes it to the leader) becomes one log entry holding every valid
// report; the invalid report and the repeated request id are answered on
// their own, naming the field, and the others stand; the same call again
// is answered from the first cases with no entry; an item sent again
// alone is a replay too; REST answers the same.
func TestReportCasesBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: run without -short")
	}
	c := testcluster.New(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	leader := c.Leader()
	follower := (leader + 1) % 3
	cl := c.Cases(follower)

	bad := report("batch-bad", "no source")
	bad.Source = pb.Source_SOURCE_UNSPECIFIED
	req := &pb.ReportCasesRequest{Reports: []*pb.ReportCaseRequest{
		report("batch-1", "暴露垃圾 1"),
		report("batch-2", "暴露垃圾 2"),
		bad,
		report("batch-1", "the same request id again"),
		report("batch-3", "暴露垃圾 3"),
	}}
	before := quietFor(t, c, 10)
	resp, err := cl.ReportCases(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 5 {
		t.Fatalf("%d results, want 5", len(resp.Results))
	}
	ids := map[int]string{}
	for _, i := range []int{0, 1, 4} {
		r := resp.Results[i]
		if r.Error != nil || r.Case.GetId() == "" || r.Replayed {
			t.Fatalf("report %d: %v", i, r)
		}
		ids[i] = r.Case.Id
	}
	if e := resp.Results[2].Error; e.GetCode() != "INVALID_ARGUMENT" || e.GetField() != "reports[2].source" || resp.Results[2].Case != nil {
		t.Fatalf("invalid report: %v, want INVALID_ARGUMENT on reports[2].source", resp.Results[2])
	}
	if e := resp.Results[3].Error; e.GetCode() != "INVALID_ARGUMENT" || e.GetField() != "reports[3].request_id" || !strings.Contains(e.GetMessage(), "reports[0]") {
		t.Fatalf("repeated request id: %v", resp.Results[3])
	}
	if got := quietIndexes(t, c); got != before+1 {
		t.Fatalf("the batch moved the last index from %d to %d, want one entry", before, got)
	}
	// Every report of the batch is recorded at that one entry, on every
	// replica.
	for _, m := range c.Members {
		for i, id := range ids {
			rec, err := m.R.Node.Store().GetRequest(req.Reports[i].RequestId)
			if err != nil || rec.CaseId != id || rec.LogIndex != before+1 {
				t.Fatalf("%s: request record of report %d: %v %v, want case %s at index %d", m.ID, i, rec, err, id, before+1)
			}
		}
	}

	// The same call again (a client's retry): every report that stood is
	// answered with its first case, replayed, and nothing is written.
	again, err := cl.ReportCases(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		if r := again.Results[i]; !r.Replayed || r.Case.GetId() != id {
			t.Fatalf("retried report %d: %v, want %s replayed", i, r, id)
		}
	}
	if again.Results[2].Error == nil || again.Results[3].Error == nil {
		t.Fatalf("the refused reports stood on retry: %v %v", again.Results[2], again.Results[3])
	}
	// A report sent alone with an item's request id is the same request.
	one, err := cl.ReportCase(ctx, report("batch-2", "暴露垃圾 2"))
	if err != nil || !one.Replayed || one.Case.Id != ids[1] {
		t.Fatalf("item sent alone: %v %v, want %s replayed", one, err, ids[1])
	}
	if got := quietIndexes(t, c); got != before+1 {
		t.Fatalf("replays moved the last index from %d to %d", before+1, got)
	}

	// Too many, or none: refused as a whole, naming the field.
	var many []*pb.ReportCaseRequest
	for i := 0; i <= 100; i++ {
		many = append(many, report(fmt.Sprintf("batch-many-%d", i), "x"))
	}
	for _, rs := range [][]*pb.ReportCaseRequest{many, nil} {
		if _, err := cl.ReportCases(ctx, &pb.ReportCasesRequest{Reports: rs}); fieldOf(err) != "reports" {
			t.Fatalf("%d reports: %v, want InvalidArgument on reports", len(rs), err)
		}
	}

	// REST: POST /v1/cases:batchReport.
	body := `{"reports":[{"request_id":"batch-rest-1","actor":"insp-1","role":"ROLE_INSPECTOR","source":"SOURCE_INSPECTOR","kind":"KIND_EVENT","major_code":"01","minor_code":"02","grid_code":"320582110152102","description":"暴露垃圾 rest"},` +
		`{"request_id":"batch-rest-2","actor":"insp-1","role":"ROLE_INSPECTOR","source":"SOURCE_INSPECTOR","kind":"KIND_EVENT","major_code":"01","minor_code":"02","grid_code":"999999110152102","description":"outside"}]}`
	hr, err := http.Post(c.HTTPBase(follower)+"/v1/cases:batchReport", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(hr.Body)
	hr.Body.Close()
	var rest struct {
		Results []struct {
			Case *struct {
				ID string `json:"id"`
			} `json:"case"`
			Error *struct{ Code, Field string } `json:"error"`
		} `json:"results"`
	}
	if hr.StatusCode != http.StatusOK || json.Unmarshal(raw, &rest) != nil || len(rest.Results) != 2 {
		t.Fatalf("REST batch: %d %s", hr.StatusCode, raw)
	}
	if rest.Results[0].Case == nil || rest.Results[0].Case.ID == "" || rest.Results[1].Error == nil || rest.Results[1].Error.Field != "reports[1].grid_code" {
		t.Fatalf("REST batch results: %s", raw)
	}
}
