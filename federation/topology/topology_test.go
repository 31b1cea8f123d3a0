package topology

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func loadExample(t *testing.T) *Topology {
	t.Helper()
	data, err := os.ReadFile("testdata/city.yaml")
	if err != nil {
		t.Fatal(err)
	}
	topo, err := Load(data)
	if err != nil {
		t.Fatalf("Load(testdata/city.yaml): %v", err)
	}
	return topo
}

func names(nodes []Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.Name
	}
	return out
}

func TestExampleLoads(t *testing.T) {
	topo := loadExample(t)
	if got := topo.Root(); got.Name != "city" || got.Tier != City || got.Jurisdiction != "320500" {
		t.Fatalf("Root = %+v", got)
	}
	all := topo.Nodes()
	if len(all) != 15 {
		t.Fatalf("Nodes: got %d, want 15", len(all))
	}
	count := map[Tier]int{}
	for _, n := range all {
		count[n.Tier]++
		if len(n.Units) == 0 {
			t.Errorf("node %s has no units", n.Name)
		}
		for _, u := range n.Units {
			if u.Tier != n.Tier {
				t.Errorf("unit %s tier %s, node %s is %s", u.ID, u.Tier, n.Name, n.Tier)
			}
		}
	}
	if count[City] != 1 || count[District] != 2 || count[Street] != 4 || count[Community] != 8 {
		t.Errorf("tier counts = %v", count)
	}
	if got, want := names(topo.Children("city")), []string{"d-320505", "d-320506"}; !slices.Equal(got, want) {
		t.Errorf("Children(city) = %v, want %v", got, want)
	}
	if got, want := names(topo.Children("s-320506002")), []string{"c-320506002001", "c-320506002002"}; !slices.Equal(got, want) {
		t.Errorf("Children(s-320506002) = %v, want %v", got, want)
	}
	if got := topo.Children("c-320506002002"); got != nil {
		t.Errorf("Children(leaf) = %v", names(got))
	}
	if n, ok := topo.Node("d-320506"); !ok || n.Parent != "city" || len(n.Replicas) != 3 {
		t.Errorf("Node(d-320506) = %+v, %v", n, ok)
	}
	if _, ok := topo.Node("nope"); ok {
		t.Error("Node(nope) found")
	}
}

func TestPathToEveryCommunity(t *testing.T) {
	topo := loadExample(t)
	n := 0
	for _, c := range topo.Nodes() {
		if c.Tier != Community {
			continue
		}
		n++
		grid := c.Jurisdiction + "042"
		path, err := topo.PathTo(grid)
		if err != nil {
			t.Fatalf("PathTo(%s): %v", grid, err)
		}
		want := []string{"city", "d-" + grid[:6], "s-" + grid[:9], "c-" + grid[:12]}
		if got := names(path); !slices.Equal(got, want) {
			t.Errorf("PathTo(%s) = %v, want %v", grid, got, want)
		}
		for i, tier := range []Tier{City, District, Street, Community} {
			if path[i].Tier != tier {
				t.Errorf("PathTo(%s)[%d] tier %s, want %s", grid, i, path[i].Tier, tier)
			}
		}
		h, err := topo.HolderForGrid(grid)
		if err != nil || h.Name != c.Name {
			t.Errorf("HolderForGrid(%s) = %s, %v; want %s", grid, h.Name, err, c.Name)
		}
	}
	if n != 8 {
		t.Fatalf("visited %d communities, want 8", n)
	}
}

func TestPathToPartial(t *testing.T) {
	topo := loadExample(t)
	cases := []struct {
		grid string
		want []string
	}{
		// District configured, street 003 not: stops at the district.
		{"320505003001001", []string{"city", "d-320505"}},
		// Street configured, community 009 not: stops at the street.
		{"320506001009001", []string{"city", "d-320506", "s-320506001"}},
		// Inside the city, district 320507 not configured: held by the city.
		{"320507001001001", []string{"city"}},
	}
	for _, c := range cases {
		path, err := topo.PathTo(c.grid)
		if err != nil {
			t.Errorf("PathTo(%s): %v", c.grid, err)
			continue
		}
		if got := names(path); !slices.Equal(got, c.want) {
			t.Errorf("PathTo(%s) = %v, want %v", c.grid, got, c.want)
		}
	}

	// A district with no street nodes at all.
	small, err := New([]Node{
		{Name: "city", Tier: City, Jurisdiction: "320500", Replicas: []string{"127.0.0.1:1"}},
		{Name: "d", Tier: District, Jurisdiction: "320505", Parent: "city", Replicas: []string{"127.0.0.1:2"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	h, err := small.HolderForGrid("320505001001001")
	if err != nil || h.Name != "d" {
		t.Errorf("HolderForGrid in street-less district = %q, %v; want d", h.Name, err)
	}
}

func TestPathToErrors(t *testing.T) {
	topo := loadExample(t)
	for _, grid := range []string{
		"320600001001001", // another city (无锡 3202 / 3206): outside
		"110101001001001", // Beijing
		"32050500100100",  // 14 digits
		"3205050010010011",
		"32050500100100x",
		"",
	} {
		if _, err := topo.PathTo(grid); err == nil {
			t.Errorf("PathTo(%q): no error", grid)
		}
		if _, err := topo.HolderForGrid(grid); err == nil {
			t.Errorf("HolderForGrid(%q): no error", grid)
		}
	}
	_, err := topo.PathTo("320600001001001")
	if err == nil || !strings.Contains(err.Error(), "outside city") {
		t.Errorf("outside-city error = %v", err)
	}
}

func TestNodeOfUnit(t *testing.T) {
	topo := loadExample(t)
	for unit, want := range map[string]string{
		"city-umb":            "city",
		"city-water":          "city",
		"320505-sanitation":   "d-320505",
		"320506-enforcement":  "d-320506",
		"320506002-office":    "s-320506002",
		"320505001002-office": "c-320505001002",
	} {
		n, ok := topo.NodeOfUnit(unit)
		if !ok || n.Name != want {
			t.Errorf("NodeOfUnit(%s) = %q, %v; want %s", unit, n.Name, ok, want)
		}
	}
	if _, ok := topo.NodeOfUnit("320507-sanitation"); ok {
		t.Error("NodeOfUnit(unknown) found")
	}
}

func TestAncestors(t *testing.T) {
	topo := loadExample(t)
	if got, want := names(topo.Ancestors("c-320506001002")), []string{"s-320506001", "d-320506", "city"}; !slices.Equal(got, want) {
		t.Errorf("Ancestors = %v, want %v", got, want)
	}
	if got := topo.Ancestors("city"); len(got) != 0 {
		t.Errorf("Ancestors(city) = %v", names(got))
	}
	if got := topo.Ancestors("nope"); got != nil {
		t.Errorf("Ancestors(nope) = %v", names(got))
	}
}

// hops follows Route from `from` to `to` and returns the nodes visited after
// `from` and the direction of each hop.
func hops(t *testing.T, topo *Topology, from, to string) ([]string, []bool) {
	t.Helper()
	var path []string
	var dirs []bool
	for cur := from; cur != to; {
		next, up, err := topo.Route(cur, to)
		if err != nil {
			t.Fatalf("Route(%s, %s): %v", cur, to, err)
		}
		path = append(path, next)
		dirs = append(dirs, up)
		cur = next
		if len(path) > 10 {
			t.Fatalf("Route(%s, %s) does not converge: %v", from, to, path)
		}
	}
	return path, dirs
}

func TestRoute(t *testing.T) {
	topo := loadExample(t)
	cases := []struct {
		from, to string
		path     []string
		up       []bool
	}{
		{"c-320505001001", "city",
			[]string{"s-320505001", "d-320505", "city"}, []bool{true, true, true}},
		{"city", "c-320506002001",
			[]string{"d-320506", "s-320506002", "c-320506002001"}, []bool{false, false, false}},
		// Across districts: up to the city, then down.
		{"c-320505001001", "s-320506002",
			[]string{"s-320505001", "d-320505", "city", "d-320506", "s-320506002"},
			[]bool{true, true, true, false, false}},
		// Siblings: up to the common street, then down.
		{"c-320505002001", "c-320505002002",
			[]string{"s-320505002", "c-320505002002"}, []bool{true, false}},
		{"d-320505", "c-320505002002",
			[]string{"s-320505002", "c-320505002002"}, []bool{false, false}},
	}
	for _, c := range cases {
		path, dirs := hops(t, topo, c.from, c.to)
		if !slices.Equal(path, c.path) || !slices.Equal(dirs, c.up) {
			t.Errorf("Route %s→%s: hops %v up %v; want %v up %v", c.from, c.to, path, dirs, c.path, c.up)
		}
	}
	for _, bad := range [][2]string{{"city", "city"}, {"nope", "city"}, {"city", "nope"}} {
		if _, _, err := topo.Route(bad[0], bad[1]); err == nil {
			t.Errorf("Route(%s, %s): no error", bad[0], bad[1])
		}
	}
}

func TestParseTier(t *testing.T) {
	for _, tier := range []Tier{City, District, Street, Community} {
		got, err := ParseTier(strings.ToUpper(tier.String()))
		if err != nil || got != tier {
			t.Errorf("ParseTier(%s) = %v, %v", tier, got, err)
		}
		b, err := tier.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Tier
		if err := back.UnmarshalText(b); err != nil || back != tier {
			t.Errorf("text round trip %s = %v, %v", tier, back, err)
		}
	}
	if got, err := ParseTier("街道"); err != nil || got != Street {
		t.Errorf("ParseTier(街道) = %v, %v", got, err)
	}
	if _, err := ParseTier("province"); err == nil {
		t.Error("ParseTier(province): no error")
	}
	if s := Tier(0).String(); s != "Tier(0)" {
		t.Errorf("Tier(0).String() = %q", s)
	}
}

// validNodes returns a small valid tree that tests mutate.
func validNodes() []Node {
	r := func(p string) []string { return []string{"127.0.0.1:" + p} }
	return []Node{
		{Name: "city", Tier: City, Jurisdiction: "320500", Replicas: r("7001"),
			Units: []Unit{{ID: "city-umb", Name: "市城管局"}}},
		{Name: "d-a", Tier: District, Jurisdiction: "320505", Parent: "city", Replicas: r("7002"),
			Units: []Unit{{ID: "320505-sanitation", Name: "环卫"}}},
		{Name: "d-b", Tier: District, Jurisdiction: "320506", Parent: "city", Replicas: r("7003")},
		{Name: "s-a1", Tier: Street, Jurisdiction: "320505001", Parent: "d-a", Replicas: r("7004"),
			Units: []Unit{{ID: "320505001-office", Name: "街道办"}}},
		{Name: "c-a11", Tier: Community, Jurisdiction: "320505001001", Parent: "s-a1", Replicas: r("7005"),
			Units: []Unit{{ID: "320505001001-office", Name: "社区"}}},
	}
}

func TestNewValid(t *testing.T) {
	topo, err := New(validNodes())
	if err != nil {
		t.Fatal(err)
	}
	if got := names(topo.Nodes()); !slices.Equal(got, []string{"city", "d-a", "s-a1", "c-a11", "d-b"}) {
		t.Errorf("Nodes = %v", got)
	}
	// The topology does not alias the caller's slices.
	in := validNodes()
	topo, _ = New(in)
	in[0].Replicas[0] = "mutated:1"
	if topo.Root().Replicas[0] != "127.0.0.1:7001" {
		t.Error("topology aliases input replicas")
	}
	n, _ := topo.Node("city")
	n.Units[0].ID = "x"
	if u, ok := topo.NodeOfUnit("city-umb"); !ok || u.Units[0].ID != "city-umb" {
		t.Error("returned node aliases topology units")
	}
}

func TestNewValidation(t *testing.T) {
	idx := func(nodes []Node, name string) int {
		for i, n := range nodes {
			if n.Name == name {
				return i
			}
		}
		panic(name)
	}
	cases := []struct {
		name   string
		mutate func([]Node) []Node
		want   []string // substrings of the error
	}{
		{"no nodes", func([]Node) []Node { return nil }, []string{"no nodes"}},
		{"no city", func(ns []Node) []Node {
			ns[0].Tier = District
			return ns
		}, []string{"no city node"}},
		{"two cities", func(ns []Node) []Node {
			return append(ns, Node{Name: "city2", Tier: City, Jurisdiction: "320600", Replicas: []string{"127.0.0.1:8000"}})
		}, []string{`node "city2"`, "exactly one city"}},
		{"city with parent", func(ns []Node) []Node {
			ns[0].Parent = "d-a"
			return ns
		}, []string{`node "city"`, "must have no parent"}},
		{"missing parent", func(ns []Node) []Node {
			ns[idx(ns, "d-b")].Parent = ""
			return ns
		}, []string{`node "d-b"`, "has no parent"}},
		{"unknown parent", func(ns []Node) []Node {
			ns[idx(ns, "s-a1")].Parent = "d-zz"
			return ns
		}, []string{`node "s-a1"`, `unknown parent "d-zz"`}},
		{"parent tier skips a level", func(ns []Node) []Node {
			ns[idx(ns, "c-a11")].Parent = "d-a"
			return ns
		}, []string{`node "c-a11"`, `parent "d-a" is a district; want a street`}},
		{"parent tier same level", func(ns []Node) []Node {
			ns[idx(ns, "d-b")].Parent = "d-a"
			return ns
		}, []string{`node "d-b"`, "want a city"}},
		{"invalid tier", func(ns []Node) []Node {
			ns[idx(ns, "d-b")].Tier = 9
			return ns
		}, []string{`node "d-b"`, "invalid tier 9"}},
		{"city code length", func(ns []Node) []Node {
			ns[0].Jurisdiction = "3205"
			return ns
		}, []string{`node "city"`, "must be 6 digits"}},
		{"district code not digits", func(ns []Node) []Node {
			ns[idx(ns, "d-b")].Jurisdiction = "32050x"
			return ns
		}, []string{`node "d-b"`, "must be 6 digits"}},
		{"street code length", func(ns []Node) []Node {
			ns[idx(ns, "s-a1")].Jurisdiction = "32050500"
			return ns
		}, []string{`node "s-a1"`, "must be 9 digits"}},
		{"community code length", func(ns []Node) []Node {
			ns[idx(ns, "c-a11")].Jurisdiction = "320505001001001"
			return ns
		}, []string{`node "c-a11"`, "must be 12 digits"}},
		{"district outside city", func(ns []Node) []Node {
			ns[idx(ns, "d-b")].Jurisdiction = "320681"
			return ns
		}, []string{`node "d-b"`, "outside parent \"city\"", "must start with 3205"}},
		{"street outside district", func(ns []Node) []Node {
			ns[idx(ns, "s-a1")].Jurisdiction = "320506001"
			return ns
		}, []string{`node "s-a1"`, "outside parent \"d-a\""}},
		{"community outside street", func(ns []Node) []Node {
			ns[idx(ns, "c-a11")].Jurisdiction = "320505002001"
			return ns
		}, []string{`node "c-a11"`, "outside parent \"s-a1\""}},
		{"sibling overlap", func(ns []Node) []Node {
			ns[idx(ns, "d-b")].Jurisdiction = "320505"
			return ns
		}, []string{`node "d-b"`, `overlaps node "d-a"`}},
		{"overlap across parents", func(ns []Node) []Node {
			return append(ns,
				Node{Name: "s-b1", Tier: Street, Jurisdiction: "320506001", Parent: "d-b", Replicas: []string{"127.0.0.1:8001"}},
				Node{Name: "c-b11", Tier: Community, Jurisdiction: "320505001001", Parent: "s-b1", Replicas: []string{"127.0.0.1:8002"}})
		}, []string{`node "c-b11"`, "outside parent \"s-b1\"", `overlaps node "c-a11"`}},
		{"duplicate name", func(ns []Node) []Node {
			return append(ns, Node{Name: "d-b", Tier: District, Jurisdiction: "320507", Parent: "city", Replicas: []string{"127.0.0.1:8000"}})
		}, []string{`node "d-b"`, "duplicate node name"}},
		{"empty name", func(ns []Node) []Node {
			return append(ns, Node{Tier: District, Jurisdiction: "320507", Parent: "city", Replicas: []string{"127.0.0.1:8000"}})
		}, []string{`node #5 (jurisdiction "320507")`, "empty name"}},
		{"duplicate unit across nodes", func(ns []Node) []Node {
			i := idx(ns, "d-b")
			ns[i].Units = []Unit{{ID: "320505-sanitation", Name: "环卫"}}
			return ns
		}, []string{`node "d-b"`, `unit "320505-sanitation" already hosted by node "d-a"`}},
		{"duplicate unit within node", func(ns []Node) []Node {
			ns[0].Units = append(ns[0].Units, Unit{ID: "city-umb"})
			return ns
		}, []string{`node "city"`, `unit "city-umb" listed twice`}},
		{"empty unit id", func(ns []Node) []Node {
			ns[0].Units = append(ns[0].Units, Unit{Name: "市政"})
			return ns
		}, []string{`node "city"`, "empty id"}},
		{"unit tier mismatch", func(ns []Node) []Node {
			ns[0].Units[0].Tier = Community
			return ns
		}, []string{`node "city"`, `unit "city-umb" has tier community`}},
		{"no replicas", func(ns []Node) []Node {
			ns[idx(ns, "s-a1")].Replicas = nil
			return ns
		}, []string{`node "s-a1"`, "no replicas"}},
		{"replica without port", func(ns []Node) []Node {
			ns[idx(ns, "s-a1")].Replicas = []string{"127.0.0.1"}
			return ns
		}, []string{`node "s-a1"`, `replica "127.0.0.1"`, "host:port"}},
		{"replica empty host", func(ns []Node) []Node {
			ns[idx(ns, "s-a1")].Replicas = []string{":7004"}
			return ns
		}, []string{`node "s-a1"`, "empty host"}},
		{"replica bad port", func(ns []Node) []Node {
			ns[idx(ns, "s-a1")].Replicas = []string{"node1:http", "node2:70000"}
			return ns
		}, []string{`node "s-a1"`, `bad port "http"`, `bad port "70000"`}},
		{"replica shared between nodes", func(ns []Node) []Node {
			ns[idx(ns, "d-b")].Replicas = []string{"127.0.0.1:7002"}
			return ns
		}, []string{`node "d-b"`, `already belongs to node "d-a"`}},
		{"cycle", func(ns []Node) []Node {
			ns[idx(ns, "d-a")].Parent = "c-a11"
			return ns
		}, []string{`node "d-a"`, "cycle"}},
		{"self parent", func(ns []Node) []Node {
			ns[idx(ns, "d-b")].Parent = "d-b"
			return ns
		}, []string{`node "d-b"`, "its own parent"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			topo, err := New(c.mutate(validNodes()))
			if err == nil {
				t.Fatalf("New accepted an invalid topology: %v", names(topo.Nodes()))
			}
			msg := err.Error()
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q\ndoes not contain %q", msg, w)
				}
			}
		})
	}
}

func TestNewReportsAllProblems(t *testing.T) {
	ns := validNodes()
	ns[1].Replicas = nil
	ns[3].Parent = "nope"
	_, err := New(ns)
	if err == nil {
		t.Fatal("no error")
	}
	if lines := strings.Split(err.Error(), "\n"); len(lines) != 2 {
		t.Errorf("want 2 joined errors, got %d: %q", len(lines), lines)
	}
}

func TestLoadErrors(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"bad yaml", "nodes: [", "parse yaml"},
		{"unknown field", "nodes:\n  - name: city\n    tier: city\n    jurisdction: \"320500\"\n", "jurisdction"},
		{"bad tier", "nodes:\n  - name: city\n    tier: province\n", `node "city": unknown tier "province"`},
		{"empty", "", "parse yaml"},
		{"invalid tree", `nodes:
  - {name: city, tier: city, jurisdiction: "320500", replicas: ["127.0.0.1:1"]}
  - {name: d, tier: district, jurisdiction: "330100", parent: city, replicas: ["127.0.0.1:2"]}
`, `node "d": jurisdiction 330100 lies outside parent "city"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load([]byte(c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Load error = %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestLoadUnquotedCodes(t *testing.T) {
	topo, err := Load([]byte(`nodes:
  - {name: city, tier: 市, jurisdiction: 320500, replicas: ["127.0.0.1:1"]}
  - {name: d, tier: district, jurisdiction: 320505, parent: city, replicas: ["127.0.0.1:2"],
     units: [{id: 320505-sanitation, name: 环卫}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := topo.NodeOfUnit("320505-sanitation"); !ok || n.Name != "d" || n.Units[0].Tier != District {
		t.Errorf("NodeOfUnit = %+v, %v", n, ok)
	}
}
