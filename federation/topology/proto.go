package topology

import (
	"fmt"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Proto returns the tree as the state machine stores it, seen from node self.
func (t *Topology) Proto(self string) *pb.FederationTopology {
	out := &pb.FederationTopology{Self: self}
	for _, n := range t.Nodes() {
		pn := &pb.FederationNode{
			Name: n.Name, Tier: pb.Tier(n.Tier), Jurisdiction: n.Jurisdiction,
			Parent: n.Parent, Replicas: n.Replicas,
		}
		for _, u := range n.Units {
			pn.Units = append(pn.Units, u.ID)
		}
		out.Nodes = append(out.Nodes, pn)
	}
	return out
}

// FromProto rebuilds a validated Topology from its stored form and returns
// it with the name of the node it is seen from, which must be one of its
// nodes.
func FromProto(p *pb.FederationTopology) (*Topology, string, error) {
	nodes := make([]Node, 0, len(p.GetNodes()))
	for _, pn := range p.GetNodes() {
		n := Node{Name: pn.Name, Tier: Tier(pn.Tier), Jurisdiction: pn.Jurisdiction, Parent: pn.Parent, Replicas: pn.Replicas}
		for _, u := range pn.Units {
			n.Units = append(n.Units, Unit{ID: u})
		}
		nodes = append(nodes, n)
	}
	t, err := New(nodes)
	if err != nil {
		return nil, "", err
	}
	if _, ok := t.nodes[p.GetSelf()]; !ok {
		return nil, "", fmt.Errorf("topology: self %q is not one of its nodes", p.GetSelf())
	}
	return t, p.GetSelf(), nil
}

// NodeByJurisdiction returns the node whose jurisdiction code is j (a city
// by its 6-digit code as well as by its 4-digit prefix).
func (t *Topology) NodeByJurisdiction(j string) (Node, bool) {
	if t.root != "" && t.nodes[t.root].Jurisdiction == j {
		return t.nodes[t.root].clone(), true
	}
	name, ok := t.byCode[j]
	if !ok || t.nodes[name].Jurisdiction != j {
		return Node{}, false
	}
	return t.nodes[name].clone(), true
}

// Neighbours returns the parent (if any) followed by the children of the
// named node: the nodes it has links with.
func (t *Topology) Neighbours(name string) []string {
	n, ok := t.nodes[name]
	if !ok {
		return nil
	}
	var out []string
	if n.Parent != "" {
		out = append(out, n.Parent)
	}
	return append(out, t.children[name]...)
}

// IsNeighbour reports whether a and b are parent and child (either way).
func (t *Topology) IsNeighbour(a, b string) bool {
	na, okA := t.nodes[a]
	nb, okB := t.nodes[b]
	return okA && okB && (na.Parent == b || nb.Parent == a)
}

// Has reports whether the topology has a node of that name.
func (t *Topology) Has(name string) bool {
	_, ok := t.nodes[name]
	return ok
}

// ParentOf returns the name of the node's parent ("" for the city or an
// unknown name).
func (t *Topology) ParentOf(name string) string { return t.nodes[name].Parent }

// NameByJurisdiction is NodeByJurisdiction without copying the node: the
// name of the node whose jurisdiction code is j.
func (t *Topology) NameByJurisdiction(j string) (string, bool) {
	if t.root != "" && t.nodes[t.root].Jurisdiction == j {
		return t.root, true
	}
	name, ok := t.byCode[j]
	if !ok || t.nodes[name].Jurisdiction != j {
		return "", false
	}
	return name, true
}

// UnitDirectory lists every unit of the federation with its name, the node
// hosting it and that node's tier, in the topology's node order: the
// directory the API serves with the class catalogue (GetCatalogue), so a
// console shows names and offers the units a case can be dispatched to.
func (t *Topology) UnitDirectory() []*pb.CatalogueUnit {
	var out []*pb.CatalogueUnit
	for _, n := range t.Nodes() {
		for _, u := range n.Units {
			out = append(out, &pb.CatalogueUnit{Id: u.ID, Name: u.Name, Node: n.Name, Tier: pb.Tier(u.Tier)})
		}
	}
	return out
}
