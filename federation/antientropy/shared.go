package antientropy

import (
	"fmt"
	"slices"

	"github.com/cityhub/cityhub/federation/protocol"
	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Copies lists the nodes that keep a copy of a version of a case held by
// holder and reported at the node of jurisdiction reportedAt: its
// recipients (the holder, every ancestor of the holder, the reporting node;
// protocol.Recipients) and every node on the tree path between the holder
// and the reporting node, which the version passes through. A case without
// a holder is node-local (reported outside a federation): nobody else keeps
// it. Pure: it depends on the topology alone.
func Copies(t *topology.Topology, holder, reportedAt string) []string {
	if holder == "" {
		return nil
	}
	out := protocol.Recipients(t, &pb.Case{Holder: holder, ReportedAtNode: reportedAt})
	r, ok := t.NameByJurisdiction(reportedAt)
	if !ok || !t.Has(holder) {
		return out
	}
	for cur := holder; cur != r; {
		next, _, err := t.Route(cur, r)
		if err != nil {
			break
		}
		if !slices.Contains(out, next) {
			out = append(out, next)
		}
		cur = next
	}
	return out
}

// Shared reports whether a version held by holder and reported at
// reportedAt belongs to both a and b: whether the link between them (when
// they are neighbours) must carry it.
func Shared(t *topology.Topology, a, b, holder, reportedAt string) bool {
	c := Copies(t, holder, reportedAt)
	return slices.Contains(c, a) && slices.Contains(c, b)
}

// link is one parent–child link seen from one of its ends, with what makes
// the shared test two map lookups per case: the set of Copies is closed
// upwards (it is the holder's and the reporting node's ancestors-or-self),
// so the parent is in it whenever the child is, and the child is in it
// exactly when the holder or the reporting node lies in the child's
// subtree.
type link struct {
	self, peer    string
	parent, child string
	topo          *topology.Topology
	names         map[string]bool // nodes of the child's subtree
	codes         map[string]bool // their jurisdictions
}

func newLink(t *topology.Topology, self, peer string) (*link, error) {
	if !t.IsNeighbour(self, peer) {
		return nil, fmt.Errorf("%q is neither the parent nor a child of %q", peer, self)
	}
	l := &link{self: self, peer: peer, parent: self, child: peer, topo: t, names: map[string]bool{}, codes: map[string]bool{}}
	if t.ParentOf(self) == peer {
		l.parent, l.child = peer, self
	}
	var walk func(string)
	walk = func(name string) {
		n, _ := t.Node(name)
		l.names[name], l.codes[n.Jurisdiction] = true, true
		for _, c := range t.Children(name) {
			walk(c.Name)
		}
	}
	walk(l.child)
	return l, nil
}

// shares is Shared(parent, child, holder, reportedAt), fast.
func (l *link) shares(holder, reportedAt string) bool {
	if holder == "" || !l.topo.Has(holder) {
		return false
	}
	return l.names[holder] || l.codes[reportedAt]
}

// childSide reports whether node lies on the child's side of the link.
func (l *link) childSide(node string) bool { return l.names[node] }

// keeps reports whether node should keep a copy of a version with this
// holder and reporting node.
func (l *link) keeps(node, holder, reportedAt string) bool {
	return slices.Contains(Copies(l.topo, holder, reportedAt), node)
}
