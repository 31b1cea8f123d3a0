package casegen

import (
	"strings"
	"testing"

	cityhub "github.com/cityhub/cityhub"
	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/catalogue"
	"github.com/cityhub/cityhub/tiers/workflow"
)

// route moves the holder the way the state machine does (tiers/fsm): a
// dispatch to a unit hosted below hands the case down, a transfer up hands
// it to the parent. It fails the test on a step the node would refuse.
func route(t *testing.T, topo *topology.Topology, c *pb.Case, a *pb.ActRequest) {
	t.Helper()
	holder, _ := topo.Node(c.Holder)
	switch a.Action {
	case pb.Action_ACTION_TRANSFER_UP:
		if holder.Parent == "" {
			t.Fatalf("transfer up at the root %s", c.Holder)
		}
		if a.Note == "" {
			t.Fatalf("transfer up without a reason")
		}
		c.Holder, c.HolderEpoch = holder.Parent, c.HolderEpoch+1
	case pb.Action_ACTION_DISPATCH:
		host, ok := topo.NodeOfUnit(a.Unit)
		if !ok || host.Name == c.Holder {
			return
		}
		if _, up, err := topo.Route(c.Holder, host.Name); err != nil || up {
			t.Fatalf("%s dispatches to %s, hosted by %s above it", c.Holder, a.Unit, host.Name)
		}
		if !strings.HasPrefix(c.GridCode, host.Jurisdiction) {
			t.Fatalf("grid %s dispatched to %s of %s", c.GridCode, a.Unit, host.Name)
		}
		c.Holder, c.HolderEpoch = host.Name, c.HolderEpoch+1
	}
}

// Reports at every tier are valid for the node they are made at; walking
// them with Next through the real workflow, with the holder moving as the
// state machine moves it, hands cases down from the city, up from the
// communities, and finishes them.
func TestFederatedWalks(t *testing.T) {
	topo, err := topology.Load(cityhub.SampleFile(cityhub.SampleTopology))
	if err != nil {
		t.Fatal(err)
	}
	cat := catalogue.Default()
	g := NewFederated(7, topo, "f")
	var (
		reportedAt   = map[topology.Tier]int{}
		sourceAt     = map[topology.Tier]map[pb.Source]int{}
		handedDown   int // dispatched from the city to a unit of a node below
		upFromBottom int // transferred up by a community
		ended        = map[string]int{}
		closed       int
	)
	const walks = 2000
	for i := 0; i < walks; i++ {
		name, r := g.ReportAt()
		n, ok := topo.Node(name)
		if !ok {
			t.Fatalf("report at unknown node %q", name)
		}
		prefix := n.Jurisdiction
		if n.Tier == topology.City {
			prefix = prefix[:4]
		}
		if !strings.HasPrefix(r.GridCode, prefix) {
			t.Fatalf("report at %s for grid %s outside its jurisdiction", name, r.GridCode)
		}
		if h, err := topo.HolderForGrid(r.GridCode); err != nil || h.Tier != topology.Community {
			t.Fatalf("grid %s is not in a configured community: %v %v", r.GridCode, h.Name, err)
		}
		if err := cat.ValidateClass(r.Kind, r.MajorCode, r.MinorCode, r.ComponentId, r.GridCode); err != nil {
			t.Fatalf("report %d: %v", i, err)
		}
		reportedAt[n.Tier]++
		if sourceAt[n.Tier] == nil {
			sourceAt[n.Tier] = map[pb.Source]int{}
		}
		sourceAt[n.Tier][r.Source]++

		c := &pb.Case{Id: "x", Source: r.Source, Kind: r.Kind, MajorCode: r.MajorCode, MinorCode: r.MinorCode, GridCode: r.GridCode,
			Holder: name, HolderEpoch: 1}
		now := int64(1_700_000_000_000)
		if err := workflow.NewCase(c, workflow.Step{Action: pb.Action_ACTION_REPORT, Actor: r.Actor, Role: r.Role, AtUnixMs: now}); err != nil {
			t.Fatalf("new case: %v", err)
		}
		for steps := 0; ; steps++ {
			if steps == 200 {
				t.Fatalf("walk %d did not end in 200 steps: %v at %s", i, c.State, c.Holder)
			}
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
			from := c.Holder
			if err := workflow.Apply(c, st); err != nil {
				t.Fatalf("case in %v at %s: step %v: %v", c.State, c.Holder, a.Action, err)
			}
			route(t, topo, c, a)
			if from == "city" && a.Action == pb.Action_ACTION_DISPATCH && c.Holder != from {
				handedDown++
			}
			if a.Action == pb.Action_ACTION_TRANSFER_UP && strings.HasPrefix(from, "c-") {
				upFromBottom++
			}
		}
		if !workflow.IsTerminal(c.State) {
			t.Fatalf("walk stopped in %v", c.State)
		}
		ended[c.Holder]++
		if c.State == pb.State_STATE_CLOSED {
			closed++
		}
	}
	t.Logf("reported at %v; %d handed down from the city, %d transferred up by communities, %d closed; ended at %v",
		reportedAt, handedDown, upFromBottom, closed, ended)
	// The tier mix follows tierWeights (20/20/25/35 of 2000), loosely.
	for tier, w := range tierWeights {
		if got, want := reportedAt[tier], walks*w/100; got < want*7/10 || got > want*13/10 {
			t.Errorf("%s: %d reports, want about %d", tier, got, want)
		}
	}
	if n := sourceAt[topology.Community][pb.Source_SOURCE_CAMERA] + sourceAt[topology.Community][pb.Source_SOURCE_HOTLINE_12319]; n != 0 {
		t.Errorf("communities got %d camera or 12319 reports", n)
	}
	if sourceAt[topology.City][pb.Source_SOURCE_HOTLINE_12345] < sourceAt[topology.City][pb.Source_SOURCE_APP] {
		t.Errorf("the city gets fewer 12345 calls than app reports: %v", sourceAt[topology.City])
	}
	if handedDown < 100 || upFromBottom < 50 {
		t.Errorf("%d cases handed down from the city, %d transferred up by communities", handedDown, upFromBottom)
	}
	if closed < walks*8/10 {
		t.Errorf("only %d of %d walks closed", closed, walks)
	}
	for _, tier := range []string{"city", "d-", "s-", "c-"} {
		n := 0
		for h, k := range ended {
			if strings.HasPrefix(h, tier) {
				n += k
			}
		}
		if n == 0 {
			t.Errorf("no case ended held by a %s node: %v", tier, ended)
		}
	}
}

// Every tier's source weights cover the sources.
func TestTierSources(t *testing.T) {
	for tier, w := range tierSources {
		if len(w) != len(sources) || len(sourceIndexes) != len(sources) {
			t.Errorf("%s: %d weights, %d sources", tier, len(w), len(sources))
		}
	}
}

// Without a holder (a node alone) Next dispatches to the class's unit as
// before, even from a federated generator.
func TestStandaloneCaseFromFederatedGenerator(t *testing.T) {
	topo, err := topology.Load(cityhub.SampleFile(cityhub.SampleTopology))
	if err != nil {
		t.Fatal(err)
	}
	g := NewFederated(1, topo, "s")
	c := &pb.Case{Id: "x", State: pb.State_STATE_FILED, Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02"}
	a := g.Next(c)
	if a.Action != pb.Action_ACTION_DISPATCH || a.Unit != "sanitation" || a.UnitTier != pb.Tier_TIER_DISTRICT {
		t.Fatalf("%v", a)
	}
	// A water manhole cover found in a community goes up: the city water
	// company is the only owner.
	c = &pb.Case{Id: "y", State: pb.State_STATE_FILED, Kind: pb.Kind_KIND_COMPONENT, MajorCode: "01", MinorCode: "01",
		GridCode: "320505001001003", Holder: "c-320505001001"}
	for i := 0; i < 20; i++ {
		a = g.Next(c)
		if a.Action != pb.Action_ACTION_TRANSFER_UP || a.Note == "" {
			t.Fatalf("water cover at a community: %v", a)
		}
	}
	// At the city it is dispatched to the water company.
	c.Holder = "city"
	if a = g.Next(c); a.Action != pb.Action_ACTION_DISPATCH || a.Unit != "city-water" || a.TimeLimitMinutes != 360 {
		t.Fatalf("water cover at the city: %v", a)
	}
}
