package overdue_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cityhub/cityhub/config"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/replica"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
	"github.com/cityhub/cityhub/tiers/store"
	"github.com/cityhub/cityhub/tiers/workflow"
)

var cst = time.FixedZone("CST", 8*3600)

// do retries a call on any running replica through elections.
func do(ctx context.Context, t *testing.T, c *testcluster.Cluster, fn func(pb.CaseServiceClient) error) {
	t.Helper()
	var err error
	for k := 0; ctx.Err() == nil; k++ {
		up := c.Up()
		if len(up) == 0 {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if err = fn(c.Cases(up[k%len(up)])); err == nil {
			return
		}
		if !strings.Contains(err.Error(), "Unavailable") && !strings.Contains(err.Error(), "leader") {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("gave up: %v", err)
}

// TestOverdueEscalatedOnceAcrossLeaderFailover: cases fall overdue on a
// 3-replica group with a fake clock; the leader marks them, is killed, and
// the new leader marks the cases that fall due afterwards. Every case is
// supervised exactly once, on every replica.
func TestOverdueEscalatedOnceAcrossLeaderFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	clk := testcluster.NewClock(time.Date(2026, 11, 23, 9, 0, 0, 0, cst)) // a Monday
	c := testcluster.NewWith(t, 3, func(config.Config) replica.Options { return replica.Options{Clock: clk} },
		func(cfg *config.Config) { cfg.Deadlines.SweepInterval = 50 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const n = 20
	ids := make([]string, n)
	for i := 0; i < n; i++ {
		do(ctx, t, c, func(cl pb.CaseServiceClient) error {
			r, err := cl.ReportCase(ctx, &pb.ReportCaseRequest{RequestId: fmt.Sprintf("r-%d", i), Actor: "insp", Role: pb.Role_ROLE_INSPECTOR,
				Source: pb.Source_SOURCE_INSPECTOR, Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", GridCode: "320582110152102", Description: "garbage"})
			if err == nil {
				ids[i] = r.Case.Id
			}
			return err
		})
		do(ctx, t, c, func(cl pb.CaseServiceClient) error {
			_, err := cl.File(ctx, &pb.ActRequest{CaseId: ids[i], RequestId: fmt.Sprintf("f-%d", i), Actor: "lead", Role: pb.Role_ROLE_SHIFT_LEADER})
			return err
		})
		limit := int64(30) // 09:30
		if i >= n/2 {
			limit = 240 // working time: 3 h to noon, 1 h after lunch: 15:00 (wall clock would say 13:00)
		}
		do(ctx, t, c, func(cl pb.CaseServiceClient) error {
			_, err := cl.Dispatch(ctx, &pb.ActRequest{CaseId: ids[i], RequestId: fmt.Sprintf("d-%d", i), Actor: "disp", Role: pb.Role_ROLE_DISPATCHER, Unit: "sanitation", TimeLimitMinutes: limit})
			return err
		})
	}
	overdue := func() int {
		l := c.Leader()
		if l < 0 {
			return -1
		}
		r := c.Replica(l)
		if r == nil {
			return -1
		}
		cases, _, err := r.Node.Store().List(store.Query{Overdue: true, PageSize: 500})
		if err != nil {
			return -1
		}
		return len(cases)
	}
	if got := overdue(); got != 0 {
		t.Fatalf("%d cases overdue before any deadline passed", got)
	}
	clk.Set(time.Date(2026, 11, 23, 10, 0, 0, 0, cst))
	testcluster.WaitFor(t, 30*time.Second, "the first half marked overdue", func() bool { return overdue() == n/2 })

	old := c.WaitLeader(10 * time.Second)
	c.Kill(old)
	clk.Set(time.Date(2026, 11, 23, 14, 59, 0, 0, cst))
	c.WaitLeader(20 * time.Second)
	// The new leader has the first half's marks (once it has applied
	// them), and a sweep of its at 14:59 marks nothing more: the rest are
	// due at 15:00 working time.
	testcluster.WaitFor(t, 30*time.Second, "the new leader to have the first half's marks", func() bool { return overdue() == n/2 })
	sweepOnLeader(ctx, t, c, 0, "at 14:59")
	for _, i := range c.Up() {
		if got := overdueAt(t, c, i); got > n/2 {
			t.Fatalf("replica %d: %d cases overdue at 14:59, want %d (the rest are due at 15:00 working time)", i, got, n/2)
		}
	}
	clk.Set(time.Date(2026, 11, 23, 15, 30, 0, 0, cst))
	testcluster.WaitFor(t, 30*time.Second, "the new leader marks the second half", func() bool { return overdue() == n })
	c.Start(old)
	l := c.WaitLeader(10 * time.Second)
	last := c.Replica(l).Node.Raft().LastIndex()
	for _, i := range c.Up() {
		testcluster.WaitFor(t, 30*time.Second, "replica caught up", func() bool {
			r := c.Replica(i)
			return r != nil && r.Node.AppliedIndex() >= last
		})
	}
	// Another sweep on the leader marks nothing twice.
	sweepOnLeader(ctx, t, c, 0, "after every case was marked")
	for _, i := range c.Up() {
		st := c.Replica(i).Node.Store()
		for k, id := range ids {
			cs, err := st.GetCase(id)
			if err != nil {
				t.Fatal(err)
			}
			marks := 0
			for _, h := range cs.History {
				if h.Action == pb.Action_ACTION_SUPERVISE && h.Role == pb.Role_ROLE_SYSTEM && strings.HasPrefix(h.Note, workflow.OverdueNote) {
					marks++
				}
			}
			if marks != 1 || cs.OverdueCount != 1 || !cs.Overdue || cs.SuperviseCount != 1 {
				t.Fatalf("replica %d, case %d (%s): %d overdue marks, overdue_count %d, overdue %v, supervise_count %d", i, k, id, marks, cs.OverdueCount, cs.Overdue, cs.SuperviseCount)
			}
			wantDeadline := time.Date(2026, 11, 23, 9, 30, 0, 0, cst)
			if k >= n/2 {
				wantDeadline = time.Date(2026, 11, 23, 15, 0, 0, 0, cst)
			}
			if !cs.Deadline.AsTime().Equal(wantDeadline) {
				t.Fatalf("case %d deadline %v, want %v (working minutes from 09:00)", k, cs.Deadline.AsTime().In(cst), wantDeadline)
			}
		}
	}
	// The supervising list shows them, and a handled case leaves it.
	resp, err := c.Cases(c.WaitLeader(10*time.Second)).ListCases(ctx, &pb.ListCasesRequest{Overdue: true, PageSize: 100})
	if err != nil || len(resp.Cases) != n {
		t.Fatalf("overdue list: %d cases, %v", len(resp.GetCases()), err)
	}
}

// sweepOnLeader runs a sweep on the group's leader (besides the one the
// sweeper runs on its own) and checks how many cases it marked.
func sweepOnLeader(ctx context.Context, t *testing.T, c *testcluster.Cluster, want int, when string) {
	t.Helper()
	for ctx.Err() == nil {
		r := c.Replica(c.WaitLeader(20 * time.Second))
		if r == nil {
			continue
		}
		got, err := r.Sweeper().Sweep(ctx)
		if err != nil || !r.Node.IsLeader() {
			continue // leadership moved meanwhile: sweep on the new leader
		}
		if got != want {
			t.Fatalf("a sweep on the leader %s marked %d cases, want %d", when, got, want)
		}
		return
	}
	t.Fatalf("no sweep on a leader %s: %v", when, ctx.Err())
}

// overdueAt counts the cases replica i has marked overdue.
func overdueAt(t *testing.T, c *testcluster.Cluster, i int) int {
	t.Helper()
	r := c.Replica(i)
	if r == nil {
		return 0
	}
	cases, _, err := r.Node.Store().List(store.Query{Overdue: true, PageSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	return len(cases)
}
