package api_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// Tests of the ownership part of the API: the pieces a node outside a
// federation does not run, the review queue and legacy-id filters of
// ListCases, and the reasons the ownership actions require.

// A node outside a federation has no responsibility catalogue, reconciler
// or anti-entropy: it answers FailedPrecondition (REST 409 with the JSON
// error body) naming what is missing.
func TestOwnershipPiecesANodeDoesNotRun(t *testing.T) {
	c := testcluster.New(t, 1)
	cl := pb.NewOwnershipServiceClient(c.Conn(0))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	calls := []struct {
		name    string
		call    func() error
		mention string
	}{
		{"ResolveOwner", func() error {
			_, err := cl.ResolveOwner(ctx, &pb.ResolveOwnerRequest{Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", GridCode: "320582110152102"})
			return err
		}, "ownership.rules"},
		{"Reconcile", func() error {
			_, err := cl.Reconcile(ctx, &pb.ReconcileRequest{DryRun: true})
			return err
		}, "reconciler"},
		{"GetReconcileReport", func() error {
			_, err := cl.GetReconcileReport(ctx, &pb.ReconcileReportRequest{})
			return err
		}, "reconciler"},
		{"AntiEntropy", func() error {
			_, err := cl.AntiEntropy(ctx, &pb.AntiEntropyRequest{DryRun: true})
			return err
		}, "anti-entropy"},
	}
	for _, k := range calls {
		st := status.Convert(k.call())
		if st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), k.mention) {
			t.Errorf("%s: %v %q, want FailedPrecondition naming %q", k.name, st.Code(), st.Message(), k.mention)
		}
	}

	rc := restClient{t: t, base: c.HTTPBase(0)}
	for _, r := range []struct{ method, path, body, mention string }{
		{http.MethodGet, "/v1/ownership:resolve?kind=KIND_EVENT&major_code=01&minor_code=02&grid_code=320582110152102", "", "ownership.rules"},
		{http.MethodPost, "/v1/reconcile", `{"dry_run":true}`, "reconciler"},
		{http.MethodGet, "/v1/reconcile/report", "", "reconciler"},
		{http.MethodGet, "/v1/reconcile/report.csv", "", "reconciler"},
		{http.MethodPost, "/v1/federation/antientropy", `{}`, "anti-entropy"},
	} {
		code, body := rc.do(r.method, r.path, r.body)
		e, _ := body["error"].(map[string]any)
		msg, _ := e["message"].(string)
		if code != http.StatusConflict || e["code"] != "FailedPrecondition" || e["http_status"] != float64(http.StatusConflict) || !strings.Contains(msg, r.mention) {
			t.Errorf("%s %s: %d %v, want 409 FailedPrecondition naming %q", r.method, r.path, code, body, r.mention)
		}
	}
}

// listIDs lists case ids over REST (an empty list may omit "cases").
func listIDs(t *testing.T, rc restClient, path string) []string {
	t.Helper()
	code, body := rc.do(http.MethodGet, path, "")
	if code != http.StatusOK {
		t.Fatalf("list %s: %d %v", path, code, body)
	}
	var out []string
	cs, _ := body["cases"].([]any)
	for _, c := range cs {
		out = append(out, c.(map[string]any)["id"].(string))
	}
	return out
}

func grpcIDs(t *testing.T, cs pb.CaseServiceClient, ctx context.Context, r *pb.ListCasesRequest) []string {
	t.Helper()
	resp, err := cs.ListCases(ctx, r)
	if err != nil {
		t.Fatalf("list %v: %v", r, err)
	}
	var out []string
	for _, c := range resp.Cases {
		out = append(out, c.Id)
	}
	return out
}

// The review queue and the legacy-id lookup, over gRPC and REST; the
// reasons the ownership actions require; a decision on a case not in
// review refused.
func TestReviewQueueAndLegacyIDs(t *testing.T) {
	c := testcluster.New(t, 1, district320505)
	cs := c.Cases(0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	imp, err := pb.NewOwnershipServiceClient(c.Conn(0)).ImportCases(ctx, &pb.ImportCasesRequest{RequestId: "imp-1", Rows: importRows()[:2]})
	if err != nil || len(imp.CaseIds) != 2 {
		t.Fatalf("import: %v %v", imp, err)
	}
	dispatched, filed := imp.CaseIds[0], imp.CaseIds[1] // HQ-1 (已派遣), HQ-2 (待派遣)

	// The ownership actions need a reason: refused before the log. (Wait
	// until nothing else writes: the node registered itself and the
	// sweeper marked the imported cases whose deadlines passed long ago.)
	node := c.Members[0].R.Node
	testcluster.WaitFor(t, 10*time.Second, "self registration and the sweeper", func() bool {
		n, _ := node.Store().Nodes()
		due, err := cs.ListCases(ctx, &pb.ListCasesRequest{DueBefore: timestamppb.New(time.Now().Add(time.Minute))})
		return len(n) == 1 && err == nil && len(due.Cases) == 0
	})
	before := node.Raft().LastIndex()
	for _, note := range []string{"", "  \t "} {
		_, err = cs.Reassign(ctx, &pb.ActRequest{CaseId: dispatched, RequestId: "re-1", Actor: "disp", Role: pb.Role_ROLE_DISPATCHER,
			Unit: "320505-roads", TimeLimitMinutes: 600, Note: note})
		assertField(t, err, "note")
		_, err = cs.DecideOwner(ctx, &pb.ActRequest{CaseId: filed, RequestId: "dec-1", Actor: "lead", Role: pb.Role_ROLE_SHIFT_LEADER,
			Unit: "320505-roads", TimeLimitMinutes: 600, Note: note})
		assertField(t, err, "note")
		_, err = cs.ReferReview(ctx, &pb.ActRequest{CaseId: filed, RequestId: "rev-1", Actor: "disp", Role: pb.Role_ROLE_DISPATCHER, Note: note})
		assertField(t, err, "note")
	}
	rc := restClient{t: t, base: c.HTTPBase(0)}
	for _, verb := range []string{"reassign", "referReview", "decideOwner"} {
		code, body := rc.act(filed, verb, `{"request_id":"x-`+verb+`","actor":"lead","role":"ROLE_SHIFT_LEADER","unit":"320505-roads","time_limit_minutes":60}`)
		if e, _ := body["error"].(map[string]any); code != http.StatusBadRequest || e["field"] != "note" {
			t.Errorf("%s without a note: %d %v", verb, code, body)
		}
	}
	if after := node.Raft().LastIndex(); after != before {
		t.Fatalf("requests without a note grew the raft log from %d to %d", before, after)
	}

	// Only a case in review can be decided.
	_, err = cs.DecideOwner(ctx, &pb.ActRequest{CaseId: filed, RequestId: "dec-2", Actor: "lead", Role: pb.Role_ROLE_SHIFT_LEADER,
		Unit: "320505-roads", TimeLimitMinutes: 600, Note: "decided"})
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "joint review") {
		t.Fatalf("decision on a case not in review: %v", err)
	}
	if got := grpcIDs(t, cs, ctx, &pb.ListCasesRequest{InReview: true}); len(got) != 0 {
		t.Fatalf("review queue before any referral: %q", got)
	}

	// Referred: in the queue, over both APIs; the legacy ids find their cases.
	r, err := cs.ReferReview(ctx, &pb.ActRequest{CaseId: filed, RequestId: "rev-2", Actor: "disp", Role: pb.Role_ROLE_DISPATCHER, Note: "roads and parks both disclaim it"})
	if err != nil || !r.GetCase().GetOwnership().GetInReview() {
		t.Fatalf("refer: %v %v", r, err)
	}
	want := []string{filed}
	if got := grpcIDs(t, cs, ctx, &pb.ListCasesRequest{InReview: true}); !slices.Equal(got, want) {
		t.Fatalf("review queue %q, want %q", got, want)
	}
	if got := listIDs(t, rc, "/v1/cases?in_review=true"); !slices.Equal(got, want) {
		t.Fatalf("REST review queue %q, want %q", got, want)
	}
	for legacy, id := range map[string]string{"HQ-1": dispatched, "HQ-2": filed} {
		if got := grpcIDs(t, cs, ctx, &pb.ListCasesRequest{LegacyId: legacy}); !slices.Equal(got, []string{id}) {
			t.Errorf("legacy id %s: %q, want %s", legacy, got, id)
		}
		if got := listIDs(t, rc, "/v1/cases?legacy_id="+url.QueryEscape(legacy)); !slices.Equal(got, []string{id}) {
			t.Errorf("REST legacy id %s: %q, want %s", legacy, got, id)
		}
	}
	for _, q := range []*pb.ListCasesRequest{{LegacyId: "HQ-3"}, {LegacyId: "HQ-"}, {LegacyId: "HQ-1", InReview: true}} {
		if got := grpcIDs(t, cs, ctx, q); len(got) != 0 {
			t.Errorf("%v: %q, want none", q, got)
		}
	}

	// A legacy id longer than 64 characters is refused, naming the field.
	long := strings.Repeat("L", 65)
	_, err = cs.ListCases(ctx, &pb.ListCasesRequest{LegacyId: long})
	assertField(t, err, "legacy_id")
	if got := grpcIDs(t, cs, ctx, &pb.ListCasesRequest{LegacyId: long[:64]}); len(got) != 0 {
		t.Errorf("a 64-character legacy id: %q", got)
	}
	code, body := rc.do(http.MethodGet, "/v1/cases?legacy_id="+long, "")
	if e, _ := body["error"].(map[string]any); code != http.StatusBadRequest || e["field"] != "legacy_id" {
		t.Errorf("REST long legacy id: %d %v", code, body)
	}

	// Decided: out of the queue.
	d, err := cs.DecideOwner(ctx, &pb.ActRequest{CaseId: filed, RequestId: "dec-3", Actor: "lead", Role: pb.Role_ROLE_SHIFT_LEADER,
		Unit: "320505-roads", TimeLimitMinutes: 600, Note: "handover records"})
	if err != nil || d.Case.State != pb.State_STATE_DISPATCHED || !d.Case.GetOwnership().GetDecided() || d.Case.Ownership.Rule != "joint-review" {
		t.Fatalf("decide: %v %v", d, err)
	}
	if got := listIDs(t, rc, "/v1/cases?in_review=true"); len(got) != 0 {
		t.Fatalf("review queue after the decision: %q", got)
	}
}
