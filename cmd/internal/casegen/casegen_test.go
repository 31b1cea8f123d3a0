package casegen

import (
	"testing"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/catalogue"
	"github.com/cityhub/cityhub/tiers/geo"
	"github.com/cityhub/cityhub/tiers/workflow"
)

// Every generated report must pass the node's own validation, and walking
// cases with Next through the real workflow must reach terminal states.
func TestReportsAreValidAndWalksFinish(t *testing.T) {
	cat := catalogue.Default()
	g := New(1, "320582", "t")
	closed := 0
	for i := 0; i < 500; i++ {
		r := g.Report()
		if err := catalogue.ValidateGridCode(r.GridCode); err != nil {
			t.Fatalf("grid %s: %v", r.GridCode, err)
		}
		if err := cat.ValidateClass(r.Kind, r.MajorCode, r.MinorCode, r.ComponentId, r.GridCode); err != nil {
			t.Fatalf("report %d: %v", i, err)
		}
		c := &pb.Case{Id: "320582-20261122-000001", Source: r.Source, Kind: r.Kind, MajorCode: r.MajorCode, MinorCode: r.MinorCode, GridCode: r.GridCode}
		now := int64(1_700_000_000_000)
		if err := workflow.NewCase(c, workflow.Step{Action: pb.Action_ACTION_REPORT, Actor: r.Actor, Role: r.Role, AtUnixMs: now}); err != nil {
			t.Fatalf("new case: %v", err)
		}
		for steps := 0; steps < 50; steps++ {
			c.AllowedActions = workflow.Allowed(c)
			a := g.Next(c)
			if a == nil {
				break
			}
			now += 60_000
			st := workflow.Step{Action: a.Action, Actor: a.Actor, Role: a.Role, Note: a.Note, Unit: a.Unit, UnitTier: a.UnitTier,
				ExtensionMinutes: a.ExtensionMinutes, AtUnixMs: now}
			if a.TimeLimitMinutes > 0 {
				st.DeadlineUnixMs = now + a.TimeLimitMinutes*60_000
			}
			if err := workflow.Apply(c, st); err != nil {
				t.Fatalf("case in %v: step %v: %v", c.State, a.Action, err)
			}
		}
		if !workflow.IsTerminal(c.State) {
			t.Fatalf("walk stopped in %v", c.State)
		}
		if c.State == pb.State_STATE_CLOSED {
			closed++
		}
	}
	if closed < 400 {
		t.Fatalf("only %d of 500 walks closed", closed)
	}
}

// Reports on the sample city's grids stand inside their grid's polygon.
func TestReportsStandInTheirGrid(t *testing.T) {
	reg, err := geo.Sample()
	if err != nil {
		t.Fatal(err)
	}
	g := New(3, "320505001001", "t")
	inLayer := 0
	for i := 0; i < 300; i++ {
		r := g.Report()
		if _, ok := reg.Grid(r.GridCode); !ok {
			continue
		}
		inLayer++
		got, ok := reg.Locate(r.Location.Lat, r.Location.Lng)
		if !ok || got.Code != r.GridCode {
			t.Errorf("report on %s stands at (%v, %v), in grid %q", r.GridCode, r.Location.Lat, r.Location.Lng, got.Code)
		}
	}
	if inLayer < 100 {
		t.Fatalf("only %d of 300 reports on grids the layer has", inLayer)
	}
}
