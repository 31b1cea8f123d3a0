package topology

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
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

func TestUnitDirectory(t *testing.T) {
	topo := loadExample(t)
	dir := topo.UnitDirectory()
	total := 0
	for _, n := range topo.Nodes() {
		total += len(n.Units)
	}
	if len(dir) != total || total == 0 {
		t.Fatalf("directory has %d units, the topology %d", len(dir), total)
	}
	byID := map[string]*pb.CatalogueUnit{}
	for _, u := range dir {
		if _, dup := byID[u.Id]; dup {
			t.Fatalf("unit %s listed twice", u.Id)
		}
		byID[u.Id] = u
	}
	for id, want := range map[string]*pb.CatalogueUnit{
		"320505-sanitation":   {Id: "320505-sanitation", Name: "虎丘区环境卫生管理处", Node: "d-320505", Tier: pb.Tier_TIER_DISTRICT},
		"320505001002-office": {Node: "c-320505001002", Tier: pb.Tier_TIER_COMMUNITY},
	} {
		got := byID[id]
		if got == nil || got.Node != want.Node || got.Tier != want.Tier || (want.Name != "" && got.Name != want.Name) || got.Name == "" {
			t.Errorf("unit %s: %v, want %v", id, got, want)
		}
	}
}
