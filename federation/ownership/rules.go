package ownership

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// MaxPriority is the highest priority a rule may have; the lowest is 0.
const MaxPriority = 1000

// JointReview is the rule id that stands for a joint-review decision
// (pb.Ownership.rule); the catalogue refuses it as a rule id.
const JointReview = "joint-review"

// Departments of a component in the register, as an owner names them.
const (
	Supervising = "supervising" // 主管
	Owning      = "owning"      // 权属
	Maintaining = "maintaining" // 养护
)

// rulesFile is the YAML layout of the rules (see DESIGN.md).
type rulesFile struct {
	Version  string              `yaml:"version"`
	Name     string              `yaml:"name"`
	GridSets map[string][]string `yaml:"grid_sets"`
	Rules    []fileRule          `yaml:"rules"`
}

type fileRule struct {
	ID        string    `yaml:"id"`
	Kind      string    `yaml:"kind"`
	Class     classList `yaml:"class"`
	Prefix    string    `yaml:"prefix"`
	Node      string    `yaml:"node"`
	GridSet   string    `yaml:"grid_set"`
	Component string    `yaml:"component"`
	Owner     fileOwner `yaml:"owner"`
	Priority  *int      `yaml:"priority"`
	Note      string    `yaml:"note"`
}

type fileOwner struct {
	Unit      string        `yaml:"unit"`
	Component string        `yaml:"component"`
	Rotation  *fileRotation `yaml:"rotation"`
	Locality  string        `yaml:"locality"`
}

type fileRotation struct {
	Units []string `yaml:"units"`
	Start string   `yaml:"start"`
}

// classList is a rule's class: one code or a list of codes.
type classList []string

func (c *classList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*c = classList{n.Value}
		return nil
	case yaml.SequenceNode:
		out := make(classList, 0, len(n.Content))
		for _, item := range n.Content {
			if item.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: class: a list item must be a code such as \"0401\"", item.Line)
			}
			out = append(out, item.Value)
		}
		*c = out
		return nil
	}
	return fmt.Errorf("line %d: class: want a code such as \"0401\" or a list of codes", n.Line)
}

// ownerKind says how a rule's owner is found.
type ownerKind int

const (
	ownerUnit      ownerKind = iota + 1 // a fixed unit
	ownerComponent                      // a department of the component in the register
	ownerRotation                       // monthly rotation among units
	ownerLocality                       // 属地兜底: the locality at a tier
)

type owner struct {
	kind     ownerKind
	unit     string        // ownerUnit
	dept     string        // ownerComponent: Supervising, Owning or Maintaining
	units    []string      // ownerRotation
	start    int           // ownerRotation: year*12 + month-1 of the first turn
	startStr string        // ownerRotation: as written, "2026-01"
	tier     topology.Tier // ownerLocality
}

// rule is one parsed rule.
type rule struct {
	id         string
	kind       pb.Kind
	classes    []string // "0401", "04" or "*"
	prefix     string   // grid-code prefix; "" = anywhere
	scopeNode  string   // the node whose jurisdiction prefix is
	gridSet    string   // name of the grid set; "" = none
	grids      map[string]struct{}
	registered bool // applies only to components in the register
	owner      owner
	priority   int
	note       string
}

var (
	idPattern      = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)
	gridSetPattern = idPattern
)

// parseRules decodes and checks the rules file against the topology view.
func parseRules(data []byte, v *view) (*rulesFile, []*rule, map[string]map[string]struct{}, []error) {
	var f rulesFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, nil, []error{errors.New("rules: empty document")}
		}
		return nil, nil, nil, []error{fmt.Errorf("rules: %w", err)}
	}
	var errs []error
	bad := func(where, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...)))
	}
	f.Version = strings.TrimSpace(f.Version)
	f.Name = strings.TrimSpace(f.Name)
	if f.Version == "" {
		bad("version", "required")
	}
	if f.Name == "" {
		bad("name", "required")
	}

	sets := make(map[string]map[string]struct{}, len(f.GridSets))
	setNames := make([]string, 0, len(f.GridSets))
	for name := range f.GridSets {
		setNames = append(setNames, name)
	}
	slices.Sort(setNames)
	for _, name := range setNames {
		grids := f.GridSets[name]
		where := fmt.Sprintf("grid_sets.%s", name)
		if !gridSetPattern.MatchString(name) {
			bad(where, "name %q must be 1-64 characters of [a-z0-9-]", name)
		}
		if len(grids) == 0 {
			bad(where, "empty grid set")
		}
		set := make(map[string]struct{}, len(grids))
		for i, g := range grids {
			at := fmt.Sprintf("%s[%d]", where, i)
			if err := v.checkGrid(g); err != nil {
				bad(at, "%v", err)
				continue
			}
			if _, dup := set[g]; dup {
				bad(at, "grid %s listed twice", g)
				continue
			}
			set[g] = struct{}{}
		}
		sets[name] = set
	}

	if len(f.Rules) == 0 {
		bad("rules", "no rules")
	}
	seen := make(map[string]int, len(f.Rules))
	rules := make([]*rule, 0, len(f.Rules))
	for i, fr := range f.Rules {
		where := fmt.Sprintf("rules[%d]", i)
		if fr.ID != "" {
			where = fmt.Sprintf("rule %q (rules[%d])", fr.ID, i)
		}
		r, rerrs := parseRule(fr, v, sets)
		for _, e := range rerrs {
			errs = append(errs, fmt.Errorf("%s: %w", where, e))
		}
		if fr.ID != "" {
			if first, dup := seen[fr.ID]; dup {
				bad(where, "id: duplicates rules[%d]", first)
				continue
			}
			seen[fr.ID] = i
		}
		if len(rerrs) == 0 {
			rules = append(rules, r)
		}
	}
	return &f, rules, sets, errs
}

// parseRule checks one rule; each error names the field.
func parseRule(fr fileRule, v *view, sets map[string]map[string]struct{}) (*rule, []error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	r := &rule{id: fr.ID, note: strings.TrimSpace(fr.Note)}

	switch {
	case fr.ID == "":
		bad("id", "required")
	case fr.ID == JointReview:
		bad("id", "%q is reserved for joint-review decisions", fr.ID)
	case !idPattern.MatchString(fr.ID):
		bad("id", "%q must be 1-64 characters of [a-z0-9-], starting with a letter or digit", fr.ID)
	}

	switch strings.TrimSpace(fr.Kind) {
	case "component", "部件":
		r.kind = pb.Kind_KIND_COMPONENT
	case "event", "事件":
		r.kind = pb.Kind_KIND_EVENT
	case "":
		bad("kind", "required (component or event)")
	default:
		bad("kind", "%q is not component or event", fr.Kind)
	}

	if len(fr.Class) == 0 {
		bad("class", "required (a code such as \"0401\", a major such as \"04\", or \"*\")")
	}
	for i, cl := range fr.Class {
		field := "class"
		if len(fr.Class) > 1 {
			field = fmt.Sprintf("class[%d]", i)
		}
		if err := checkClass(cl); err != nil {
			bad(field, "%v", err)
			continue
		}
		for _, prev := range r.classes {
			if covers(prev, cl) || covers(cl, prev) {
				bad(field, "%q overlaps %q listed before it", cl, prev)
			}
		}
		r.classes = append(r.classes, cl)
	}

	switch {
	case fr.Prefix != "" && fr.Node != "":
		bad("prefix", "give prefix or node, not both")
	case fr.Prefix != "":
		n, ok := v.byJurisdiction[fr.Prefix]
		if !ok {
			bad("prefix", "%q is not the jurisdiction of any node of the topology", fr.Prefix)
			break
		}
		r.prefix, r.scopeNode = n.prefix, n.name
	case fr.Node != "":
		n, ok := v.byName[fr.Node]
		if !ok {
			bad("node", "%q is not a node of the topology", fr.Node)
			break
		}
		r.prefix, r.scopeNode = n.prefix, n.name
	}
	if fr.GridSet != "" {
		set, ok := sets[fr.GridSet]
		if !ok {
			bad("grid_set", "%q is not defined in grid_sets", fr.GridSet)
		}
		r.gridSet, r.grids = fr.GridSet, set
	}

	switch fr.Component {
	case "":
	case "registered":
		r.registered = true
	default:
		bad("component", "%q: the only condition is \"registered\" (the component id is in the register)", fr.Component)
	}

	r.owner, errs = parseOwner(fr.Owner, v, r, errs)
	if r.registered && r.kind == pb.Kind_KIND_EVENT {
		bad("component", "an event rule cannot depend on the component register")
	}

	switch p := fr.Priority; {
	case p == nil:
		bad("priority", "required (0..%d, higher wins)", MaxPriority)
	case *p < 0 || *p > MaxPriority:
		bad("priority", "%d is outside 0..%d", *p, MaxPriority)
	default:
		r.priority = *p
	}
	return r, errs
}

func parseOwner(fo fileOwner, v *view, r *rule, errs []error) (owner, []error) {
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	set := 0
	for _, given := range []bool{fo.Unit != "", fo.Component != "", fo.Rotation != nil, fo.Locality != ""} {
		if given {
			set++
		}
	}
	if set != 1 {
		bad("owner", "give exactly one of unit, component, rotation, locality (%d given)", set)
		return owner{}, errs
	}
	switch {
	case fo.Unit != "":
		if _, ok := v.units[fo.Unit]; !ok {
			bad("owner.unit", "%q is not a unit of any node of the topology", fo.Unit)
		}
		return owner{kind: ownerUnit, unit: fo.Unit}, errs
	case fo.Component != "":
		switch fo.Component {
		case Supervising, Owning, Maintaining:
		default:
			bad("owner.component", "%q is not supervising, owning or maintaining", fo.Component)
		}
		// An owner taken from the register implies the condition.
		r.registered = true
		return owner{kind: ownerComponent, dept: fo.Component}, errs
	case fo.Rotation != nil:
		o := owner{kind: ownerRotation, units: fo.Rotation.Units, startStr: fo.Rotation.Start}
		if len(o.units) < 2 {
			bad("owner.rotation.units", "a rotation needs at least two units (%d given); use owner.unit for one", len(o.units))
		}
		for i, u := range o.units {
			if _, ok := v.units[u]; !ok {
				bad(fmt.Sprintf("owner.rotation.units[%d]", i), "%q is not a unit of any node of the topology", u)
			}
			if slices.Index(o.units, u) < i {
				bad(fmt.Sprintf("owner.rotation.units[%d]", i), "%q listed twice", u)
			}
		}
		start, err := time.Parse("2006-01", fo.Rotation.Start)
		if err != nil {
			bad("owner.rotation.start", "%q is not a month written YYYY-MM", fo.Rotation.Start)
		} else {
			o.start = monthIndex(start.Year(), start.Month())
		}
		return o, errs
	default:
		tier, err := topology.ParseTier(fo.Locality)
		if err != nil {
			bad("owner.locality", "%v", err)
		}
		return owner{kind: ownerLocality, tier: tier}, errs
	}
}

// monthIndex numbers months consecutively: year*12 + month-1.
func monthIndex(year int, month time.Month) int { return year*12 + int(month) - 1 }

// checkClass accepts "*", a 2-digit major, or major+minor (4 or 5 digits).
func checkClass(cl string) error {
	switch {
	case cl == "*":
		return nil
	case !allDigits(cl):
		return fmt.Errorf("%q is not a class code: want \"*\", a 2-digit major or a 4- or 5-digit major+minor", cl)
	case len(cl) != 2 && len(cl) != 4 && len(cl) != 5:
		return fmt.Errorf("%q has %d digits: want a 2-digit major or a 4- or 5-digit major+minor", cl, len(cl))
	case cl[:2] == "00":
		return fmt.Errorf("%q: major class 00 does not exist", cl)
	}
	return nil
}

// covers reports whether class pattern a matches every code that b does.
func covers(a, b string) bool {
	switch {
	case a == "*":
		return true
	case b == "*":
		return false
	case len(a) == 2:
		return strings.HasPrefix(b, a)
	}
	return a == b
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
