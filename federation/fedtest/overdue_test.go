package fedtest

import (
	"context"
	"testing"
	"time"

	"github.com/cityhub/cityhub/config"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// TestOverdueEscalatesUpTheTiers: a case handed down to a community falls
// overdue there; the community's leader supervises it (督办) once, and the
// federation carries the mark to every tier above, where it appears in the
// supervising tier's list of overdue cases.
func TestOverdueEscalatesUpTheTiers(t *testing.T) {
	cst := time.FixedZone("CST", 8*3600)
	clk := testcluster.NewClock(time.Date(2026, 11, 23, 9, 0, 0, 0, cst)) // Monday
	f := NewWithClock(t, chain(), 1, clk, func(c *config.Config) { c.Deadlines.SweepInterval = 50 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	city := f.Client("city")
	c := report(ctx, t, city, "od-1", "320505001001004")
	act(ctx, t, city, c.Id, "od-2", pb.Action_ACTION_FILE, pb.Role_ROLE_SHIFT_LEADER, nil)
	act(ctx, t, city, c.Id, "od-3", pb.Action_ACTION_DISPATCH, pb.Role_ROLE_DISPATCHER, func(r *pb.ActRequest) { r.Unit, r.TimeLimitMinutes = "320505001001-grid", 60 })
	waitFor(t, 20*time.Second, "the community holds it", func() bool {
		got, err := f.anyReplica("c-320505001001", c.Id)
		return err == nil && got.Holder == "c-320505001001"
	})
	clk.Set(time.Date(2026, 11, 23, 10, 30, 0, 0, cst))
	f.WaitSettled(30 * time.Second)
	waitFor(t, 20*time.Second, "the mark reaches the city", func() bool {
		got := f.stored(t, "city", c.Id)
		return got != nil && got.Overdue
	})
	f.WaitSettled(30 * time.Second)
	var ref *pb.Case
	for _, n := range chainOrder {
		got := f.stored(t, n, c.Id)
		if got == nil || !got.Overdue || got.OverdueCount != 1 || got.SuperviseCount != 1 {
			t.Fatalf("%s: %v", n, got)
		}
		if ref != nil && got.Version != ref.Version {
			t.Fatalf("%s has version %d, the holder %d", n, got.Version, ref.Version)
		}
		ref = got
		resp, err := f.Groups[n].Cases(0).ListCases(ctx, &pb.ListCasesRequest{Overdue: true})
		if err != nil || len(resp.Cases) != 1 || resp.Cases[0].Id != c.Id {
			t.Fatalf("%s overdue list: %v %v", n, resp.GetCases(), err)
		}
	}
	// Only the holder marked it: the mirrors' sweepers never proposed.
	for _, n := range []string{"city", "d-320505", "s-320505001"} {
		if m := f.Groups[n].Replica(0).Sweeper().Marked(); m != 0 {
			t.Fatalf("%s's sweeper marked %d cases it does not hold", n, m)
		}
	}
	if m := f.Groups["c-320505001001"].Replica(0).Sweeper().Marked(); m != 1 {
		t.Fatalf("the holder's sweeper marked %d cases, want 1", m)
	}
}
