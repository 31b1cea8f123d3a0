package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/cityhub/cityhub/config"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
	"github.com/cityhub/cityhub/tiers/store"
)

// district320505 makes the test node the 虎丘区 platform.
func district320505(c *config.Config) {
	c.Node.Tier = config.TierDistrict
	c.Node.Jurisdiction = "320505"
}

// importRows: two good rows, then a grid of another district, an unknown
// status and a duplicate legacy id.
func importRows() []*pb.LegacyRow {
	return []*pb.LegacyRow{
		{Line: 2, LegacyId: "HQ-1", ReportedAt: "2021-03-04 12:00:00", Source: "监督员", Kind: "部件", Major: "01", Minor: "01",
			GridCode: "320505001001012", ComponentId: "3205050101000031", Lat: "31.30", Lng: "120.55", Address: "狮山路 88 号",
			Description: "上水井盖破损", Status: "已派遣", DispatchedUnit: "city-water", Deadline: "2021-03-06 18:00:00"},
		{Line: 3, LegacyId: "HQ-2", ReportedAt: "2021-03-05T10:00:00+08:00", Source: "12345热线", Kind: "事件", Major: "01", Minor: "02",
			GridCode: "320505002001003", Description: "绿化带暴露垃圾", Status: "待派遣"},
		{Line: 4, LegacyId: "HQ-3", ReportedAt: "2021-03-05 12:00", Source: "app", Kind: "event", Major: "01", Minor: "02",
			GridCode: "320506001001003", Description: "垃圾", Status: "filed"},
		{Line: 6, LegacyId: "HQ-4", ReportedAt: "2021/03/05 12:00:00", Source: "app", Kind: "event", Major: "01", Minor: "02",
			GridCode: "320505001001003", Description: "垃圾", Status: "已转办"},
		{Line: 7, LegacyId: "HQ-1", ReportedAt: "2021-03-05 12:00:00", Source: "app", Kind: "event", Major: "01", Minor: "02",
			GridCode: "320505001001003", Description: "垃圾", Status: "filed"},
	}
}

func allStored(t *testing.T, s *store.Store) []*pb.Case {
	t.Helper()
	cs, _, err := s.List(store.Query{PageSize: 500, WithHistory: true})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestImportCases(t *testing.T) {
	// The imported cases are years past their deadlines: the sweeper
	// would mark them overdue between the test's two reads of the store
	// (the re-import must change nothing). It first looks after an hour.
	c := testcluster.New(t, 1, district320505, func(c *config.Config) { c.Deadlines.SweepInterval = time.Hour })
	cl := pb.NewOwnershipServiceClient(c.Conn(0))
	st := c.Replica(0).Node.Store()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Refused as a whole, naming the field: nothing is written.
	_, err := cl.ImportCases(ctx, &pb.ImportCasesRequest{Rows: importRows()})
	assertField(t, err, "request_id")
	_, err = cl.ImportCases(ctx, &pb.ImportCasesRequest{RequestId: "imp-0"})
	assertField(t, err, "rows")
	many := make([]*pb.LegacyRow, 1001)
	for i := range many {
		many[i] = proto.Clone(importRows()[1]).(*pb.LegacyRow)
		many[i].LegacyId = fmt.Sprint("M-", i)
	}
	_, err = cl.ImportCases(ctx, &pb.ImportCasesRequest{RequestId: "imp-0", Rows: many})
	assertField(t, err, "rows")
	_, err = cl.ImportCases(ctx, &pb.ImportCasesRequest{RequestId: "imp-0", Rows: importRows(), Actor: strings.Repeat("名", 65)})
	assertField(t, err, "actor")

	// A dry run validates and writes nothing.
	resp, err := cl.ImportCases(ctx, &pb.ImportCasesRequest{RequestId: "imp-dry", Rows: importRows(), DryRun: true})
	if err != nil || resp.Imported != 0 || len(resp.Rejected) != 3 {
		t.Fatalf("dry run: %v %v", resp, err)
	}
	if got := allStored(t, st); len(got) != 0 {
		t.Fatalf("%d cases after refused requests and a dry run", len(got))
	}

	resp, err = cl.ImportCases(ctx, &pb.ImportCasesRequest{RequestId: "imp-1", Rows: importRows(), Actor: "王工"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Imported != 2 || resp.Already != 0 || len(resp.CaseIds) != 2 || resp.CaseIds[0] != "320505-20210304-000001" || resp.CaseIds[1] != "320505-20210305-000001" {
		t.Fatalf("import: %v", resp)
	}
	want := []struct {
		line  int32
		id    string
		field string
	}{{4, "HQ-3", "grid_code"}, {6, "HQ-4", "status"}, {7, "HQ-1", "legacy_id"}}
	if len(resp.Rejected) != len(want) {
		t.Fatalf("rejected: %v", resp.Rejected)
	}
	for i, w := range want {
		if e := resp.Rejected[i]; e.Line != w.line || e.LegacyId != w.id || e.Field != w.field || e.Reason == "" {
			t.Errorf("rejected %d: %v, want line %d %s %s", i, e, w.line, w.id, w.field)
		}
	}
	if !strings.Contains(resp.Rejected[1].Reason, "已派遣") {
		t.Errorf("status reason does not list the accepted values: %s", resp.Rejected[1].Reason)
	}
	stored := allStored(t, st)
	if len(stored) != 2 {
		t.Fatalf("%d cases stored, want 2", len(stored))
	}
	for _, bad := range []string{"HQ-3", "HQ-4"} {
		if got, _, _ := st.List(store.Query{LegacyID: bad}); len(got) != 0 {
			t.Errorf("rejected row %s was written", bad)
		}
	}
	got, err := c.Cases(0).GetCase(ctx, &pb.GetCaseRequest{CaseId: resp.CaseIds[0]})
	if err != nil {
		t.Fatal(err)
	}
	if got.State != pb.State_STATE_DISPATCHED || got.OwnerUnit != "city-water" || got.LegacyId != "HQ-1" || got.Deadline == nil ||
		len(got.History) != 1 || got.History[0].Actor != "王工" || got.History[0].RequestId != "imp-1" ||
		!strings.Contains(got.History[0].Note, "legacy_id=HQ-1") || len(got.AllowedActions) == 0 {
		t.Errorf("imported case: %v", got)
	}

	// The same request again (a retry): a replay that changes nothing.
	again, err := cl.ImportCases(ctx, &pb.ImportCasesRequest{RequestId: "imp-1", Rows: importRows(), Actor: "王工"})
	if err != nil {
		t.Fatal(err)
	}
	if again.Imported != 0 || again.Already != 2 || strings.Join(again.CaseIds, ",") != strings.Join(resp.CaseIds, ",") || len(again.Rejected) != 3 {
		t.Fatalf("replay: %v", again)
	}
	// The same rows under a new request id: already imported.
	again, err = cl.ImportCases(ctx, &pb.ImportCasesRequest{RequestId: "imp-2", Rows: importRows()})
	if err != nil {
		t.Fatal(err)
	}
	if again.Imported != 0 || again.Already != 2 || strings.Join(again.CaseIds, ",") != strings.Join(resp.CaseIds, ",") {
		t.Fatalf("re-import: %v", again)
	}
	after := allStored(t, st)
	if len(after) != len(stored) {
		t.Fatalf("%d cases after re-import, want %d", len(after), len(stored))
	}
	for i := range after {
		if !proto.Equal(after[i], stored[i]) {
			t.Errorf("case %s changed:\n%v\n%v", after[i].Id, stored[i], after[i])
		}
	}
}

func TestImportCasesREST(t *testing.T) {
	c := testcluster.New(t, 1, district320505)
	rc := restClient{t: t, base: c.HTTPBase(0)}
	row := `{"line":2,"legacy_id":"HQ-9","reported_at":"2022-06-01 09:00:00","source":"视频","kind":"事件","major":"05","minor":"01",
	 "grid_code":"320505001002007","description":"游商占道经营","status":"已立案"}`
	for _, bad := range []struct{ body, field string }{
		{`{"rows":[` + row + `]}`, "request_id"},
		{`{"request_id":"r 1","rows":[` + row + `]}`, "request_id"},
		{`{"request_id":"r1","rows":[]}`, "rows"},
	} {
		code, body := rc.do(http.MethodPost, "/v1/import", bad.body)
		if code != http.StatusBadRequest {
			t.Fatalf("%s: %d %v", bad.body, code, body)
		}
		if f := body["error"].(map[string]any)["field"]; f != bad.field {
			t.Fatalf("%s: field %v, want %s (%v)", bad.body, f, bad.field, body)
		}
	}
	if code, body := rc.do(http.MethodPost, "/v1/import", `{"request_id":"r1","rows":[{"line":"x"}]}`); code != http.StatusBadRequest {
		t.Fatalf("unparseable body: %d %v", code, body)
	}
	badRow := strings.Replace(row, `"已立案"`, `"已转办"`, 1)
	badRow = strings.Replace(badRow, `"line":2`, `"line":3`, 1)
	badRow = strings.Replace(badRow, `HQ-9`, `HQ-10`, 1)
	code, body := rc.do(http.MethodPost, "/v1/import", `{"request_id":"r1","actor":"导入员","rows":[`+row+`,`+badRow+`]}`)
	if code != http.StatusOK {
		t.Fatalf("import: %d %v", code, body)
	}
	rej, _ := body["rejected"].([]any)
	ids, _ := body["case_ids"].([]any)
	if body["imported"] != float64(1) || len(ids) != 1 || len(rej) != 1 {
		t.Fatalf("import: %v", body)
	}
	if e := rej[0].(map[string]any); e["line"] != float64(3) || e["field"] != "status" || e["legacy_id"] != "HQ-10" {
		t.Fatalf("rejected: %v", e)
	}
	if all := mustList(t, rc, "/v1/cases"); len(all) != 1 || all[0]["legacy_id"] != "HQ-9" || all[0]["state"] != "STATE_FILED" {
		t.Fatalf("cases: %v", all)
	}
}

// TestImportCasesOnAFollower: a follower passes the import to the leader.
func TestImportCasesOnAFollower(t *testing.T) {
	c := testcluster.New(t, 3, district320505)
	leader := c.Leader()
	follower := (leader + 1) % 3
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := pb.NewOwnershipServiceClient(c.Conn(follower)).ImportCases(ctx, &pb.ImportCasesRequest{RequestId: "imp-f", Rows: importRows()[:2]})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Imported != 2 || len(resp.CaseIds) != 2 {
		t.Fatalf("import on a follower: %v", resp)
	}
	if got := allStored(t, c.Replica(leader).Node.Store()); len(got) != 2 {
		t.Fatalf("%d cases on the leader", len(got))
	}
	first := resp.CaseIds
	// The retry is a replay: the leader's state machine answers it with
	// every row's case id, through the follower's forward.
	resp, err = pb.NewOwnershipServiceClient(c.Conn(follower)).ImportCases(ctx, &pb.ImportCasesRequest{RequestId: "imp-f", Rows: importRows()[:2]})
	if err != nil || resp.Imported != 0 || resp.Already != 2 || strings.Join(resp.CaseIds, ",") != strings.Join(first, ",") {
		t.Fatalf("replay on a follower: %v %v, want case ids %v", resp, err, first)
	}
}
