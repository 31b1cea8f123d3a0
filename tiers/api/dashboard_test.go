package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
	"github.com/cityhub/cityhub/tiers/store"
)

func getDashboard(t *testing.T, cl *testcluster.Cluster, cred string, r *pb.GetDashboardRequest) (*pb.Dashboard, error) {
	t.Helper()
	return pb.NewDashboardServiceClient(cl.Conn(0)).GetDashboard(withCred(context.Background(), cred), r)
}

func stateCount(a *pb.AreaCounts, st pb.State) int64 {
	for _, s := range a.GetStates() {
		if s.State == st {
			return s.Count
		}
	}
	return 0
}

// TestDashboardThroughTheWorkflow: the node's dashboard follows a case
// through report → file → dispatch → handle → check → close (the area's
// and its street's counts by state, open, closed today, today's flow), is
// as of the feed's head, and answers the same after a restart, whose
// start-up check (Verify) passes with the dashboard counters.
func TestDashboardThroughTheWorkflow(t *testing.T) {
	cl, _, seats := authCluster(t)
	w := &walker{t: t, cl: cl, seats: seats}
	leader := seatNamed(seats, "leader").cred
	district, street := inGrid[:6], inGrid[:9]

	id := w.caseIn(pb.Action_ACTION_DISPATCH) // reported, verified, filed
	d, err := getDashboard(t, cl, leader, &pb.GetDashboardRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Area.Code != district || d.Area.Level != pb.AreaLevel_AREA_LEVEL_DISTRICT || stateCount(d.Area, pb.State_STATE_FILED) != 1 ||
		d.Area.Open != 1 || d.Area.Total != 1 {
		t.Fatalf("filed: area %v", d.Area)
	}
	if len(d.Children) != 1 || d.Children[0].Code != street || d.Children[0].Level != pb.AreaLevel_AREA_LEVEL_STREET ||
		stateCount(d.Children[0], pb.State_STATE_FILED) != 1 {
		t.Fatalf("filed: children %v", d.Children)
	}
	if head := feedHead(t, cl, 0); d.Revision != head {
		t.Fatalf("revision %d, the feed's head is %d", d.Revision, head)
	}

	w.do("dispatcher", id, pb.Action_ACTION_DISPATCH, func(r *pb.ActRequest) { r.Unit = unitIn })
	w.do("unit-in", id, pb.Action_ACTION_ACCEPT, nil)
	d, err = getDashboard(t, cl, leader, &pb.GetDashboardRequest{AreaCode: street})
	if err != nil {
		t.Fatal(err)
	}
	if stateCount(d.Area, pb.State_STATE_ACCEPTED) != 1 || stateCount(d.Area, pb.State_STATE_FILED) != 0 || d.Area.Open != 1 {
		t.Fatalf("accepted: area %v", d.Area)
	}
	w.do("unit-in", id, pb.Action_ACTION_HANDLE, nil)
	w.do("insp-in", id, pb.Action_ACTION_CHECK_PASS, nil)
	w.do("leader", id, pb.Action_ACTION_CLOSE, nil)

	d, err = getDashboard(t, cl, leader, &pb.GetDashboardRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if stateCount(d.Area, pb.State_STATE_CLOSED) != 1 || d.Area.Open != 0 || d.Area.Total != 1 || len(d.Area.States) != 1 {
		t.Fatalf("closed: area %v", d.Area)
	}
	if head := feedHead(t, cl, 0); d.Revision != head {
		t.Fatalf("revision %d, the feed's head is %d", d.Revision, head)
	}
	// Today's flow, unless the walk crossed midnight in the node's zone.
	c, err := cl.Cases(0).GetCase(withCred(context.Background(), leader), &pb.GetCaseRequest{CaseId: id})
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := time.LoadLocation(d.TimeZone)
	first, last := c.History[0].At.AsTime().In(loc), c.History[len(c.History)-1].At.AsTime().In(loc)
	if today := d.Today.Date; first.Format(time.DateOnly) == today && last.Format(time.DateOnly) == today {
		want := &pb.DayFlow{Date: today, Reported: 1, Filed: 1, Dispatched: 1, Handled: 1, Closed: 1}
		if d.Today.String() != want.String() {
			t.Errorf("today's flow %v, want %v", d.Today, want)
		}
		if d.Area.ClosedToday != 1 || d.Children[0].ClosedToday != 1 {
			t.Errorf("closed today: area %d, street %d; want 1, 1", d.Area.ClosedToday, d.Children[0].ClosedToday)
		}
	} else {
		t.Logf("the walk crossed midnight (%s .. %s, dashboard %s): flow not checked", first, last, today)
	}

	// A restart: the start-up check passes, the numbers stay.
	cl.Stop(0)
	cl.Start(0)
	cl.WaitLeader(20 * time.Second)
	if _, err := cl.Replica(0).Node.Store().Verify(store.VerifyOptions{}); err != nil {
		t.Fatalf("verify after the restart: %v", err)
	}
	var again *pb.Dashboard
	testcluster.WaitFor(t, 30*time.Second, "the dashboard after the restart", func() bool {
		again, err = getDashboard(t, cl, leader, &pb.GetDashboardRequest{})
		return err == nil
	})
	if again.Area.String() != d.Area.String() || again.Revision != d.Revision {
		t.Fatalf("after the restart: %v at %d; before: %v at %d", again.Area, again.Revision, d.Area, d.Revision)
	}
}

// TestDashboardAccess: every staff seat that reads cases gets a dashboard
// within its scope: node-wide seats any area of the node, an inspector the
// grids it patrols (its own by default), a unit its unit's cases; outside
// it, and for seats without dashboard.read, PermissionDenied (REST 403);
// bad input names the field.
func TestDashboardAccess(t *testing.T) {
	cl, _, seats := authCluster(t)
	w := &walker{t: t, cl: cl, seats: seats}
	w.caseIn(pb.Action_ACTION_ACCEPT) // dispatched to unitIn, in inGrid
	community := inGrid[:12]

	ok := []struct {
		seat, area string
		code       string
		level      pb.AreaLevel
		total      int64
	}{
		{"leader", "", inGrid[:6], pb.AreaLevel_AREA_LEVEL_DISTRICT, 1},
		{"dispatcher", community, community, pb.AreaLevel_AREA_LEVEL_COMMUNITY, 1},
		{"supervisor", inGrid, inGrid, pb.AreaLevel_AREA_LEVEL_GRID, 1},
		{"evaluator", "", inGrid[:6], pb.AreaLevel_AREA_LEVEL_DISTRICT, 1},
		{"intake", "", inGrid[:6], pb.AreaLevel_AREA_LEVEL_DISTRICT, 1},
		{"insp-in", "", community, pb.AreaLevel_AREA_LEVEL_COMMUNITY, 1},
		{"insp-in", inGrid, inGrid, pb.AreaLevel_AREA_LEVEL_GRID, 1},
		{"insp-out", "", "320582110153", pb.AreaLevel_AREA_LEVEL_COMMUNITY, 0},
		{"unit-in", "", unitIn, pb.AreaLevel_AREA_LEVEL_UNIT, 1},
		{"unit-out", "", "parks", pb.AreaLevel_AREA_LEVEL_UNIT, 0},
	}
	for _, tc := range ok {
		d, err := getDashboard(t, cl, seatNamed(seats, tc.seat).cred, &pb.GetDashboardRequest{AreaCode: tc.area})
		if err != nil {
			t.Errorf("%s asking for %q: %v", tc.seat, tc.area, err)
			continue
		}
		if d.Area.Code != tc.code || d.Area.Level != tc.level || d.Area.Total != tc.total {
			t.Errorf("%s asking for %q: %s %s total %d; want %s %s %d", tc.seat, tc.area, d.Area.Code, d.Area.Level, d.Area.Total, tc.code, tc.level, tc.total)
		}
	}
	refused := []struct {
		seat, area string
		code       codes.Code
	}{
		{"insp-in", inGrid[:6], codes.PermissionDenied},        // wider than its grids
		{"insp-out", community, codes.PermissionDenied},        // another community
		{"unit-in", inGrid[:6], codes.PermissionDenied},        // a unit sees its unit only
		{"leader", "320581", codes.PermissionDenied},           // outside the node
		{"leader", "3205", codes.PermissionDenied},             // the city is above the node
		{"admin", "", codes.PermissionDenied},                  // reads no cases
		{"app", "", codes.PermissionDenied},                    // integrators have no dashboard
		{"camera", inGrid[:6], codes.PermissionDenied},         //
		{"leader", "32058211015", codes.InvalidArgument},       // 11 digits: no level
		{"leader", "32058x", codes.InvalidArgument},            // not digits
		{"dispatcher", "3205821101521", codes.InvalidArgument}, //
	}
	for _, tc := range refused {
		_, err := getDashboard(t, cl, seatNamed(seats, tc.seat).cred, &pb.GetDashboardRequest{AreaCode: tc.area})
		if status.Code(err) != tc.code {
			t.Errorf("%s asking for %q: %v, want %s", tc.seat, tc.area, err, tc.code)
		}
	}
	if _, err := getDashboard(t, cl, seatNamed(seats, "leader").cred, &pb.GetDashboardRequest{OverdueLimit: 999}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("overdue_limit 999: %v, want InvalidArgument", err)
	}

	// REST: GET /v1/dashboard.
	code, out := restCall(t, cl, seatNamed(seats, "leader").cred, http.MethodGet, "/v1/dashboard?area_code="+inGrid[:9], nil)
	if code != codes.OK {
		t.Fatalf("REST as the leader: %s %v", code, out)
	}
	if area, _ := out["area"].(map[string]any); area["code"] != inGrid[:9] || area["level"] != "AREA_LEVEL_STREET" {
		t.Fatalf("REST answer: %v", out)
	}
	if code, out = restCall(t, cl, seatNamed(seats, "insp-in").cred, http.MethodGet, "/v1/dashboard?area_code="+inGrid[:6], nil); code != codes.PermissionDenied {
		t.Fatalf("REST as insp-in for the district: %s %v, want 403", code, out)
	}
}
