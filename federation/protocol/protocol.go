// Package protocol is the deterministic part of the federation's delivery
// protocol: which neighbours a version of a case must travel to, and whether
// a received version replaces the copy a node has. The state machine calls
// it inside Apply, so it reads no clock, randomness or environment; every
// replica of a group routes the same entry the same way.
//
// A version of a case must reach its holder, every ancestor of the holder
// and the node where the case was first reported (it calls the citizen
// back). The tree has one path between any two nodes, so each node sends a
// version to the neighbours on whose side a recipient lies, except the one
// it came from: every recipient, and every node on the way (which keeps a
// mirror), gets exactly one copy.
package protocol

import (
	"slices"

	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Recipients lists the nodes that must see c: its holder, the holder's
// ancestors and the node where it was reported (when the topology knows
// them).
func Recipients(t *topology.Topology, c *pb.Case) []string {
	out := make([]string, 0, 5)
	if t.Has(c.GetHolder()) {
		for n := c.GetHolder(); n != ""; n = t.ParentOf(n) {
			out = append(out, n)
		}
	}
	if r, ok := t.NameByJurisdiction(c.GetReportedAtNode()); ok && !slices.Contains(out, r) {
		out = append(out, r)
	}
	return out
}

// NextHops returns the neighbours of self that a version of c must be sent
// to, given that it arrived from neighbour `from` ("" when it was made at
// self). The order is that of Topology.Neighbours: parent first, then
// children by jurisdiction.
func NextHops(t *topology.Topology, self, from string, c *pb.Case) []string {
	var hops []string
	for _, r := range Recipients(t, c) {
		if r == self {
			continue
		}
		next, _, err := t.Route(self, r)
		if err != nil || next == "" || next == from || slices.Contains(hops, next) {
			continue
		}
		hops = append(hops, next)
	}
	order := t.Neighbours(self)
	slices.SortFunc(hops, func(a, b string) int { return slices.Index(order, a) - slices.Index(order, b) })
	return hops
}

// Newer reports whether version a of a case supersedes b: a later holder
// epoch, or the same epoch and a higher version. Duplicates and reordered
// copies are therefore never applied twice or backwards.
func Newer(a, b *pb.Case) bool {
	if b == nil {
		return true
	}
	if a.GetHolderEpoch() != b.GetHolderEpoch() {
		return a.GetHolderEpoch() > b.GetHolderEpoch()
	}
	return a.GetVersion() > b.GetVersion()
}
