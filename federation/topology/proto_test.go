package topology

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"
)

func TestProtoRoundTrip(t *testing.T) {
	topo := loadExample(t)
	p := topo.Proto("d-320505")
	back, self, err := FromProto(p)
	if err != nil || self != "d-320505" {
		t.Fatalf("FromProto: %v, self %q", err, self)
	}
	if !proto.Equal(back.Proto("d-320505"), p) {
		t.Fatal("topology changed in a proto round trip")
	}
	p.Self = "nowhere"
	if _, _, err := FromProto(p); err == nil {
		t.Fatal("a self outside the topology was accepted")
	}
}

func TestLookupsByJurisdictionAndNeighbours(t *testing.T) {
	topo := loadExample(t)
	for j, want := range map[string]string{"320500": "city", "320505": "d-320505", "320505001": "s-320505001", "320505001002": "c-320505001002"} {
		if n, ok := topo.NodeByJurisdiction(j); !ok || n.Name != want {
			t.Errorf("NodeByJurisdiction(%s) = %q %v, want %s", j, n.Name, ok, want)
		}
		if n, ok := topo.NameByJurisdiction(j); !ok || n != want {
			t.Errorf("NameByJurisdiction(%s) = %q %v, want %s", j, n, ok, want)
		}
	}
	for _, j := range []string{"3205", "320599", "", "320505001009"} {
		if _, ok := topo.NameByJurisdiction(j); ok {
			t.Errorf("NameByJurisdiction(%q) found a node", j)
		}
	}
	if got := topo.Neighbours("s-320505001"); !slices.Equal(got, []string{"d-320505", "c-320505001001", "c-320505001002"}) {
		t.Errorf("neighbours of s-320505001: %v", got)
	}
	if !topo.IsNeighbour("city", "d-320505") || !topo.IsNeighbour("d-320505", "city") || topo.IsNeighbour("city", "s-320505001") || topo.IsNeighbour("x", "city") {
		t.Error("IsNeighbour is wrong")
	}
	if topo.ParentOf("c-320505001001") != "s-320505001" || topo.ParentOf("city") != "" || !topo.Has("city") || topo.Has("x") {
		t.Error("ParentOf/Has are wrong")
	}
}
