package overdue_test

import (
	"context"
	"testing"
	"time"

	"github.com/cityhub/cityhub/config"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/replica"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// TestExtensionAndSuspensionMoveDeadlines walks a case through an approved
// extension and a suspension on a node with a fake clock: both move the
// handling deadline in working time, suspended time does not count, and a
// case whose moved deadline has not passed is not marked overdue.
func TestExtensionAndSuspensionMoveDeadlines(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	clk := testcluster.NewClock(time.Date(2026, 11, 23, 9, 0, 0, 0, cst)) // Monday 09:00
	c := testcluster.NewWith(t, 1, func(config.Config) replica.Options { return replica.Options{Clock: clk} },
		func(cfg *config.Config) { cfg.Deadlines.SweepInterval = 20 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := c.Cases(0)
	step := func(rid string, a pb.Action, role pb.Role, mod func(*pb.ActRequest)) *pb.Case {
		t.Helper()
		r := &pb.ActRequest{RequestId: rid, Action: a, Actor: "x", Role: role, Note: "n"}
		if mod != nil {
			mod(r)
		}
		resp, err := cl.Act(ctx, r)
		if err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		return resp.Case
	}
	rep, err := cl.ReportCase(ctx, &pb.ReportCaseRequest{RequestId: "m-1", Actor: "insp", Role: pb.Role_ROLE_INSPECTOR, Source: pb.Source_SOURCE_INSPECTOR,
		Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", GridCode: "320582110152102", Description: "garbage"})
	if err != nil {
		t.Fatal(err)
	}
	id := rep.Case.Id
	if want := time.Date(2026, 11, 23, 10, 0, 0, 0, cst); !rep.Case.StageDeadline.AsTime().Equal(want) {
		t.Fatalf("verify deadline %v, want %v", rep.Case.StageDeadline.AsTime().In(cst), want)
	}
	with := func(f func(*pb.ActRequest)) func(*pb.ActRequest) {
		return func(r *pb.ActRequest) { r.CaseId = id; f(r) }
	}
	none := with(func(*pb.ActRequest) {})
	step("m-2", pb.Action_ACTION_FILE, pb.Role_ROLE_SHIFT_LEADER, none)
	// No time limit given: the class's (exposed garbage, 4 working hours) → 15:00.
	d := step("m-3", pb.Action_ACTION_DISPATCH, pb.Role_ROLE_DISPATCHER, with(func(r *pb.ActRequest) { r.Unit = "sanitation" }))
	if want := time.Date(2026, 11, 23, 15, 0, 0, 0, cst); !d.Deadline.AsTime().Equal(want) || !d.StageDeadline.AsTime().Equal(want) {
		t.Fatalf("dispatch deadline %v stage %v, want %v", d.Deadline.AsTime().In(cst), d.StageDeadline.AsTime().In(cst), want)
	}
	step("m-4", pb.Action_ACTION_ACCEPT, pb.Role_ROLE_HANDLING_UNIT, none)
	step("m-5", pb.Action_ACTION_REQUEST_EXTENSION, pb.Role_ROLE_HANDLING_UNIT, with(func(r *pb.ActRequest) { r.ExtensionMinutes = 240 }))
	// 4 working hours after 15:00: 3 h to 18:00, 1 h on Tuesday → 09:30.
	e := step("m-6", pb.Action_ACTION_APPROVE_EXTENSION, pb.Role_ROLE_DISPATCHER, none)
	if want := time.Date(2026, 11, 24, 9, 30, 0, 0, cst); !e.Deadline.AsTime().Equal(want) {
		t.Fatalf("extended deadline %v, want %v", e.Deadline.AsTime().In(cst), want)
	}
	// Suspended Monday 16:00 until Wednesday 10:00: 2 h + 7h30 + 1h30 = 11 working hours.
	clk.Set(time.Date(2026, 11, 23, 16, 0, 0, 0, cst))
	step("m-7", pb.Action_ACTION_REQUEST_SUSPEND, pb.Role_ROLE_HANDLING_UNIT, none)
	step("m-8", pb.Action_ACTION_APPROVE_SUSPEND, pb.Role_ROLE_SHIFT_LEADER, none)
	clk.Set(time.Date(2026, 11, 25, 10, 0, 0, 0, cst))
	// The old deadline has passed, but a suspended case's clock stands: a
	// sweep marks nothing.
	sweep := func(when string) {
		t.Helper()
		if n, err := c.Replica(0).Sweeper().Sweep(ctx); n != 0 || err != nil {
			t.Fatalf("a sweep %s marked %d cases (%v), want none", when, n, err)
		}
	}
	sweep("while suspended")
	if got, _ := c.Replica(0).Node.Store().GetCase(id); got.Overdue {
		t.Fatal("a suspended case was marked overdue")
	}
	r := step("m-9", pb.Action_ACTION_RESUME, pb.Role_ROLE_SHIFT_LEADER, none)
	// Tuesday 09:30 + 11 working hours: 2h30 + 4 h on Tuesday, 3h30 + 1 h on
	// Wednesday → 15:00.
	if want := time.Date(2026, 11, 25, 15, 0, 0, 0, cst); !r.Deadline.AsTime().Equal(want) || !r.StageDeadline.AsTime().Equal(want) {
		t.Fatalf("resumed deadline %v stage %v, want %v", r.Deadline.AsTime().In(cst), r.StageDeadline.AsTime().In(cst), want)
	}
	sweep("before the moved deadline")
	if got, _ := c.Replica(0).Node.Store().GetCase(id); got.Overdue {
		t.Fatal("marked overdue before the moved deadline")
	}
	clk.Set(time.Date(2026, 11, 25, 15, 1, 0, 0, cst))
	testcluster.WaitFor(t, 10*time.Second, "overdue after the moved deadline", func() bool {
		got, _ := c.Replica(0).Node.Store().GetCase(id)
		return got.Overdue && got.OverdueCount == 1
	})
}
