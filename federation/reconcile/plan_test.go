package reconcile

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhub "github.com/cityhub/cityhub"
	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/workflow"
)

// fixedOwners answers every case with the same ownership.
type fixedOwners struct{ o *pb.Ownership }

func (f fixedOwners) OwnerOf(*pb.Case) *pb.Ownership { return f.o }

func sampleTopology(t *testing.T) *topology.Topology {
	t.Helper()
	topo, err := topology.Load(cityhub.SampleFile("federation.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func owner(unit, node string, tier pb.Tier) *pb.Ownership {
	return &pb.Ownership{Unit: unit, Node: node, Tier: tier, Rule: "r-" + unit, Explanation: "rule says " + unit}
}

func TestPlan(t *testing.T) {
	topo := sampleTopology(t)
	disputed := &pb.Ownership{Disputed: true, Dispute: "rules a and b disagree"}
	cityMunicipal := owner("city-municipal", "city", pb.Tier_TIER_CITY)
	roads505 := owner("320505-roads", "d-320505", pb.Tier_TIER_DISTRICT)
	roads506 := owner("320506-roads", "d-320506", pb.Tier_TIER_DISTRICT)
	squad := owner("320505001-squad", "s-320505001", pb.Tier_TIER_STREET)
	base := func(holder string, st pb.State, unit string) *pb.Case {
		return &pb.Case{Id: "320505-20200101-000001", Holder: holder, HolderEpoch: 3, Version: 7, State: st, OwnerUnit: unit,
			Kind: pb.Kind_KIND_EVENT, MajorCode: "04", MinorCode: "01", ReportedAt: timestamppb.Now()}
	}
	with := func(c *pb.Case, f func(*pb.Case)) *pb.Case { f(c); return c }

	for _, tc := range []struct {
		name    string
		self    string
		c       *pb.Case
		owner   *pb.Ownership
		out     pb.ReconcileOutcome
		action  pb.Action // UNSPECIFIED: none
		unit    string    // the action's unit
		to      string    // record's destination
		inWhy   string    // a word the reason must contain
		consult bool      // false: the catalogue must not be asked
	}{
		{name: "city-owned held by a district goes up", self: "d-320505", c: base("d-320505", pb.State_STATE_DISPATCHED, "320505-roads"),
			owner: cityMunicipal, out: pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED, action: pb.Action_ACTION_TRANSFER_UP, to: "city", inWhy: "handed up", consult: true},
		{name: "district-owned filed at the city goes down", self: "city", c: base("city", pb.State_STATE_FILED, ""),
			owner: roads505, out: pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED, action: pb.Action_ACTION_DISPATCH, unit: "320505-roads", to: "d-320505", inWhy: "handed down", consult: true},
		{name: "district-owned dispatched to a city unit is reassigned down", self: "city", c: base("city", pb.State_STATE_ACCEPTED, "city-water"),
			owner: roads505, out: pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED, action: pb.Action_ACTION_REASSIGN, unit: "320505-roads", to: "d-320505", consult: true},
		{name: "wrong district goes up", self: "d-320505", c: base("d-320505", pb.State_STATE_FILED, ""),
			owner: roads506, out: pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED, action: pb.Action_ACTION_TRANSFER_UP, to: "d-320506", consult: true},
		{name: "street-owned at the district is handed down", self: "d-320505", c: base("d-320505", pb.State_STATE_FILED, ""),
			owner: squad, out: pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED, action: pb.Action_ACTION_DISPATCH, unit: "320505001-squad", to: "s-320505001", consult: true},
		{name: "unit that no longer exists is reassigned", self: "d-320505", c: base("d-320505", pb.State_STATE_DISPATCHED, "320505-old-construction"),
			owner: roads505, out: pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED, action: pb.Action_ACTION_REASSIGN, unit: "320505-roads", to: "d-320505", inWhy: "no longer exists", consult: true},
		{name: "filed at its owner's node is dispatched", self: "d-320505", c: base("d-320505", pb.State_STATE_FILED, ""),
			owner: roads505, out: pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED, action: pb.Action_ACTION_DISPATCH, unit: "320505-roads", to: "d-320505", consult: true},
		{name: "in place", self: "d-320505", c: base("d-320505", pb.State_STATE_ACCEPTED, "320505-roads"),
			owner: roads505, out: pb.ReconcileOutcome_RECONCILE_OUTCOME_IN_PLACE, to: "d-320505", consult: true},
		{name: "disputed goes to joint review at the city", self: "d-320505", c: base("d-320505", pb.State_STATE_DISPATCHED, "320505-roads"),
			owner: disputed, out: pb.ReconcileOutcome_RECONCILE_OUTCOME_DISPUTED, action: pb.Action_ACTION_REFER_REVIEW, to: "city", inWhy: "disagree", consult: true},
		{name: "owner's first return is denied", self: "d-320505",
			c: with(base("d-320505", pb.State_STATE_RETURN_REQUESTED, "320505-roads"), func(c *pb.Case) {
				c.Ownership = &pb.Ownership{Unit: "320505-roads", Rejections: 1}
				c.Pending = &pb.Pending{Action: pb.Action_ACTION_REQUEST_RETURN, Reason: "not ours: it is a city road"}
			}),
			owner: roads505, out: pb.ReconcileOutcome_RECONCILE_OUTCOME_REJECTED, action: pb.Action_ACTION_DENY_RETURN, to: "d-320505", inWhy: "city road", consult: true},
		{name: "owner's second return goes to joint review", self: "d-320505",
			c: with(base("d-320505", pb.State_STATE_RETURN_REQUESTED, "320505-roads"), func(c *pb.Case) {
				c.Ownership = &pb.Ownership{Unit: "320505-roads", Rejections: 2}
			}),
			owner: roads505, out: pb.ReconcileOutcome_RECONCILE_OUTCOME_REJECTED, action: pb.Action_ACTION_REFER_REVIEW, to: "city", inWhy: "2 times", consult: true},
		{name: "handled elsewhere-owned case waits", self: "d-320505", c: base("d-320505", pb.State_STATE_HANDLED, "320505-roads"),
			owner: cityMunicipal, out: pb.ReconcileOutcome_RECONCILE_OUTCOME_PENDING, to: "d-320505", inWhy: "handled", consult: true},
		{name: "not filed yet waits", self: "d-320505", c: base("d-320505", pb.State_STATE_VERIFIED, ""),
			owner: cityMunicipal, out: pb.ReconcileOutcome_RECONCILE_OUTCOME_PENDING, to: "d-320505", inWhy: "not filed", consult: true},
		{name: "in review stays", self: "city",
			c:     with(base("city", pb.State_STATE_FILED, ""), func(c *pb.Case) { c.Ownership = &pb.Ownership{InReview: true, Disputed: true} }),
			owner: disputed, out: pb.ReconcileOutcome_RECONCILE_OUTCOME_IN_PLACE, to: "city", consult: true},
		{name: "a joint-review decision is not overridden", self: "d-320505",
			c: with(base("d-320505", pb.State_STATE_DISPATCHED, "320505-roads"), func(c *pb.Case) {
				c.Ownership = &pb.Ownership{Unit: "320505-roads", Node: "d-320505", Decided: true, Rule: "joint-review"}
			}),
			owner: cityMunicipal, out: pb.ReconcileOutcome_RECONCILE_OUTCOME_IN_PLACE, to: "d-320505"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			asked := false
			p := Planner{Self: tc.self, Topology: topo, Owners: ownersFunc(func(*pb.Case) *pb.Ownership { asked = true; return tc.owner })}
			d, ok := p.Plan(tc.c)
			if !ok {
				t.Fatal("case not considered")
			}
			if d.Outcome != tc.out {
				t.Fatalf("outcome %v, want %v (reason %q)", d.Outcome, tc.out, d.Record.GetReason())
			}
			if tc.consult && !asked {
				t.Fatal("the catalogue was not asked")
			}
			if !tc.consult && asked {
				t.Fatal("the catalogue was asked for a decided case")
			}
			if got := d.Action.GetAction(); got != tc.action {
				t.Fatalf("action %v, want %v", got, tc.action)
			}
			if d.Action != nil {
				if d.Action.Unit != tc.unit {
					t.Fatalf("unit %q, want %q", d.Action.Unit, tc.unit)
				}
				if d.Action.CaseId != tc.c.Id || d.Action.Actor != Actor || d.Action.ExpectedVersion != tc.c.Version || d.Action.Note == "" {
					t.Fatalf("action not addressed to the case: %+v", d.Action)
				}
				if d.Record.Action != tc.action {
					t.Fatalf("record action %v", d.Record.Action)
				}
			}
			if d.Record.ToNode != tc.to || d.Record.FromNode != tc.self || d.Record.CaseId != tc.c.Id || d.Record.ClassCode != "0401" {
				t.Fatalf("record %+v", d.Record)
			}
			if tc.inWhy != "" && !strings.Contains(d.Record.Reason, tc.inWhy) {
				t.Fatalf("reason %q does not say %q", d.Record.Reason, tc.inWhy)
			}
		})
	}
}

func TestPlanIgnores(t *testing.T) {
	p := Planner{Self: "d-320505", Topology: sampleTopology(t), Owners: fixedOwners{owner("city-municipal", "city", pb.Tier_TIER_CITY)}}
	for _, c := range []*pb.Case{
		{Id: "1", Holder: "d-320505", State: pb.State_STATE_CLOSED},
		{Id: "2", Holder: "d-320505", State: pb.State_STATE_VOIDED},
		{Id: "3", Holder: "d-320505", State: pb.State_STATE_NOT_FILED},
		{Id: "4", Holder: "city", State: pb.State_STATE_FILED}, // a mirror
	} {
		if _, ok := p.Plan(c); ok {
			t.Errorf("case %s (%v held by %s) was considered", c.Id, c.State, c.Holder)
		}
	}
}

func TestPlanAtTheRootWithAnUnknownOwnerNodeWaits(t *testing.T) {
	p := Planner{Self: "city", Topology: sampleTopology(t), Owners: fixedOwners{owner("x-unit", "nowhere", pb.Tier_TIER_DISTRICT)}}
	d, ok := p.Plan(&pb.Case{Id: "1", Holder: "city", State: pb.State_STATE_FILED})
	if !ok || d.Outcome != pb.ReconcileOutcome_RECONCILE_OUTCOME_PENDING || d.Action != nil {
		t.Fatalf("got %v %v %+v", ok, d.Outcome, d.Action)
	}
}

type ownersFunc func(*pb.Case) *pb.Ownership

func (f ownersFunc) OwnerOf(c *pb.Case) *pb.Ownership { return f(c) }

// A case a reconciler handed up is followed even when the overdue sweeper
// supervised it meanwhile; one a person handed up, or one acted on since,
// is not.
func TestHandedHere(t *testing.T) {
	up := &pb.HistoryEntry{Action: pb.Action_ACTION_TRANSFER_UP, Actor: Actor}
	supervise := &pb.HistoryEntry{Action: pb.Action_ACTION_SUPERVISE, Actor: "system"}
	for _, tc := range []struct {
		name string
		h    []*pb.HistoryEntry
		want bool
	}{
		{"handed up", []*pb.HistoryEntry{{Action: pb.Action_ACTION_REPORT}, up}, true},
		{"handed up, then supervised twice", []*pb.HistoryEntry{up, supervise, supervise}, true},
		{"handed up by a person", []*pb.HistoryEntry{{Action: pb.Action_ACTION_TRANSFER_UP, Actor: "lead-1"}}, false},
		{"handed up, then filed again", []*pb.HistoryEntry{up, {Action: pb.Action_ACTION_APPROVE_RETURN, Actor: "lead-1"}}, false},
		{"no history", nil, false},
	} {
		if got := handedHere(&pb.Case{History: tc.h}); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestPlanTable plans a case in every open state for every owner position
// at a district and checks the plan is the table's cell, and that the
// cell's action is one the workflow takes from that state (so the state
// machine never refuses a planned move for the plan's own sake: a
// reassignment to the unit the case already has, an action from the wrong
// state). Every cell of the table is exercised.
func TestPlanTable(t *testing.T) {
	topo := sampleTopology(t)
	const self = "d-320505"
	roads := owner("320505-roads", self, pb.Tier_TIER_DISTRICT)
	squad := owner("320505001-squad", "s-320505001", pb.Tier_TIER_STREET)
	city := owner("city-municipal", "city", pb.Tier_TIER_CITY)
	type setup struct {
		owner *pb.Ownership
		unit  string
		own   *pb.Ownership // the case's ownership before
	}
	setups := [numPositions]setup{
		InReview:      {owner: roads, unit: "320505-roads", own: &pb.Ownership{InReview: true, Disputed: true}},
		Disputed:      {owner: &pb.Ownership{Disputed: true, Dispute: "two rules"}, unit: "320505-roads"},
		ReturnedTwice: {owner: roads, unit: "320505-roads", own: &pb.Ownership{Unit: "320505-roads", Rejections: 2}},
		HereSame:      {owner: roads, unit: "320505-roads"},
		HereOther:     {owner: roads, unit: "320505-old-construction"},
		BelowSame:     {owner: squad, unit: "320505001-squad"},
		BelowOther:    {owner: squad, unit: "320505-roads"},
		Above:         {owner: city, unit: "320505-roads"},
		Unknown:       {owner: owner("x-unit", "nowhere", pb.Tier_TIER_DISTRICT), unit: "320505-roads"},
	}
	states := []pb.State{pb.State_STATE_REPORTED, pb.State_STATE_VERIFIED, pb.State_STATE_FILED, pb.State_STATE_DISPATCHED,
		pb.State_STATE_ACCEPTED, pb.State_STATE_RETURN_REQUESTED, pb.State_STATE_HANDLED, pb.State_STATE_CHECKED, pb.State_STATE_SUSPENDED}
	now := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC).UnixMilli()
	cells := map[[2]int]bool{}
	for pos := range numPositions {
		for _, state := range states {
			su := setups[pos]
			stage, _ := StageOf(state)
			c := &pb.Case{Id: "320505-20200101-000001", Holder: self, HolderEpoch: 1, Version: 3, State: state,
				OwnerUnit: su.unit, Ownership: su.own, Kind: pb.Kind_KIND_EVENT, MajorCode: "05", MinorCode: "01",
				ReportedAt: timestamppb.New(time.UnixMilli(now - 3600_000)), Source: pb.Source_SOURCE_INSPECTOR}
			switch state {
			case pb.State_STATE_RETURN_REQUESTED:
				c.Pending = &pb.Pending{Action: pb.Action_ACTION_REQUEST_RETURN, Reason: "not ours", FromState: pb.State_STATE_ACCEPTED}
			case pb.State_STATE_SUSPENDED:
				c.SuspendedFrom = pb.State_STATE_ACCEPTED
			}
			name := fmt.Sprintf("%s/%s", pos, state)
			p := Planner{Self: self, Topology: topo, Owners: fixedOwners{su.owner}}
			got := p.Position(c, su.owner, stage)
			if pos == ReturnedTwice && (stage < Filed || stage > ReturnRequested) {
				// Returned twice counts only in an open stage.
				if got == ReturnedTwice {
					t.Errorf("%s: position %s", name, got)
				}
				continue
			}
			if got != pos {
				t.Errorf("%s: position %s", name, got)
				continue
			}
			cells[[2]int{int(pos), int(stage)}] = true
			d, ok := p.Plan(c)
			cell := Table[pos][stage]
			if !ok || d.Outcome != cell.Outcome || d.Action.GetAction() != cell.Action {
				t.Errorf("%s: planned %v %v, table says %v %v", name, d.Outcome, d.Action.GetAction(), cell.Outcome, cell.Action)
				continue
			}
			if d.Record.GetReason() == "" && d.Outcome != pb.ReconcileOutcome_RECONCILE_OUTCOME_IN_PLACE {
				t.Errorf("%s: %v without a reason", name, d.Outcome)
			}
			if d.Action == nil {
				continue
			}
			a := d.Action
			step := workflow.Step{Action: a.Action, Actor: a.Actor, Role: a.Role, Note: a.Note, Unit: a.Unit, UnitTier: a.UnitTier,
				DeadlineUnixMs: now + 3600_000, AtUnixMs: now, ExpectedVersion: a.ExpectedVersion}
			if err := workflow.Apply(proto.Clone(c).(*pb.Case), step); err != nil {
				t.Errorf("%s: the workflow refuses the planned %s: %v", name, a.Action, err)
			}
			wantTo := map[pb.Action]string{pb.Action_ACTION_REFER_REVIEW: "city", pb.Action_ACTION_TRANSFER_UP: su.owner.GetNode(),
				pb.Action_ACTION_HAND_DOWN: su.owner.GetNode(), pb.Action_ACTION_DISPATCH: su.owner.GetNode(),
				pb.Action_ACTION_REASSIGN: su.owner.GetNode(), pb.Action_ACTION_DENY_RETURN: self}[a.Action]
			if d.Record.ToNode != wantTo {
				t.Errorf("%s: record goes to %q, want %q", name, d.Record.ToNode, wantTo)
			}
		}
	}
	if len(cells) != int(numPositions)*int(numStages)-2 { // returned twice × unfiled, working
		t.Errorf("%d cells exercised, want %d", len(cells), int(numPositions)*int(numStages)-2)
	}
}
