package fedtest

import (
	"context"
	"encoding/csv"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// TestRejectedTwiceGoesToJointReview follows one city-owned case out of a
// district's backlog: the reconciler hands it up, the city's follow loop
// dispatches it to the owning city department, which sends it back; the
// city's next run denies the return (the catalogue says it is theirs); sent
// back again, the run refers it to the joint review queue with both sides'
// reasons, where a shift leader decides the owner, which sticks.
func TestRejectedTwiceGoesToJointReview(t *testing.T) {
	ctx := context.Background()
	f := sampleFederation(t, true)
	reported := time.Date(2021, 5, 6, 9, 30, 0, 0, time.UTC)
	lamp := &pb.Case{
		LegacyId: "HQ-LAMP-1", Source: pb.Source_SOURCE_INSPECTOR, Kind: pb.Kind_KIND_COMPONENT, MajorCode: "01", MinorCode: "18",
		GridCode: "320505001001005", ComponentId: "3205050118990001", Description: "路灯不亮", Urgency: pb.Urgency_URGENCY_ORDINARY,
		ReportedAt: timestamppb.New(reported), FiledAt: timestamppb.New(reported), Version: 1,
		State: pb.State_STATE_DISPATCHED, OwnerUnit: "320505-roads", DispatchedAt: timestamppb.New(reported),
		Deadline: timestamppb.New(reported.Add(24 * time.Hour)),
		History:  []*pb.HistoryEntry{{Action: pb.Action_ACTION_REPORT, Actor: "legacy-import", Role: pb.Role_ROLE_SYSTEM, At: timestamppb.New(reported), ToState: pb.State_STATE_DISPATCHED, Version: 1}},
	}
	id := f.Import(ctx, "d-320505", []*pb.ImportedCase{{Case: lamp, IdDate: "20210506"}}, 1)["HQ-LAMP-1"]

	if _, err := runReconcile(ctx, t, f, "d-320505", &pb.ReconcileRequest{}); err != nil {
		t.Fatal(err)
	}
	city := f.Client("city")
	held := func(st pb.State) func() bool {
		return func() bool {
			c := f.stored(t, "city", id)
			return c != nil && c.Holder == "city" && c.State == st
		}
	}
	waitFor(t, 30*time.Second, "the lamp dispatched to the city's department", held(pb.State_STATE_DISPATCHED))
	if c := f.stored(t, "city", id); c.OwnerUnit != "city-municipal" || c.Ownership.GetUnit() != "city-municipal" || c.Ownership.GetRule() == "" {
		t.Fatalf("at the city: unit %q, ownership %+v", c.OwnerUnit, c.Ownership)
	}

	// The city's department sends it back; the city's run denies the return.
	act(ctx, t, city, id, "ret-1", pb.Action_ACTION_REQUEST_RETURN, pb.Role_ROLE_HANDLING_UNIT, func(r *pb.ActRequest) {
		r.Note = "开发区路灯由区里养护，不属我处"
	})
	rep, err := runReconcile(ctx, t, f, "city", &pb.ReconcileRequest{})
	if err != nil {
		t.Fatal(err)
	}
	c := f.stored(t, "city", id)
	if rep.Rejected != 1 || c.State != pb.State_STATE_DISPATCHED || c.Ownership.GetRejections() != 1 || c.Ownership.GetInReview() {
		t.Fatalf("after the first return: %s; case %v %+v", summary(rep), c.State, c.Ownership)
	}

	// Sent back again: the run refers it to joint review.
	act(ctx, t, city, id, "ret-2", pb.Action_ACTION_REQUEST_RETURN, pb.Role_ROLE_HANDLING_UNIT, func(r *pb.ActRequest) {
		r.Note = "再次退回：请会诊确定养护单位"
	})
	rep, err = runReconcile(ctx, t, f, "city", &pb.ReconcileRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rejected != 1 {
		t.Fatalf("second return: %s", summary(rep))
	}
	resp, err := f.Groups["city"].Cases(0).ListCases(ctx, &pb.ListCasesRequest{InReview: true})
	if err != nil || len(resp.Cases) != 1 || resp.Cases[0].Id != id {
		t.Fatalf("review queue: %v %v", err, resp)
	}
	o := resp.Cases[0].Ownership
	reasons := strings.Join(o.GetReasons(), " | ")
	for _, want := range []string{"开发区路灯由区里养护", "再次退回", "sent it back 2 times"} {
		if !strings.Contains(reasons, want) {
			t.Fatalf("reasons lack %q: %s", want, reasons)
		}
	}
	if o.GetRejections() != 2 || o.GetExplanation() == "" || resp.Cases[0].State != pb.State_STATE_FILED {
		t.Fatalf("in review: %v %+v", resp.Cases[0].State, o)
	}

	// Deciding needs the case in review and a shift leader; the decision sticks.
	err = city.Do(ctx, func(ctx context.Context, cl pb.CaseServiceClient) error {
		_, err := cl.DecideOwner(ctx, &pb.ActRequest{CaseId: id, RequestId: "decide-1", Actor: "值班长王", Role: pb.Role_ROLE_DISPATCHER, Unit: "320505-roads", Note: "会诊"})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "ROLE_DISPATCHER") {
		t.Fatalf("a dispatcher decided: %v", err)
	}
	act(ctx, t, city, id, "decide-2", pb.Action_ACTION_DECIDE_OWNER, pb.Role_ROLE_SHIFT_LEADER, func(r *pb.ActRequest) {
		r.Unit, r.Note = "320505-roads", "会诊：开发区路灯移交区市政设施管理所养护"
	})
	waitFor(t, 30*time.Second, "the decided case handed down to the district", func() bool {
		c := f.stored(t, "d-320505", id)
		return c != nil && c.Holder == "d-320505" && c.State == pb.State_STATE_DISPATCHED
	})
	c = f.stored(t, "d-320505", id)
	if c.OwnerUnit != "320505-roads" || !c.Ownership.GetDecided() || c.Ownership.GetRule() != "joint-review" || c.Ownership.GetNode() != "d-320505" {
		t.Fatalf("decided: unit %q ownership %+v", c.OwnerUnit, c.Ownership)
	}
	f.WaitSettled(30 * time.Second)
	rep, err = runReconcile(ctx, t, f, "d-320505", &pb.ReconcileRequest{})
	if err != nil || rep.Moved != 0 {
		t.Fatalf("the catalogue overrode the decision: %v %s", err, summary(rep))
	}

	// The city's latest run as CSV over REST.
	res, err := http.Get(f.Groups["city"].HTTPBase(0) + "/v1/reconcile/report.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	rows, err := csv.NewReader(res.Body).ReadAll()
	if err != nil || res.StatusCode != http.StatusOK || len(rows) < 3 || rows[0][1] != "dimension" || rows[len(rows)-1][1] != "total" {
		t.Fatalf("report.csv: %d %v %v", res.StatusCode, err, rows)
	}
}
