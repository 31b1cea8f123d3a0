package casegen

import (
	"fmt"
	"strings"

	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// A federated generator (NewFederated) reports at every node of a
// federation and plays the staff of whichever node holds a case: its
// dispatcher sends a case to the unit that owns its class, down the tree
// when that unit is hosted below (a hand-off), or transfers it up (上交)
// with a reason when no unit at or below the holder owns it, or now and
// then because it is beyond the tier's means.

// tierWeights is where reports are made: the city's command centre takes
// most hotline calls and camera alerts, grid workers report in their
// communities.
var tierWeights = map[topology.Tier]int{topology.City: 20, topology.District: 20, topology.Street: 25, topology.Community: 35}

// tierSources weighs the sources (in the order of sources) at each tier.
var tierSources = map[topology.Tier][]int{
	topology.City:      {25, 35, 20, 10, 10}, // hotlines and cameras land at the command centre
	topology.District:  {60, 10, 10, 10, 10},
	topology.Street:    {70, 10, 5, 10, 5},
	topology.Community: {70, 5, 0, 25, 0}, // grid workers (网格员) and residents
}

// target is a unit that handles a class: the unit of a node of the tier
// whose id ends in "-"+suffix (e.g. a district's "-sanitation").
type target struct {
	tier   topology.Tier
	suffix string
	weight int
}

// handlers maps a class's Unit to the units of the federation that handle
// it, by tier. A class missing here is handled by a unit outside the
// federation (非联网单位, e.g. the traffic police): its dispatch stays local.
var handlers = map[string][]target{
	"sanitation": {{topology.Community, "grid", 4}, {topology.Street, "squad", 2}, {topology.District, "sanitation", 4}},
	"enforcement": {{topology.Street, "squad", 5}, {topology.District, "enforcement", 3}, {topology.Community, "grid", 1},
		{topology.City, "umb", 1}},
	"construction": {{topology.District, "enforcement", 2}, {topology.City, "umb", 1}},
	"roads":        {{topology.District, "roads", 3}, {topology.City, "municipal", 1}},
	"water-co":     {{topology.City, "water", 1}},
	"drainage":     {{topology.District, "roads", 2}, {topology.City, "municipal", 1}},
	"lighting":     {{topology.City, "municipal", 3}, {topology.District, "roads", 1}},
	"parks":        {{topology.District, "parks", 3}, {topology.City, "parks", 1}, {topology.Community, "office", 1}},
}

// upPct is the chance (percent) that a tier passes a case up although a
// unit at or below it could take it: beyond its means (超出处置能力).
var upPct = map[topology.Tier]int{topology.District: 3, topology.Street: 6, topology.Community: 10}

var upReasons = map[topology.Tier]string{
	topology.District:  "涉及市属设施，报市级处置 city-owned (市属) facility",
	topology.Street:    "需区级部门处置 needs a district department",
	topology.Community: "超出社区处置能力，上交街道 beyond the community's means",
}

// NewFederated returns a generator for the nodes of topo. Request ids are
// prefix-<n>.
func NewFederated(seed uint64, topo *topology.Topology, prefix string) *Generator {
	g := New(seed, topo.Root().Jurisdiction, prefix)
	g.topo = topo
	return g
}

// ReportAt picks a node, by tier (tierWeights) and then evenly within the
// tier, and makes a report there for a grid under its jurisdiction, from a
// source usual at that tier. It returns the node's name.
func (g *Generator) ReportAt() (string, *pb.ReportCaseRequest) {
	nodes := g.topo.Nodes()
	total := 0
	count := map[topology.Tier]int{}
	for _, n := range nodes {
		count[n.Tier]++
	}
	weight := func(n topology.Node) int { return tierWeights[n.Tier] * 1000 / count[n.Tier] }
	for _, n := range nodes {
		total += weight(n)
	}
	n := pick(g.rng, nodes, total, weight)
	return n.Name, g.ReportIn(n)
}

// ReportIn makes a report at node n: a grid of one of its configured
// communities (or under its jurisdiction when it has none below it).
func (g *Generator) ReportIn(n topology.Node) *pb.ReportCaseRequest {
	w := tierSources[n.Tier]
	total := 0
	for _, x := range w {
		total += x
	}
	s := pick(g.rng, sourceIndexes, total, func(i int) int { return w[i] })
	return g.report(g.gridIn(n), sources[s])
}

var sourceIndexes = []int{0, 1, 2, 3, 4}

// gridIn returns a grid code under n, walking down through its configured
// descendants.
func (g *Generator) gridIn(n topology.Node) string {
	for {
		kids := g.topo.Children(n.Name)
		if len(kids) == 0 {
			break
		}
		n = kids[g.rng.IntN(len(kids))]
	}
	code := n.Jurisdiction
	if n.Tier == topology.City {
		code = code[:4] + fmt.Sprintf("%02d", 5+g.rng.IntN(2))
	}
	if len(code) < 9 {
		code += fmt.Sprintf("%03d", 1+g.rng.IntN(2))
	}
	if len(code) < 12 {
		code += fmt.Sprintf("%03d", 1+g.rng.IntN(2))
	}
	return code + fmt.Sprintf("%03d", 1+g.rng.IntN(20))
}

// unitOf returns the unit of node n whose id ends in "-"+suffix.
func unitOf(n topology.Node, suffix string) (topology.Unit, bool) {
	for _, u := range n.Units {
		if strings.HasSuffix(u.ID, "-"+suffix) {
			return u, true
		}
	}
	return topology.Unit{}, false
}

// candidate is a unit that could take a case, with its node.
type candidate struct {
	node   topology.Node
	unit   topology.Unit
	weight int
}

// owners lists the units that handle class cl for grid, hosted at holder
// or below it on the grid's path (below), and those hosted above it
// (above).
func (g *Generator) owners(holder string, cl Class, grid string) (below, above []candidate, err error) {
	path, err := g.topo.PathTo(grid)
	if err != nil {
		return nil, nil, err
	}
	at := -1
	for i, n := range path {
		if n.Name == holder {
			at = i
		}
	}
	if at < 0 {
		return nil, nil, fmt.Errorf("holder %s is not on the path to %s", holder, grid)
	}
	for i, n := range path {
		for _, t := range handlers[cl.Unit] {
			if t.tier != n.Tier {
				continue
			}
			if u, ok := unitOf(n, t.suffix); ok {
				c := candidate{node: n, unit: u, weight: t.weight}
				if i >= at {
					below = append(below, c)
				} else {
					above = append(above, c)
				}
			}
		}
	}
	return below, above, nil
}

// fedFiled picks what the holder's dispatcher does with a filed case:
// dispatch to an owning unit at or below the holder, or transfer it up.
func (g *Generator) fedFiled(c *pb.Case, cl Class, req *pb.ActRequest) *pb.ActRequest {
	holder, ok := g.topo.Node(c.Holder)
	below, above, err := g.owners(c.Holder, cl, c.GridCode)
	if !ok || err != nil {
		// Not a node of this topology (or a grid off its tree): dispatch
		// locally, as a node alone would.
		req.Action, req.Actor, req.Role = pb.Action_ACTION_DISPATCH, "disp-1", pb.Role_ROLE_DISPATCHER
		req.Unit, req.UnitTier, req.TimeLimitMinutes = cl.Unit, pb.Tier_TIER_DISTRICT, cl.LimitMinutes
		return req
	}
	pct := func(p int) bool { return g.rng.IntN(100) < p }
	up := func(reason string) *pb.ActRequest {
		req.Action, req.Actor, req.Role, req.Note = pb.Action_ACTION_TRANSFER_UP, "lead-1", pb.Role_ROLE_SHIFT_LEADER, reason
		return req
	}
	if holder.Parent != "" && len(below) > 0 && pct(upPct[holder.Tier]) {
		return up(upReasons[holder.Tier])
	}
	req.Action, req.Actor, req.Role = pb.Action_ACTION_DISPATCH, "disp-1", pb.Role_ROLE_DISPATCHER
	req.TimeLimitMinutes = cl.LimitMinutes
	switch {
	case len(below) > 0:
		total := 0
		for _, c := range below {
			total += c.weight
		}
		req.Unit = pick(g.rng, below, total, func(c candidate) int { return c.weight }).unit.ID
	case len(above) > 0 && holder.Parent != "":
		return up(fmt.Sprintf("属%s职责，上交 owned by %s", above[len(above)-1].unit.Name, above[len(above)-1].unit.ID))
	default:
		// A unit outside the federation (非联网单位): handled here.
		req.Unit, req.UnitTier = cl.Unit, pb.Tier(holder.Tier)
	}
	return req
}

// fedDispatched is the holder's choice for a case dispatched to one of its
// units: now and then a community or street passes it up instead of
// accepting it. It fills req and returns true, or returns false to leave
// the choice to Next.
func (g *Generator) fedDispatched(c *pb.Case, req *pb.ActRequest) bool {
	holder, ok := g.topo.Node(c.Holder)
	if !ok || holder.Parent == "" || c.ReworkCount > 0 || (holder.Tier != topology.Community && holder.Tier != topology.Street) {
		return false
	}
	if g.rng.IntN(100) >= upPct[holder.Tier] {
		return false
	}
	req.Action, req.Actor, req.Role, req.Note = pb.Action_ACTION_TRANSFER_UP, "lead-1", pb.Role_ROLE_SHIFT_LEADER, upReasons[holder.Tier]
	return true
}
