package ownership

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	cityhub "github.com/cityhub/cityhub"
	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/catalogue"
)

// ErrInvalidCatalogue is wrapped by every error of Parse.
var ErrInvalidCatalogue = errors.New("invalid responsibility catalogue")

// Query is a problem whose owner is asked for.
type Query struct {
	Kind         pb.Kind
	Major, Minor string
	Grid         string    // 15 digits
	ComponentID  string    // optional
	At           time.Time // when (the city's local time): monthly rotations use its year and month
}

// Catalogue is a parsed responsibility catalogue checked against one
// topology. It is immutable and safe for concurrent use.
type Catalogue struct {
	version, name string
	rules         []*rule // by id
	index         map[indexKey][]*rule
	gridSets      map[string]map[string]struct{}
	components    map[string]Component
	view          *view
	classNames    map[classKey]string
}

// indexKey buckets rules by kind and class pattern ("0401", "04" or "*").
type indexKey struct {
	kind  pb.Kind
	class string
}

type classKey struct {
	kind  pb.Kind
	class string // major+minor
}

// Parse reads the rules YAML and the component register CSV and checks
// them against the topology: every unit named is hosted by a node of topo,
// every node and prefix exists, every grid lies in the city, rule ids and
// component ids are unique, codes are well formed. All problems found are
// reported together; each names the rule id (or grid set, or CSV line) and
// the field, and the whole wraps ErrInvalidCatalogue. An empty components
// is an empty register.
func Parse(rules, components []byte, topo *topology.Topology) (*Catalogue, error) {
	if topo == nil {
		return nil, fmt.Errorf("%w: no topology", ErrInvalidCatalogue)
	}
	v := newView(topo)
	f, rs, sets, errs := parseRules(rules, v)
	comps, cerrs := parseComponents(components, v)
	errs = append(errs, cerrs...)
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCatalogue, errors.Join(errs...))
	}
	c := &Catalogue{
		version:    f.Version,
		name:       f.Name,
		rules:      rs,
		index:      map[indexKey][]*rule{},
		gridSets:   sets,
		components: comps,
		view:       v,
		classNames: defaultClassNames(),
	}
	slices.SortFunc(c.rules, func(a, b *rule) int { return strings.Compare(a.id, b.id) })
	for _, r := range c.rules {
		for _, cl := range r.classes {
			k := indexKey{r.kind, cl}
			c.index[k] = append(c.index[k], r)
		}
	}
	for _, list := range c.index {
		slices.SortStableFunc(list, byRank)
	}
	return c, nil
}

// byRank orders rules by priority, highest first, then by id.
func byRank(a, b *rule) int {
	if a.priority != b.priority {
		return b.priority - a.priority
	}
	return strings.Compare(a.id, b.id)
}

// Sample parses the sample city's catalogue (testdata/city:
// responsibility.yaml and components.csv) against topo, normally the sample
// city's topology (testdata/city/federation.yaml).
func Sample(topo *topology.Topology) (*Catalogue, error) {
	return Parse(cityhub.SampleFile("responsibility.yaml"), cityhub.SampleFile("components.csv"), topo)
}

// defaultClassNames names the classes of the built-in class catalogue, for
// explanations only.
func defaultClassNames() map[classKey]string {
	out := map[classKey]string{}
	for _, cl := range catalogue.Default().Classes() {
		out[classKey{cl.Kind, cl.Code()}] = cl.Name
	}
	return out
}

// Version returns the catalogue's version, e.g. "2026.1".
func (c *Catalogue) Version() string { return c.version }

// Name returns the catalogue's descriptive name.
func (c *Catalogue) Name() string { return c.name }

// Component returns the register entry of a component id.
func (c *Catalogue) Component(id string) (Component, bool) {
	comp, ok := c.components[id]
	return comp, ok
}

// Len returns the number of rules and of registered components.
func (c *Catalogue) Len() (rules, components int) { return len(c.rules), len(c.components) }

// GridSet returns the grid codes of a named grid set, sorted, or nil when
// the catalogue defines no such set.
func (c *Catalogue) GridSet(name string) []string {
	set, ok := c.gridSets[name]
	if !ok {
		return nil
	}
	out := make([]string, 0, len(set))
	for g := range set {
		out = append(out, g)
	}
	slices.Sort(out)
	return out
}

// candidate is a matching rule with the unit it names.
type candidate struct {
	r      *rule
	unit   string
	detail string // how the owner was found, for the explanation
}

// Resolve decides the owner of a problem. It never returns nil. The rules
// that match the query's kind, class, place and component are ranked by
// priority; the best one names the unit. Two or more matching rules at the
// top priority that name different units, no matching rule, or a malformed
// query give a disputed answer (Disputed, Dispute set, Unit and Rule empty)
// for joint review. Resolve reads no clock: the same catalogue and query
// always give the same answer.
func (c *Catalogue) Resolve(q Query) *pb.Ownership {
	what := c.describe(q)
	path, depth := c.view.path(q.Grid)
	if reason := c.checkQuery(q, depth); reason != "" {
		return c.disputed(fmt.Sprintf("cannot resolve %s: %s", what, reason))
	}
	comp, registered := c.components[q.ComponentID]
	registered = registered && q.Kind == pb.Kind_KIND_COMPONENT && comp.Major == q.Major && comp.Minor == q.Minor

	var top []candidate
	best := -1
	for _, key := range [...]string{q.Major + q.Minor, q.Major, "*"} {
		for _, r := range c.index[indexKey{q.Kind, key}] {
			if r.priority < best {
				break // the list is ranked: nothing further can win
			}
			if !r.applies(q, registered) {
				continue
			}
			unit, detail, ok := c.ownerOf(r, q, comp, path, depth)
			if !ok {
				continue
			}
			if r.priority > best {
				best, top = r.priority, top[:0]
			}
			top = append(top, candidate{r, unit, detail})
		}
	}
	if len(top) == 0 {
		return c.disputed(fmt.Sprintf("no rule covers %s", what))
	}
	slices.SortFunc(top, func(a, b candidate) int { return strings.Compare(a.r.id, b.r.id) })
	first := top[0]
	for _, other := range top[1:] {
		if other.unit != first.unit {
			return c.disputed(c.disagreement(what, best, top))
		}
	}
	u := c.view.units[first.unit]
	explanation := fmt.Sprintf("rule %s (priority %d): %s%s%s → %s at %s",
		first.r.id, first.r.priority, what, scopeText(first.r), first.detail, unitText(u), u.node)
	if len(top) > 1 {
		ids := make([]string, 0, len(top)-1)
		for _, o := range top[1:] {
			ids = append(ids, o.r.id)
		}
		explanation += fmt.Sprintf("; rule %s agrees", strings.Join(ids, ", "))
	}
	return &pb.Ownership{
		Unit:             u.id,
		Tier:             u.tier,
		Node:             u.node,
		Rule:             first.r.id,
		CatalogueVersion: c.version,
		Explanation:      explanation,
	}
}

// checkQuery returns why q cannot be resolved, or "".
func (c *Catalogue) checkQuery(q Query, depth int) string {
	switch {
	case q.Kind != pb.Kind_KIND_COMPONENT && q.Kind != pb.Kind_KIND_EVENT:
		return fmt.Sprintf("kind %s is not KIND_COMPONENT or KIND_EVENT", q.Kind)
	case len(q.Major) != 2 || !allDigits(q.Major):
		return fmt.Sprintf("major class %q must be 2 digits", q.Major)
	case (len(q.Minor) != 2 && len(q.Minor) != 3) || !allDigits(q.Minor):
		return fmt.Sprintf("minor class %q must be 2 or 3 digits", q.Minor)
	case depth == 0:
		return c.view.checkGrid(q.Grid).Error()
	}
	return ""
}

// applies reports whether r's place and component conditions hold for q
// (kind and class are matched by the index).
func (r *rule) applies(q Query, registered bool) bool {
	if r.prefix != "" && !strings.HasPrefix(q.Grid, r.prefix) {
		return false
	}
	if r.grids != nil {
		if _, ok := r.grids[q.Grid]; !ok {
			return false
		}
	}
	return !r.registered || registered
}

// ownerOf returns the unit r names for q, and how it was found.
func (c *Catalogue) ownerOf(r *rule, q Query, comp Component, path [4]*nodeInfo, depth int) (unit, detail string, ok bool) {
	o := &r.owner
	switch o.kind {
	case ownerUnit:
		return o.unit, "", true
	case ownerComponent:
		return comp.Department(o.dept), ", its " + o.dept + " unit in the register", true
	case ownerRotation:
		month := monthIndex(q.At.Year(), q.At.Month())
		turn := 0
		if month > o.start {
			turn = (month - o.start) % len(o.units)
		}
		return o.units[turn], fmt.Sprintf(", monthly rotation since %s: %04d-%02d is turn %d of %d",
			o.startStr, q.At.Year(), int(q.At.Month()), turn+1, len(o.units)), true
	case ownerLocality:
		// The node of the tier, or the deepest above it; up past nodes
		// without units.
		i := min(int(o.tier), depth) - 1
		for ; i >= 0 && path[i].firstUnit == ""; i-- {
		}
		if i < 0 {
			return "", "", false
		}
		detail = fmt.Sprintf(", 属地兜底 to the %s", o.tier)
		if got := path[i].tier; got != o.tier {
			detail = fmt.Sprintf(", 属地兜底 to the %s (no %s node with units here)", got, o.tier)
		}
		return path[i].firstUnit, detail, true
	}
	return "", "", false
}

// describe renders the query, e.g. "event 04/01 路面塌陷 in grid 320505001001001".
func (c *Catalogue) describe(q Query) string {
	var b strings.Builder
	switch q.Kind {
	case pb.Kind_KIND_COMPONENT:
		b.WriteString("component ")
	case pb.Kind_KIND_EVENT:
		b.WriteString("event ")
	default:
		b.WriteString(q.Kind.String() + " ")
	}
	b.WriteString(q.Major + "/" + q.Minor)
	if name := c.classNames[classKey{q.Kind, q.Major + q.Minor}]; name != "" {
		b.WriteString(" " + name)
	}
	if q.ComponentID != "" {
		b.WriteString(" " + q.ComponentID)
	}
	b.WriteString(" in grid " + q.Grid)
	return b.String()
}

// scopeText renders where a rule applies.
func scopeText(r *rule) string {
	switch {
	case r.gridSet != "" && r.prefix != "":
		return fmt.Sprintf(", grid set %s within %s", r.gridSet, r.scopeNode)
	case r.gridSet != "":
		return ", grid set " + r.gridSet
	case r.prefix != "":
		return ", within " + r.scopeNode
	}
	return ""
}

func unitText(u unitInfo) string {
	if u.name == "" {
		return u.id
	}
	return u.id + " " + u.name
}

// disagreement describes equally ranked rules naming different units.
func (c *Catalogue) disagreement(what string, priority int, top []candidate) string {
	parts := make([]string, len(top))
	for i, t := range top {
		parts[i] = fmt.Sprintf("%s → %s", t.r.id, unitText(c.view.units[t.unit]))
	}
	return fmt.Sprintf("rules disagree at priority %d on %s: %s; 责任主体唯一 requires one owner: joint review (疑难案件会诊) decides",
		priority, what, strings.Join(parts, "; "))
}

func (c *Catalogue) disputed(why string) *pb.Ownership {
	return &pb.Ownership{
		CatalogueVersion: c.version,
		Explanation:      "disputed: " + why,
		Disputed:         true,
		Dispute:          why,
	}
}
