package protocol

import (
	"fmt"
	"slices"
	"testing"

	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// tree: city with two districts; d1 has streets s1 (communities c1, c2) and s2.
func tree(t *testing.T) *topology.Topology {
	t.Helper()
	port := 7300
	n := func(name string, tier topology.Tier, j, parent string) topology.Node {
		port++
		return topology.Node{Name: name, Tier: tier, Jurisdiction: j, Parent: parent, Replicas: []string{fmt.Sprintf("127.0.0.1:%d", port)}}
	}
	topo, err := topology.New([]topology.Node{
		n("city", topology.City, "320500", ""),
		n("d1", topology.District, "320505", "city"),
		n("d2", topology.District, "320506", "city"),
		n("s1", topology.Street, "320505001", "d1"),
		n("s2", topology.Street, "320505002", "d1"),
		n("c1", topology.Community, "320505001001", "s1"),
		n("c2", topology.Community, "320505001002", "s1"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func TestNextHopsReachEveryRecipientOnce(t *testing.T) {
	topo := tree(t)
	for _, tc := range []struct {
		name             string
		holder, reporter string
		want             []string // recipients
	}{
		{"held where reported, a community", "c1", "320505001001", []string{"c1", "s1", "d1", "city"}},
		{"handed down from the city", "c2", "320500", []string{"c2", "s1", "d1", "city"}},
		{"handed up to the city, reported in a community", "city", "320505001002", []string{"city", "c2"}},
		{"held by a district, reported in the other's community", "d2", "320505001001", []string{"d2", "city", "c1"}},
		{"reporter outside the topology", "s2", "999999", []string{"s2", "d1", "city"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &pb.Case{Holder: tc.holder, ReportedAtNode: tc.reporter}
			if got := Recipients(topo, c); !sameSet(got, tc.want) {
				t.Fatalf("recipients %v, want %v", got, tc.want)
			}
			// Flood from every possible origin (the holder makes versions;
			// a former holder's last version starts where it was) and
			// count copies per node: every recipient exactly once.
			for _, origin := range []string{tc.holder, "c1", "city"} {
				copies := map[string]int{}
				var walk func(node, from string)
				walk = func(node, from string) {
					copies[node]++
					for _, hop := range NextHops(topo, node, from, c) {
						if hop == from {
							t.Fatalf("%s sends back to %s", node, from)
						}
						walk(hop, node)
					}
				}
				walk(origin, "")
				for _, r := range tc.want {
					if copies[r] != 1 {
						t.Fatalf("from %s: recipient %s got %d copies (%v)", origin, r, copies[r], copies)
					}
				}
				for n, k := range copies {
					if k != 1 {
						t.Fatalf("from %s: %s got %d copies", origin, n, k)
					}
				}
			}
		})
	}
}

func TestNextHopsOrderIsParentFirst(t *testing.T) {
	topo := tree(t)
	c := &pb.Case{Holder: "c2", ReportedAtNode: "320505001001"}
	if got := NextHops(topo, "s1", "", c); !slices.Equal(got, []string{"d1", "c1", "c2"}) {
		t.Fatalf("hops %v, want parent first then children by jurisdiction", got)
	}
}

func TestNewer(t *testing.T) {
	v := func(epoch, version uint64) *pb.Case { return &pb.Case{HolderEpoch: epoch, Version: version} }
	for _, tc := range []struct {
		a, b *pb.Case
		want bool
	}{
		{v(1, 1), nil, true},
		{v(1, 2), v(1, 1), true},
		{v(1, 1), v(1, 1), false},
		{v(1, 1), v(1, 2), false},
		{v(2, 1), v(1, 9), true}, // a later hand-off wins whatever the version
		{v(1, 9), v(2, 1), false},
	} {
		if got := Newer(tc.a, tc.b); got != tc.want {
			t.Errorf("Newer(%v, %v) = %v", tc.a, tc.b, got)
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
