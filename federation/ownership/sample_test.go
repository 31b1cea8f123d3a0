package ownership

import (
	"bytes"
	"encoding/csv"
	"slices"
	"strings"
	"testing"
	"time"

	cityhub "github.com/cityhub/cityhub"
	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

func sampleTopology(t testing.TB) *topology.Topology {
	t.Helper()
	topo, err := topology.Load(cityhub.SampleFile("federation.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func sampleCatalogue(t testing.TB) *Catalogue {
	t.Helper()
	c, err := Sample(sampleTopology(t))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func month(y int, m time.Month) time.Time {
	return time.Date(y, m, 15, 10, 0, 0, 0, time.FixedZone("CST", 8*3600))
}

func comp(major, minor, grid, id string) Query {
	return Query{Kind: pb.Kind_KIND_COMPONENT, Major: major, Minor: minor, Grid: grid, ComponentID: id, At: month(2026, time.March)}
}

func event(major, minor, grid string) Query {
	return Query{Kind: pb.Kind_KIND_EVENT, Major: major, Minor: minor, Grid: grid, At: month(2026, time.March)}
}

func at(q Query, y int, m time.Month) Query {
	q.At = month(y, m)
	return q
}

// The whole sample catalogue parses against the sample topology.
func TestSampleParses(t *testing.T) {
	c := sampleCatalogue(t)
	if c.Version() != "2026.1" || !strings.Contains(c.Name(), "责任清单") {
		t.Errorf("version %q name %q", c.Version(), c.Name())
	}
	rules, comps := c.Len()
	if rules < 25 || comps < 300 {
		t.Errorf("%d rules, %d components: want at least 25 and 300", rules, comps)
	}
	got, ok := c.Component("3205050101000001")
	want := Component{ID: "3205050101000001", Major: "01", Minor: "01", Name: "狮山路上水井盖001-1",
		Grid: "320505001001001", Supervising: "city-umb", Owning: "city-water", Maintaining: "city-water", Line: 2}
	if !ok || got != want {
		t.Errorf("Component(3205050101000001) = %+v, %v; want %+v", got, ok, want)
	}
	if _, ok := c.Component("3205050101999999"); ok {
		t.Error("an unregistered id is in the register")
	}
	if c.GridSet("no-such-set") != nil {
		t.Error("GridSet of an unknown name is not nil")
	}
}

// readGrids returns grids.csv as records keyed by column name.
func readGrids(t *testing.T) []map[string]string {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(cityhub.SampleFile("grids.csv"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	header := []string{"grid_code", "name", "community", "street", "district", "road", "road_class"}
	if !slices.Equal(recs[0], header) {
		t.Fatalf("grids.csv header %v, want %v", recs[0], header)
	}
	var out []map[string]string
	for _, rec := range recs[1:] {
		m := map[string]string{}
		for i, h := range header {
			m[h] = rec[i]
		}
		out = append(out, m)
	}
	return out
}

// The trunk-roads grid set is exactly the grids.csv grids marked 主干道.
func TestTrunkRoadsAreGridsCSVTrunkRoads(t *testing.T) {
	var trunk []string
	for _, g := range readGrids(t) {
		if g["road_class"] == "主干道" {
			trunk = append(trunk, g["grid_code"])
		}
	}
	slices.Sort(trunk)
	if got := sampleCatalogue(t).GridSet("trunk-roads"); len(trunk) == 0 || !slices.Equal(got, trunk) {
		t.Errorf("grid set trunk-roads\n %v\ngrids.csv 主干道\n %v", got, trunk)
	}
}

// grids.csv: every grid lies in a configured community, 8 to 12 of them per
// community, named after the community, street and district nodes' units;
// every registered component stands on one of these grids.
func TestGridsCSVMatchesTopology(t *testing.T) {
	topo := sampleTopology(t)
	perCommunity := map[string]int{}
	grids := map[string]bool{}
	classes := map[string]bool{}
	for _, g := range readGrids(t) {
		code := g["grid_code"]
		if grids[code] {
			t.Errorf("grid %s listed twice", code)
		}
		grids[code] = true
		classes[g["road_class"]] = true
		path, err := topo.PathTo(code)
		if err != nil || len(path) != 4 {
			t.Errorf("grid %s: path %v, %v; want city to community", code, len(path), err)
			continue
		}
		perCommunity[path[3].Name]++
		for i, col := range []string{"district", "street", "community"} {
			if n := path[i+1]; !strings.HasPrefix(n.Units[0].Name, g[col]) {
				t.Errorf("grid %s: %s %q, node %s's first unit is %q", code, col, g[col], n.Name, n.Units[0].Name)
			}
		}
		if g["name"] == "" || g["road"] == "" {
			t.Errorf("grid %s: empty name or road", code)
		}
	}
	for _, n := range topo.Nodes() {
		if n.Tier == topology.Community && (perCommunity[n.Name] < 8 || perCommunity[n.Name] > 12) {
			t.Errorf("community %s has %d grids, want 8..12", n.Name, perCommunity[n.Name])
		}
	}
	for _, rc := range []string{"主干道", "次干道", "支路", "街巷"} {
		if !classes[rc] {
			t.Errorf("no grid of road class %s", rc)
		}
	}
	c := sampleCatalogue(t)
	for id, comp := range c.components {
		if !grids[comp.Grid] {
			t.Errorf("component %s (line %d) stands on grid %s, not in grids.csv", id, comp.Line, comp.Grid)
		}
	}
}

type want struct {
	unit, node, rule string
	tier             pb.Tier
}

func check(t *testing.T, c *Catalogue, q Query, w want) {
	t.Helper()
	o := c.Resolve(q)
	if o.Disputed || o.Unit != w.unit || o.Node != w.node || o.Rule != w.rule || o.Tier != w.tier {
		t.Errorf("Resolve(%+v)\n got unit %q node %q rule %q tier %v disputed %v (%s)\nwant unit %q node %q rule %q tier %v",
			q, o.Unit, o.Node, o.Rule, o.Tier, o.Disputed, o.Explanation, w.unit, w.node, w.rule, w.tier)
	}
	if o.CatalogueVersion != c.Version() {
		t.Errorf("catalogue version %q, want %q", o.CatalogueVersion, c.Version())
	}
	if !strings.Contains(o.Explanation, "rule "+w.rule+" ") || !strings.Contains(o.Explanation, w.unit) {
		t.Errorf("explanation %q does not name rule %s and unit %s", o.Explanation, w.rule, w.unit)
	}
}

var (
	cityT      = pb.Tier_TIER_CITY
	districtT  = pb.Tier_TIER_DISTRICT
	streetT    = pb.Tier_TIER_STREET
	communityT = pb.Tier_TIER_COMMUNITY
)

// Hand-checked answers of the sample city (see testdata/city/README.md).
func TestSampleResolve(t *testing.T) {
	c := sampleCatalogue(t)
	cases := []struct {
		name string
		q    Query
		want want
	}{
		// Grid set vs prefix: 狮山路 (主干道) is city-owned, a 街巷 is the district's.
		{"trunk road collapse", event("04", "01", "320505001001002"), want{"city-municipal", "city", "trunk-road-collapse", cityT}},
		{"trunk road collapse 吴中", event("04", "01", "320506002001003"), want{"city-municipal", "city", "trunk-road-collapse", cityT}},
		{"lane collapse 虎丘", event("04", "01", "320505001001007"), want{"320505-roads", "d-320505", "lane-collapse-320505", districtT}},
		{"lane collapse 吴中", event("04", "01", "320506002001005"), want{"320506-roads", "d-320506", "lane-collapse-320506", districtT}},
		{"lane collapse off the grid list", event("04", "01", "320505002002019"), want{"320505-roads", "d-320505", "lane-collapse-320505", districtT}},

		// The register: owning for water covers, maintaining for the rest.
		{"registered water cover", comp("01", "01", "320505001001001", "3205050101000001"), want{"city-water", "city", "water-covers-register", cityT}},
		{"unregistered water cover", comp("01", "01", "320505001001001", "3205050101999999"), want{"city-water", "city", "water-covers", cityT}},
		{"water cover without id", comp("01", "01", "320506002002008", ""), want{"city-water", "city", "water-covers", cityT}},
		{"sewage cover handed down", comp("01", "02", "320505001001001", "3205050102000001"), want{"320505-roads", "d-320505", "registered-components", districtT}},
		{"storm cover city-maintained", comp("01", "03", "320505001001001", "3205050103000001"), want{"city-municipal", "city", "registered-components", cityT}},
		{"unregistered storm cover falls through", comp("01", "03", "320505001001001", "3205050103999999"), want{"320505-roads", "d-320505", "sewer-covers-320505", districtT}},
		{"unregistered sewage cover 吴中", comp("01", "02", "320506001002007", ""), want{"320506-roads", "d-320506", "sewer-covers-320506", districtT}},
		{"register entry of another class does not count", comp("01", "03", "320505001001001", "3205050102000001"), want{"320505-roads", "d-320505", "sewer-covers-320505", districtT}},
		{"registered power cover", comp("01", "05", "320505001001001", "3205050105000001"), want{"city-power", "city", "registered-components", cityT}},
		{"17-digit EV charging post", comp("01", "201", "320506001001002", "32050601201000001"), want{"city-power", "city", "registered-components", cityT}},

		// Priority override: a lamp handed down to 吴中区 beats the city rule.
		{"unregistered street lamp", comp("01", "18", "320506001001004", ""), want{"city-municipal", "city", "street-lamps", cityT}},
		{"registered city lamp", comp("01", "18", "320505001001001", "3205050118000001"), want{"city-municipal", "city", "registered-components", cityT}},
		{"lamp maintained by the district", comp("01", "18", "320506001001004", "3205060118000008"), want{"320506-roads", "d-320506", "registered-components", districtT}},
		{"street tree on a trunk road", comp("04", "02", "320506001002001", ""), want{"city-parks", "city", "street-trees-trunk", cityT}},
		{"street tree elsewhere", comp("04", "02", "320506001002009", ""), want{"320506-parks", "d-320506", "street-trees-320506", districtT}},

		// Ownerless covers: monthly rotation, 虎丘 from 2026-01 over 3 units.
		{"ownerless 2026-01", at(comp("01", "13", "320505002001007", ""), 2026, time.January), want{"320505-roads", "d-320505", "ownerless-covers-320505", districtT}},
		{"ownerless 2026-02", at(comp("01", "13", "320505002001007", ""), 2026, time.February), want{"320505-housing", "d-320505", "ownerless-covers-320505", districtT}},
		{"unknown-owner 2026-03", at(comp("01", "14", "320505002001007", ""), 2026, time.March), want{"320505-parks", "d-320505", "ownerless-covers-320505", districtT}},
		{"ownerless 2026-04 wraps", at(comp("01", "13", "320505002001007", ""), 2026, time.April), want{"320505-roads", "d-320505", "ownerless-covers-320505", districtT}},
		{"ownerless 2026-12", at(comp("01", "13", "320505002001007", ""), 2026, time.December), want{"320505-parks", "d-320505", "ownerless-covers-320505", districtT}},
		{"ownerless 2027-01 year wrap", at(comp("01", "13", "320505002001007", ""), 2027, time.January), want{"320505-roads", "d-320505", "ownerless-covers-320505", districtT}},
		{"ownerless 2027-02", at(comp("01", "14", "320505002001007", ""), 2027, time.February), want{"320505-housing", "d-320505", "ownerless-covers-320505", districtT}},
		{"ownerless before the start", at(comp("01", "13", "320505002001007", ""), 2025, time.June), want{"320505-roads", "d-320505", "ownerless-covers-320505", districtT}},
		// 吴中 from 2025-10 over 4 units: the year wraps inside the cycle.
		{"吴中 ownerless 2025-12", at(comp("01", "13", "320506001001006", ""), 2025, time.December), want{"320506-parks", "d-320506", "ownerless-covers-320506", districtT}},
		{"吴中 ownerless 2026-01", at(comp("01", "13", "320506001001006", ""), 2026, time.January), want{"320506-sanitation", "d-320506", "ownerless-covers-320506", districtT}},
		{"吴中 ownerless 2026-02", at(comp("01", "14", "320506001001006", ""), 2026, time.February), want{"320506-roads", "d-320506", "ownerless-covers-320506", districtT}},

		// Locality: street and community (属地).
		{"exposed garbage on a lane: street", event("01", "02", "320505002001007"), want{"320505002-office", "s-320505002", "street-cleaning", streetT}},
		{"exposed garbage on a trunk road: district sanitation", event("01", "02", "320505002001003"), want{"320505-sanitation", "d-320505", "trunk-road-cleaning-320505", districtT}},
		{"exposed garbage on a 吴中 trunk road", event("01", "02", "320506002002001"), want{"320506-sanitation", "d-320506", "trunk-road-cleaning-320506", districtT}},
		{"flyers: community", event("02", "01", "320506001002006"), want{"320506001002-office", "c-320506001002", "flyers", communityT}},
		{"illegal structure: 属地兜底", event("01", "01", "320505001002008"), want{"320505001002-office", "c-320505001002", "locality-default", communityT}},
		{"属地兜底 in an unconfigured community: its street", event("01", "01", "320505001009001"), want{"320505001-office", "s-320505001", "locality-default", streetT}},
		{"vending: street squad", event("05", "01", "320506002002004"), want{"320506002-squad", "s-320506002", "vending-320506002", streetT}},
		{"trading outside shops: street squad", event("05", "04", "320505001001005"), want{"320505001-squad", "s-320505001", "vending-320505001", streetT}},
		{"illegal parking: district enforcement", event("05", "05", "320505001002009"), want{"320505-enforcement", "d-320505", "illegal-parking-320505", districtT}},
		{"burst water main in 虎丘: no dispute", event("04", "02", "320505001001007"), want{"city-water", "city", "water-main-burst", cityT}},
		{"gas pipe", event("04", "03", "320506002001009"), want{"city-gas", "city", "gas-pipe-rupture", cityT}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { check(t, c, tc.q, tc.want) })
	}
}

// Disputes of the sample: the known 0402 dispute in 吴中区, and the gap for
// unregistered components without a class rule.
func TestSampleDisputes(t *testing.T) {
	c := sampleCatalogue(t)
	cases := []struct {
		name     string
		q        Query
		contains []string
	}{
		{"burst water main in 吴中", event("04", "02", "320506001001005"),
			[]string{"disagree at priority 50", "water-main-burst → city-water 市自来水有限公司", "water-main-burst-320506 → 320506-roads 吴中区市政设施管理所", "疑难案件会诊"}},
		{"unregistered power cover", comp("01", "05", "320505001001001", "3205050105999999"),
			[]string{"no rule covers component 01/05 电力井盖 3205050105999999 in grid 320505001001001"}},
		{"unregistered public toilet", comp("03", "01", "320506002001005", ""),
			[]string{"no rule covers component 03/01 公共厕所"}},
		{"grid outside the city", event("04", "01", "110105001001001"),
			[]string{"cannot resolve", "outside city"}},
		{"bad minor", event("04", "1", "320505001001001"),
			[]string{"minor class \"1\""}},
		{"no kind", Query{Major: "04", Minor: "01", Grid: "320505001001001"},
			[]string{"KIND_UNSPECIFIED"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := c.Resolve(tc.q)
			if !o.Disputed || o.Unit != "" || o.Rule != "" || o.Node != "" || o.Tier != pb.Tier_TIER_UNSPECIFIED {
				t.Fatalf("want a dispute with no unit, got %+v", o)
			}
			if o.CatalogueVersion != c.Version() {
				t.Errorf("catalogue version %q", o.CatalogueVersion)
			}
			for _, s := range tc.contains {
				if !strings.Contains(o.Dispute, s) {
					t.Errorf("dispute %q does not contain %q", o.Dispute, s)
				}
			}
		})
	}
}

// The explanation reads as the README promises.
func TestSampleExplanation(t *testing.T) {
	c := sampleCatalogue(t)
	for _, tc := range []struct {
		q    Query
		want string
	}{
		{event("04", "01", "320505001001002"),
			"rule trunk-road-collapse (priority 100): event 04/01 路面塌陷 in grid 320505001001002, grid set trunk-roads → city-municipal 市市政工程管理处 at city"},
		{comp("01", "02", "320505001001001", "3205050102000001"),
			"rule registered-components (priority 90): component 01/02 污水井盖 3205050102000001 in grid 320505001001001, its maintaining unit in the register → 320505-roads 虎丘区市政设施管理所 at d-320505"},
		{at(comp("01", "13", "320505002001007", ""), 2027, time.January),
			"rule ownerless-covers-320505 (priority 60): component 01/13 无主井盖 in grid 320505002001007, within d-320505, monthly rotation since 2026-01: 2027-01 is turn 1 of 3 → 320505-roads 虎丘区市政设施管理所 at d-320505"},
		{event("01", "02", "320505002001007"),
			"rule street-cleaning (priority 10): event 01/02 暴露垃圾 in grid 320505002001007, 属地兜底 to the street → 320505002-office 枫桥街道办事处城管科 at s-320505002"},
		{event("01", "01", "320505001009001"),
			"rule locality-default (priority 0): event 01/01 私搭乱建 in grid 320505001009001, 属地兜底 to the street (no community node with units here) → 320505001-office 狮山街道办事处城管科 at s-320505001"},
	} {
		if got := c.Resolve(tc.q).Explanation; got != tc.want {
			t.Errorf("explanation\n got %s\nwant %s", got, tc.want)
		}
	}
}
