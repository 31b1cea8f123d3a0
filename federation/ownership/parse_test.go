package ownership

import (
	"errors"
	"strings"
	"testing"
)

// baseRules is a small valid rules file over the sample topology; the
// refusal cases below break one thing in it.
const baseRules = `
version: "t1"
name: test catalogue
grid_sets:
  main: ["320505001001001", "320505001001002"]
rules:
  - id: covers
    kind: component
    class: "01"
    owner: {component: maintaining}
    priority: 100
  - id: lamps
    kind: component
    class: "0118"
    owner: {unit: city-municipal}
    priority: 80
  - id: collapse
    kind: event
    class: "0401"
    grid_set: main
    owner: {unit: city-municipal}
    priority: 100
  - id: ownerless
    kind: component
    class: ["0113", "0114"]
    prefix: "320505"
    owner: {rotation: {units: [320505-roads, 320505-parks], start: "2026-01"}}
    priority: 60
  - id: default
    kind: event
    class: "*"
    node: c-320505001001
    owner: {locality: community}
    priority: 0
`

const baseComponents = `component_id,major,minor,name,grid_code,supervising,owning,maintaining
3205050101000001,01,01,上水井盖,320505001001001,city-umb,city-water,city-water
32050501201000001,01,201,充电桩,320505001001001,city-umb,city-power,city-power
`

func TestParseBase(t *testing.T) {
	c, err := Parse([]byte(baseRules), []byte(baseComponents), sampleTopology(t))
	if err != nil {
		t.Fatal(err)
	}
	if r, n := c.Len(); r != 5 || n != 2 {
		t.Errorf("Len() = %d rules, %d components; want 5, 2", r, n)
	}
	// An empty register is allowed.
	if _, err := Parse([]byte(baseRules), nil, sampleTopology(t)); err != nil {
		t.Errorf("empty register: %v", err)
	}
}

// Every refusal wraps ErrInvalidCatalogue and names the rule (or grid set,
// or CSV line) and the field.
func TestParseRefusals(t *testing.T) {
	topo := sampleTopology(t)
	rule := func(old, new string) string {
		if !strings.Contains(baseRules, old) {
			t.Fatalf("base rules lack %q", old)
		}
		return strings.Replace(baseRules, old, new, 1)
	}
	row := func(line string) string { return baseComponents + line + "\n" }
	cases := []struct {
		name              string
		rules, comps      string
		mention1, mention string
	}{
		{"unknown unit", rule("{unit: city-municipal}", "{unit: city-metro}"), baseComponents,
			`rule "lamps"`, `owner.unit: "city-metro" is not a unit`},
		{"unknown rotation unit", rule("320505-parks]", "320505-zoo]"), baseComponents,
			`rule "ownerless"`, `owner.rotation.units[1]: "320505-zoo"`},
		{"rotation unit twice", rule("320505-parks]", "320505-roads]"), baseComponents,
			`rule "ownerless"`, `owner.rotation.units[1]: "320505-roads" listed twice`},
		{"rotation of one", rule("[320505-roads, 320505-parks]", "[320505-roads]"), baseComponents,
			`rule "ownerless"`, `owner.rotation.units: a rotation needs at least two units`},
		{"unknown node", rule("node: c-320505001001", "node: c-320505001009"), baseComponents,
			`rule "default"`, `node: "c-320505001009" is not a node`},
		{"unknown prefix", rule(`prefix: "320505"`, `prefix: "320507"`), baseComponents,
			`rule "ownerless"`, `prefix: "320507" is not the jurisdiction of any node`},
		{"prefix and node", rule(`prefix: "320505"`, "prefix: \"320505\"\n    node: d-320505"), baseComponents,
			`rule "ownerless"`, `prefix: give prefix or node, not both`},
		{"unknown tier", rule("{locality: community}", "{locality: borough}"), baseComponents,
			`rule "default"`, `owner.locality: unknown tier "borough"`},
		{"unknown grid set", rule("grid_set: main", "grid_set: trunk"), baseComponents,
			`rule "collapse"`, `grid_set: "trunk" is not defined`},
		{"grid outside the city", rule(`"320505001001002"]`, `"320705001001002"]`), baseComponents,
			`grid_sets.main[1]`, `lies outside city`},
		{"grid listed twice", rule(`"320505001001002"]`, `"320505001001001"]`), baseComponents,
			`grid_sets.main[1]`, `listed twice`},
		{"duplicate rule id", rule("id: lamps", "id: covers"), baseComponents,
			`rule "covers" (rules[1])`, `id: duplicates rules[0]`},
		{"reserved id", rule("id: lamps", "id: joint-review"), baseComponents,
			`rule "joint-review"`, `id: "joint-review" is reserved`},
		{"bad id", rule("id: lamps", "id: Lamps!"), baseComponents,
			`rule "Lamps!"`, `id: "Lamps!" must be`},
		{"missing id", rule("id: lamps", "note: no id"), baseComponents,
			`rules[1]`, `id: required`},
		{"bad class code", rule(`class: "0118"`, `class: "018"`), baseComponents,
			`rule "lamps"`, `class: "018" has 3 digits`},
		{"class not digits", rule(`class: "0118"`, `class: "路灯"`), baseComponents,
			`rule "lamps"`, `class: "路灯" is not a class code`},
		{"overlapping classes", rule(`class: ["0113", "0114"]`, `class: ["01", "0114"]`), baseComponents,
			`rule "ownerless"`, `class[1]: "0114" overlaps "01"`},
		{"bad kind", rule("kind: event\n    class: \"0401\"", "kind: incident\n    class: \"0401\""), baseComponents,
			`rule "collapse"`, `kind: "incident" is not component or event`},
		{"negative priority", rule("priority: 80", "priority: -1"), baseComponents,
			`rule "lamps"`, `priority: -1 is outside 0..1000`},
		{"too high priority", rule("priority: 80", "priority: 5000"), baseComponents,
			`rule "lamps"`, `priority: 5000 is outside`},
		{"missing priority", rule("    priority: 80\n", ""), baseComponents,
			`rule "lamps"`, `priority: required`},
		{"bad rotation start", rule(`start: "2026-01"`, `start: "2026-13"`), baseComponents,
			`rule "ownerless"`, `owner.rotation.start: "2026-13" is not a month`},
		{"rotation start not a month", rule(`start: "2026-01"`, `start: "Jan 2026"`), baseComponents,
			`rule "ownerless"`, `owner.rotation.start: "Jan 2026"`},
		{"two owners", rule("{unit: city-municipal}", "{unit: city-municipal, locality: city}"), baseComponents,
			`rule "lamps"`, `owner: give exactly one`},
		{"no owner", rule("    owner: {unit: city-municipal}\n", ""), baseComponents,
			`rule "lamps"`, `owner: give exactly one of unit, component, rotation, locality (0 given)`},
		{"bad department", rule("{component: maintaining}", "{component: cleaning}"), baseComponents,
			`rule "covers"`, `owner.component: "cleaning"`},
		{"register on an event", rule("kind: event\n    class: \"0401\"", "kind: event\n    component: registered\n    class: \"0401\""), baseComponents,
			`rule "collapse"`, `component: an event rule cannot depend`},
		{"bad component condition", rule("kind: event\n    class: \"0401\"", "kind: event\n    component: known\n    class: \"0401\""), baseComponents,
			`rule "collapse"`, `component: "known"`},
		{"unknown key", rule("priority: 80", "priority: 80\n    owners: x"), baseComponents,
			`rules:`, `field owners not found`},
		{"no version", strings.Replace(baseRules, `version: "t1"`, "", 1), baseComponents,
			`version`, `required`},

		{"CSV wrong column count", baseRules, row("3205050101000002,01,01,上水井盖,320505001001001,city-umb,city-water"),
			`components line 4`, `columns: 7 fields, want 8`},
		{"CSV bad id", baseRules, row("320505010100002,01,01,上水井盖,320505001001001,city-umb,city-water,city-water"),
			`components line 4`, `component_id: "320505010100002" must be 16 or 17 digits`},
		{"CSV id of another class", baseRules, row("3205050102000002,01,01,上水井盖,320505001001001,city-umb,city-water,city-water"),
			`components line 4`, `component_id: 3205050102000002 is of class 01/02, the row says 01/01`},
		{"CSV minor length", baseRules, row("3205050101000002,01,010,上水井盖,320505001001001,city-umb,city-water,city-water"),
			`components line 4`, `minor: "010" has 3 digits`},
		{"CSV duplicate id", baseRules, row("3205050101000001,01,01,上水井盖,320505001001002,city-umb,city-water,city-water"),
			`components line 4`, `component_id: 3205050101000001 duplicates line 2`},
		{"CSV unknown department", baseRules, row("3205050101000002,01,01,上水井盖,320505001001001,city-umb,city-water,suzhou-water"),
			`components line 4`, `maintaining: unknown department "suzhou-water"`},
		{"CSV missing department", baseRules, row("3205050101000002,01,01,上水井盖,320505001001001,,city-water,city-water"),
			`components line 4`, `supervising: required`},
		{"CSV grid in another district", baseRules, row("3205050101000002,01,01,上水井盖,320506001001001,city-umb,city-water,city-water"),
			`components line 4`, `grid_code: 320506001001001 is in district 320506`},
		{"CSV bad grid", baseRules, row("3205050101000002,01,01,上水井盖,32050500100100,city-umb,city-water,city-water"),
			`components line 4`, `grid_code: grid code "32050500100100" must be 15 digits`},
		{"CSV no name", baseRules, row("3205050101000002,01,01, ,320505001001001,city-umb,city-water,city-water"),
			`components line 4`, `name: required`},
		{"CSV header", baseRules, strings.Replace(baseComponents, "grid_code", "grid", 1),
			`components line 1`, `header`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.rules), []byte(tc.comps), topo)
			if err == nil {
				t.Fatalf("Parse accepted it: %d rules", len(c.rules))
			}
			if !errors.Is(err, ErrInvalidCatalogue) {
				t.Errorf("error does not wrap ErrInvalidCatalogue: %v", err)
			}
			for _, s := range []string{tc.mention1, tc.mention} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error does not mention %q:\n%v", s, err)
				}
			}
		})
	}
}

func TestParseNoTopology(t *testing.T) {
	if _, err := Parse([]byte(baseRules), nil, nil); !errors.Is(err, ErrInvalidCatalogue) {
		t.Errorf("nil topology: %v", err)
	}
	if _, err := Parse(nil, nil, sampleTopology(t)); !errors.Is(err, ErrInvalidCatalogue) || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty rules: %v", err)
	}
}
