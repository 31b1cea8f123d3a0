package ownership

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"

	cityhub "github.com/cityhub/cityhub"
	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

func mustParse(t testing.TB, rules, comps string, topo *topology.Topology) *Catalogue {
	t.Helper()
	c, err := Parse([]byte(rules), []byte(comps), topo)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Locality at each tier, and the fallback to the deepest node above when
// the grid has no node at the tier.
func TestLocality(t *testing.T) {
	topo := sampleTopology(t)
	rules := `
version: "t"
name: locality
rules:
  - {id: to-city, kind: event, class: "0101", owner: {locality: city}, priority: 1}
  - {id: to-district, kind: event, class: "0102", owner: {locality: district}, priority: 1}
  - {id: to-street, kind: event, class: "0103", owner: {locality: street}, priority: 1}
  - {id: to-community, kind: event, class: "0104", owner: {locality: 社区}, priority: 1}
`
	c := mustParse(t, rules, "", topo)
	const grid = "320506002001007"        // 郭巷社区
	const noCommunity = "320506002005007" // 郭巷街道, community 005 not configured
	const noStreet = "320506009001001"    // 吴中区, street 009 not configured
	const noDistrict = "320507001001001"  // in the city, district 320507 not configured
	cases := []struct {
		minor, grid string
		want        want
	}{
		{"01", grid, want{"city-umb", "city", "to-city", cityT}},
		{"02", grid, want{"320506-command", "d-320506", "to-district", districtT}},
		{"03", grid, want{"320506002-office", "s-320506002", "to-street", streetT}},
		{"04", grid, want{"320506002001-office", "c-320506002001", "to-community", communityT}},
		{"04", noCommunity, want{"320506002-office", "s-320506002", "to-community", streetT}},
		{"04", noStreet, want{"320506-command", "d-320506", "to-community", districtT}},
		{"03", noStreet, want{"320506-command", "d-320506", "to-street", districtT}},
		{"02", noDistrict, want{"city-umb", "city", "to-district", cityT}},
	}
	for _, tc := range cases {
		t.Run(tc.minor+"@"+tc.grid, func(t *testing.T) { check(t, c, event("01", tc.minor, tc.grid), tc.want) })
	}
}

// A node without units is passed over on the way up.
func TestLocalitySkipsNodesWithoutUnits(t *testing.T) {
	topo, err := topology.New([]topology.Node{
		{Name: "city", Tier: topology.City, Jurisdiction: "320500", Replicas: []string{"127.0.0.1:1"},
			Units: []topology.Unit{{ID: "city-umb", Name: "市城市管理局"}}},
		{Name: "d-320505", Tier: topology.District, Jurisdiction: "320505", Parent: "city", Replicas: []string{"127.0.0.1:2"},
			Units: []topology.Unit{{ID: "320505-command"}}},
		{Name: "s-320505001", Tier: topology.Street, Jurisdiction: "320505001", Parent: "d-320505", Replicas: []string{"127.0.0.1:3"}},
		{Name: "c-320505001001", Tier: topology.Community, Jurisdiction: "320505001001", Parent: "s-320505001", Replicas: []string{"127.0.0.1:4"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, `
version: "t"
name: bare
rules:
  - {id: local, kind: event, class: "*", owner: {locality: community}, priority: 0}
`, "", topo)
	o := c.Resolve(event("01", "01", "320505001001001"))
	// A unit without a name is explained by its id alone.
	if o.Unit != "320505-command" || o.Node != "d-320505" || o.Tier != districtT ||
		!strings.Contains(o.Explanation, "→ 320505-command at d-320505") {
		t.Errorf("got %+v", o)
	}
}

const rankRules = `
version: "t"
name: rank
grid_sets:
  two: ["320505001001001", "320505001001002"]
rules:
  - {id: b-district, kind: event, class: "0401", prefix: "320505", owner: {unit: 320505-roads}, priority: 50}
  - {id: a-major, kind: event, class: "04", owner: {unit: 320505-roads}, priority: 50}
  - {id: c-set, kind: event, class: "0401", grid_set: two, owner: {unit: city-municipal}, priority: 100}
  - {id: d-low, kind: event, class: "*", owner: {unit: city-command}, priority: 0}
  - {id: e-city, kind: event, class: "0402", owner: {unit: city-water}, priority: 70}
  - {id: f-street, kind: event, class: "0402", node: s-320505001, owner: {unit: 320505001-squad}, priority: 70}
  - {id: g-district, kind: event, class: ["0402", "0403"], node: d-320505, owner: {unit: 320505-roads}, priority: 70}
  - {id: h-set-in-district, kind: event, class: "0403", grid_set: two, node: d-320506, owner: {unit: 320506-roads}, priority: 90}
  - {id: i-comp, kind: component, class: "0101", component: registered, owner: {unit: city-water}, priority: 10}
`

// Priority override, agreement, disagreement among two and three rules,
// and a grid set combined with a node.
func TestRanking(t *testing.T) {
	c := mustParse(t, rankRules, "", sampleTopology(t))

	// The grid set at 100 beats the two agreeing rules at 50.
	check(t, c, event("04", "01", "320505001001001"), want{"city-municipal", "city", "c-set", cityT})
	// Off the set, a-major and b-district agree at 50: no dispute, the
	// first by id decides, the other is named.
	o := c.Resolve(event("04", "01", "320505001001003"))
	if o.Disputed || o.Unit != "320505-roads" || o.Rule != "a-major" || !strings.HasSuffix(o.Explanation, "; rule b-district agrees") {
		t.Errorf("agreement: %+v", o)
	}
	// Outside 320505 only a-major (50) matches; d-low (0) loses.
	check(t, c, event("04", "01", "320506001001003"), want{"320505-roads", "d-320505", "a-major", districtT})
	// Nothing but the wildcard for another major.
	check(t, c, event("05", "05", "320506001001003"), want{"city-command", "city", "d-low", cityT})

	// Three rules at 70, two units: disputed, every rule named.
	o = c.Resolve(event("04", "02", "320505001001003"))
	if !o.Disputed || o.Unit != "" || o.Rule != "" {
		t.Fatalf("three-way: %+v", o)
	}
	for _, s := range []string{"priority 70", "e-city → city-water", "f-street → 320505001-squad", "g-district → 320505-roads"} {
		if !strings.Contains(o.Dispute, s) {
			t.Errorf("dispute %q lacks %q", o.Dispute, s)
		}
	}
	// In the other street f-street does not apply: still e-city vs g-district.
	o = c.Resolve(event("04", "02", "320505002001003"))
	if !o.Disputed || strings.Contains(o.Dispute, "f-street") || !strings.Contains(o.Dispute, "g-district") {
		t.Errorf("two-way: %+v", o)
	}
	// In 320506 only e-city is at 70.
	check(t, c, event("04", "02", "320506001001003"), want{"city-water", "city", "e-city", cityT})

	// A grid set combined with a node matches only inside both: the set's
	// grids are in 320505, so h-set-in-district never applies there.
	check(t, c, event("04", "03", "320505001001001"), want{"320505-roads", "d-320505", "g-district", districtT})

	// A component rule without a register entry does not match: no rule.
	if o := c.Resolve(comp("01", "01", "320505001001001", "3205050101000001")); !o.Disputed || !strings.Contains(o.Dispute, "no rule covers") {
		t.Errorf("unregistered component: %+v", o)
	}
	// Components are not events: the event wildcard does not cover them.
	if o := c.Resolve(comp("05", "01", "320505001001001", "")); !o.Disputed {
		t.Errorf("component under an event wildcard: %+v", o)
	}
}

// Rotation edge cases: the zero time is before any start; the start month
// itself is the first turn; the turn follows the calendar month of At as
// given, not UTC.
func TestRotationMonths(t *testing.T) {
	c := sampleCatalogue(t)
	q := comp("01", "13", "320505002001007", "")
	q.At = time.Time{}
	if o := c.Resolve(q); o.Unit != "320505-roads" {
		t.Errorf("zero time: %s", o.Explanation)
	}
	// 2026-02-01 00:30 in Suzhou is still January in UTC: February's turn.
	q.At = time.Date(2026, time.February, 1, 0, 30, 0, 0, time.FixedZone("CST", 8*3600))
	if o := c.Resolve(q); o.Unit != "320505-housing" {
		t.Errorf("local February: %s", o.Explanation)
	}
	// 120 months on: 120 mod 3 = 0.
	q.At = month(2036, time.January)
	if o := c.Resolve(q); o.Unit != "320505-roads" || !strings.Contains(o.Explanation, "2036-01 is turn 1 of 3") {
		t.Errorf("ten years on: %s", o.Explanation)
	}
}

// shuffledSample re-encodes the sample rules with the rule list and every
// grid set in a random order.
func shuffledSample(t *testing.T, seed uint64) []byte {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(cityhub.SampleFile("responsibility.yaml"), &doc); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, seed))
	top := doc.Content[0]
	for i := 0; i < len(top.Content); i += 2 {
		switch top.Content[i].Value {
		case "rules":
			seq := top.Content[i+1].Content
			rng.Shuffle(len(seq), func(a, b int) { seq[a], seq[b] = seq[b], seq[a] })
		case "grid_sets":
			for _, set := range top.Content[i+1].Content {
				rng.Shuffle(len(set.Content), func(a, b int) { set.Content[a], set.Content[b] = set.Content[b], set.Content[a] })
			}
		}
	}
	var buf bytes.Buffer
	if err := yaml.NewEncoder(&buf).Encode(&doc); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// allQueries is every class used by the sample over every grid of
// grids.csv plus some off the list, over 14 months, with and without a
// component id.
func allQueries(t *testing.T, c *Catalogue) []Query {
	var grids []string
	for _, g := range readGrids(t) {
		grids = append(grids, g["grid_code"])
	}
	grids = append(grids, "320505001009001", "320506009001001", "320507001001001", "110105001001001")
	var qs []Query
	for _, g := range grids {
		for _, m := range []time.Month{time.January, time.June, time.December} {
			for _, y := range []int{2025, 2026, 2027} {
				for _, cl := range []string{"0101", "0102", "0104", "0201", "0401", "0402", "0403", "0501", "0504", "0505", "0999"} {
					qs = append(qs, Query{Kind: pb.Kind_KIND_EVENT, Major: cl[:2], Minor: cl[2:], Grid: g, At: month(y, m)})
				}
				for _, cl := range []string{"0101", "0102", "0103", "0105", "0113", "0114", "0118", "0301", "0402", "01201"} {
					qs = append(qs, Query{Kind: pb.Kind_KIND_COMPONENT, Major: cl[:2], Minor: cl[2:], Grid: g, At: month(y, m)})
				}
			}
		}
	}
	for id, comp := range c.components {
		qs = append(qs, Query{Kind: pb.Kind_KIND_COMPONENT, Major: comp.Major, Minor: comp.Minor, Grid: comp.Grid, ComponentID: id, At: month(2026, time.May)})
	}
	return qs
}

// Determinism: a catalogue whose rules and grid sets are written in another
// order answers every query identically, and so does asking twice.
func TestDeterminism(t *testing.T) {
	topo := sampleTopology(t)
	ref := sampleCatalogue(t)
	qs := allQueries(t, ref)
	var disputed, owned int
	for seed := uint64(1); seed <= 3; seed++ {
		data := shuffledSample(t, seed)
		if bytes.Equal(data, cityhub.SampleFile("responsibility.yaml")) {
			t.Fatal("shuffle changed nothing")
		}
		c, err := Parse(data, cityhub.SampleFile("components.csv"), topo)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range qs {
			a, b := ref.Resolve(q), c.Resolve(q)
			if !proto.Equal(a, b) || !proto.Equal(a, ref.Resolve(q)) {
				t.Fatalf("seed %d: %+v\n  %v\n  %v", seed, q, a, b)
			}
			if seed == 1 {
				if a.Disputed {
					disputed++
				} else {
					owned++
				}
			}
		}
	}
	// The query mix exercises both outcomes.
	if disputed == 0 || owned == 0 {
		t.Errorf("%d disputed, %d owned", disputed, owned)
	}
}

// Resolve is safe for concurrent use (run with -race) and never returns nil.
func TestConcurrentResolve(t *testing.T) {
	c := sampleCatalogue(t)
	qs := allQueries(t, c)
	want := make([]*pb.Ownership, len(qs))
	for i, q := range qs {
		want[i] = c.Resolve(q)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(qs); i += 8 {
				if got := c.Resolve(qs[i]); got == nil || !proto.Equal(got, want[i]) {
					errs <- fmt.Sprintf("query %d: %v, want %v", i, got, want[i])
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func BenchmarkResolve(b *testing.B) {
	c := sampleCatalogue(b)
	qs := []Query{
		event("04", "01", "320505001001002"),
		event("04", "01", "320506002001005"),
		comp("01", "02", "320505001001001", "3205050102000001"),
		comp("01", "13", "320505002001007", ""),
		event("01", "02", "320505002001007"),
		event("01", "01", "320505001002008"),
		event("04", "02", "320506001001005"),
		comp("01", "05", "320505001001001", "3205050105999999"),
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if c.Resolve(qs[i%len(qs)]) == nil {
			b.Fatal("nil")
		}
		i++
	}
}
