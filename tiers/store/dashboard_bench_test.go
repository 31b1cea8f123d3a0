package store_test

import (
	"fmt"
	"testing"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

// BenchmarkDashboard is one city dashboard (the 大屏's first call) over
// 100,000 cases in the sample city's shape (2 districts × 2 streets × 2
// communities × 10 grids), a third of the open ones overdue, reported over
// the last 30 days: the city's numbers, its districts', today's 24 hours
// of flow and the top 20 of the overdue list.
func BenchmarkDashboard(b *testing.B) {
	const n = 100_000
	s := openMem(b)
	var grids []string
	for d := range 2 {
		for st := range 2 {
			for c := range 2 {
				for g := range 10 {
					grids = append(grids, fmt.Sprintf("32050%d00%d00%d%03d", 5+d, st+1, c+1, g+1))
				}
			}
		}
	}
	now := time.UnixMilli(t0).Add(30 * 24 * time.Hour)
	states := []pb.State{pb.State_STATE_REPORTED, pb.State_STATE_FILED, pb.State_STATE_DISPATCHED, pb.State_STATE_ACCEPTED,
		pb.State_STATE_HANDLED, pb.State_STATE_CLOSED, pb.State_STATE_CLOSED, pb.State_STATE_CLOSED}
	cs := make([]*pb.Case, 0, n)
	for i := range n {
		at := now.Add(-time.Duration(i) * 30 * 24 * time.Hour / n).UnixMilli()
		st := states[i%len(states)]
		c := mkCase(fmt.Sprintf("320500-20260501-%06d", i+1), st, fmt.Sprintf("unit-%d", i%20), grids[i%len(grids)], at+3*60*minute)
		c.History[0].At, c.History[1].At = ts(at), ts(at+minute)
		c.History[1].Action = []pb.Action{pb.Action_ACTION_FILE, pb.Action_ACTION_DISPATCH, pb.Action_ACTION_HANDLE, pb.Action_ACTION_CLOSE}[i%4]
		c.StageDeadline = c.Deadline
		c.Overdue = i%3 == 0 && st != pb.State_STATE_CLOSED
		cs = append(cs, c)
	}
	putCases(b, s, cs)
	var hours []string
	for h := range 24 {
		hours = append(hours, store.FlowHour(now.Add(-time.Duration(h)*time.Hour)))
	}
	q := store.DashboardQuery{Area: "3205", Hours: hours, OverdueLimit: 20}
	if r, err := s.Dashboard(q); err != nil || r.Area.Total() != n || len(r.Children) != 2 || len(r.Overdue) != 20 {
		b.Fatalf("dashboard: %v, %d cases, %d children, %d overdue", err, r.Area.Total(), len(r.Children), len(r.Overdue))
	}
	cpu0 := cpuTime()
	for b.Loop() {
		if _, err := s.Dashboard(q); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1e3/float64(b.N), "cpu-ms/op")
}
