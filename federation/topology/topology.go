// Package topology describes the federation tree of cityhub nodes — one node
// (a Raft group) per city, district, street and community platform — and
// routes by grid code, unit id and node name.
//
// A unit grid code (单元网格, 15 digits) is a 6-digit district code, a 3-digit
// street, a 3-digit community and a 3-digit grid number, so it names the whole
// chain city→district→street→community. A node's jurisdiction is the prefix of
// grid codes it covers: the city's first 4 digits, a district's 6, a street's
// 9 and a community's 12. Not every tier has to be configured everywhere: a
// grid whose street has no node of its own is held by its district.
//
// A Topology is immutable after New and safe for concurrent use.
package topology

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// GridLen is the number of digits of a unit grid code.
const GridLen = 15

// Unit is a department or office hosted by a node, e.g. a district's
// sanitation department (环卫). A unit id routes to exactly one node.
type Unit struct {
	ID   string
	Name string
	Tier Tier // the tier of the hosting node; filled in by New when zero
}

// Node is one cityhub node: the Raft group serving one platform.
type Node struct {
	Name string // e.g. "city", "d-320505"
	Tier Tier
	// Jurisdiction is the code the node covers. City: 6 digits whose first
	// 4 prefix every district (e.g. 320500); district: 6 digits; street: 9;
	// community: 12.
	Jurisdiction string
	Parent       string   // name of the parent node; "" only for the city
	Replicas     []string // gRPC addresses (host:port) of every replica of the group
	Units        []Unit
}

// prefix returns the part of the jurisdiction that grid codes inside it start
// with.
func (n Node) prefix() string {
	if n.Tier == City && len(n.Jurisdiction) >= 4 {
		return n.Jurisdiction[:4]
	}
	return n.Jurisdiction
}

func (n Node) clone() Node {
	n.Replicas = slices.Clone(n.Replicas)
	n.Units = slices.Clone(n.Units)
	return n
}

// Topology is a validated tree of nodes with lookup indexes.
type Topology struct {
	root     string
	nodes    map[string]Node     // by name
	order    []string            // names in tree order (depth first, children by jurisdiction)
	children map[string][]string // parent name -> child names, sorted by jurisdiction
	byCode   map[string]string   // jurisdiction prefix -> node name (city under its 4-digit prefix)
	units    map[string]string   // unit id -> node name
}

// New validates nodes and builds a Topology. Every problem found is reported;
// each error names the node it concerns, and they are joined with errors.Join.
func New(nodes []Node) (*Topology, error) {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("node %q: %s", name, fmt.Sprintf(format, args...)))
	}

	t := &Topology{
		nodes:    make(map[string]Node, len(nodes)),
		children: make(map[string][]string),
		byCode:   make(map[string]string),
		units:    make(map[string]string),
	}
	if len(nodes) == 0 {
		return nil, errors.New("topology: no nodes")
	}

	// Pass 1: per-node checks and the name index.
	replicaOwner := make(map[string]string)
	var roots, accepted []string
	for i, in := range nodes {
		n := in.clone()
		if n.Name == "" {
			errs = append(errs, fmt.Errorf("node #%d (jurisdiction %q): empty name", i, n.Jurisdiction))
			continue
		}
		if _, dup := t.nodes[n.Name]; dup {
			bad(n.Name, "duplicate node name")
			continue
		}
		accepted = append(accepted, n.Name)

		if !n.Tier.Valid() {
			bad(n.Name, "invalid tier %d", int(n.Tier))
		} else {
			if want := n.Tier.CodeLen(); len(n.Jurisdiction) != want || !allDigits(n.Jurisdiction) {
				bad(n.Name, "%s jurisdiction %q must be %d digits", n.Tier, n.Jurisdiction, want)
			}
			if n.Tier == City {
				roots = append(roots, n.Name)
				if n.Parent != "" {
					bad(n.Name, "city node must have no parent, has %q", n.Parent)
				}
			} else if n.Parent == "" {
				bad(n.Name, "%s node has no parent", n.Tier)
			}
		}

		if len(n.Replicas) == 0 {
			bad(n.Name, "no replicas")
		}
		for _, r := range n.Replicas {
			if err := checkAddr(r); err != nil {
				bad(n.Name, "replica %q: %v", r, err)
				continue
			}
			if other, dup := replicaOwner[r]; dup {
				if other == n.Name {
					bad(n.Name, "replica %q listed twice", r)
				} else {
					bad(n.Name, "replica %q already belongs to node %q", r, other)
				}
				continue
			}
			replicaOwner[r] = n.Name
		}

		for i, u := range n.Units {
			switch {
			case u.ID == "":
				bad(n.Name, "unit %d (%q) has an empty id", i, u.Name)
				continue
			case u.Tier == 0:
				n.Units[i].Tier = n.Tier
			case u.Tier != n.Tier:
				bad(n.Name, "unit %q has tier %s, node is %s", u.ID, u.Tier, n.Tier)
			}
			if other, dup := t.units[u.ID]; dup {
				if other == n.Name {
					bad(n.Name, "unit %q listed twice", u.ID)
				} else {
					bad(n.Name, "unit %q already hosted by node %q", u.ID, other)
				}
				continue
			}
			t.units[u.ID] = n.Name
		}
		t.nodes[n.Name] = n
	}
	switch len(roots) {
	case 0:
		errs = append(errs, errors.New("topology: no city node (exactly one node must have tier city)"))
	case 1:
		t.root = roots[0]
	default:
		for _, r := range roots[1:] {
			bad(r, "second city node (city %q already defined); exactly one city root is allowed", roots[0])
		}
	}

	// Pass 2: parent links, nesting of jurisdictions, overlaps, cycles.
	for _, name := range accepted {
		n := t.nodes[name]
		if !n.Tier.Valid() || n.Parent == "" {
			continue
		}
		p, ok := t.nodes[n.Parent]
		if !ok {
			bad(n.Name, "unknown parent %q", n.Parent)
			continue
		}
		if p.Name == n.Name {
			bad(n.Name, "is its own parent")
			continue
		}
		if p.Tier != n.Tier-1 {
			bad(n.Name, "%s node's parent %q is a %s; want a %s", n.Tier, p.Name, p.Tier, n.Tier-1)
			continue
		}
		if !validCode(p) || !validCode(n) {
			continue // already reported
		}
		if !strings.HasPrefix(n.Jurisdiction, p.prefix()) {
			bad(n.Name, "jurisdiction %s lies outside parent %q (%s): must start with %s",
				n.Jurisdiction, p.Name, p.Jurisdiction, p.prefix())
		}
	}
	for _, name := range accepted {
		n := t.nodes[name]
		if !validCode(n) {
			continue
		}
		// Jurisdictions at one tier have one length, so overlap means equality.
		key := n.prefix()
		if other, dup := t.byCode[key]; dup && other != n.Name {
			bad(n.Name, "%s jurisdiction %s overlaps node %q", n.Tier, n.Jurisdiction, other)
			continue
		}
		t.byCode[key] = n.Name
	}
	for _, name := range accepted {
		seen := map[string]bool{name: true}
		for cur := t.nodes[name].Parent; cur != ""; cur = t.nodes[cur].Parent {
			if seen[cur] {
				bad(name, "parent chain has a cycle through %q", cur)
				break
			}
			seen[cur] = true
			if _, ok := t.nodes[cur]; !ok {
				break // unknown parent, reported above
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	for _, name := range accepted {
		if p := t.nodes[name].Parent; p != "" {
			t.children[p] = append(t.children[p], name)
		}
	}
	for _, kids := range t.children {
		slices.SortFunc(kids, func(a, b string) int {
			return strings.Compare(t.nodes[a].Jurisdiction, t.nodes[b].Jurisdiction)
		})
	}
	var walk func(string)
	walk = func(name string) {
		t.order = append(t.order, name)
		for _, c := range t.children[name] {
			walk(c)
		}
	}
	walk(t.root)
	return t, nil
}

func validCode(n Node) bool {
	return n.Tier.Valid() && len(n.Jurisdiction) == n.Tier.CodeLen() && allDigits(n.Jurisdiction)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port")
	}
	if host == "" {
		return errors.New("empty host")
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

// yamlFile is the on-disk form read by Load.
type yamlFile struct {
	Nodes []struct {
		Name         string   `yaml:"name"`
		Tier         string   `yaml:"tier"`
		Jurisdiction string   `yaml:"jurisdiction"`
		Parent       string   `yaml:"parent"`
		Replicas     []string `yaml:"replicas"`
		Units        []struct {
			ID   string `yaml:"id"`
			Name string `yaml:"name"`
		} `yaml:"units"`
	} `yaml:"nodes"`
}

// Load parses a YAML topology and validates it with New:
//
//	nodes:
//	  - name: city
//	    tier: city
//	    jurisdiction: "320500"
//	    replicas: ["127.0.0.1:7001"]
//	    units: [{id: city-umb, name: 市城管局}]
//
// Unknown fields are rejected. Quote jurisdiction codes.
func Load(data []byte) (*Topology, error) {
	var f yamlFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("topology: parse yaml: %w", err)
	}
	nodes := make([]Node, 0, len(f.Nodes))
	var errs []error
	for _, yn := range f.Nodes {
		n := Node{
			Name:         yn.Name,
			Jurisdiction: yn.Jurisdiction,
			Parent:       yn.Parent,
			Replicas:     yn.Replicas,
		}
		tier, err := ParseTier(yn.Tier)
		if err != nil {
			errs = append(errs, fmt.Errorf("node %q: %w", yn.Name, err))
			continue
		}
		n.Tier = tier
		for _, u := range yn.Units {
			n.Units = append(n.Units, Unit{ID: u.ID, Name: u.Name})
		}
		nodes = append(nodes, n)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return New(nodes)
}

// Node returns the node with the given name.
func (t *Topology) Node(name string) (Node, bool) {
	n, ok := t.nodes[name]
	if !ok {
		return Node{}, false
	}
	return n.clone(), true
}

// Root returns the city node.
func (t *Topology) Root() Node { return t.nodes[t.root].clone() }

// Nodes returns every node in tree order: depth first from the city, children
// ordered by jurisdiction.
func (t *Topology) Nodes() []Node { return t.list(t.order) }

// Children returns the children of the named node ordered by jurisdiction,
// or nil for a leaf or an unknown name.
func (t *Topology) Children(name string) []Node { return t.list(t.children[name]) }

func (t *Topology) list(names []string) []Node {
	if len(names) == 0 {
		return nil
	}
	out := make([]Node, len(names))
	for i, n := range names {
		out[i] = t.nodes[n].clone()
	}
	return out
}

// PathTo returns the nodes from the city down to the deepest configured node
// whose jurisdiction prefixes the 15-digit grid code.
func (t *Topology) PathTo(grid string) ([]Node, error) {
	if len(grid) != GridLen || !allDigits(grid) {
		return nil, fmt.Errorf("topology: grid code %q must be %d digits", grid, GridLen)
	}
	root := t.nodes[t.root]
	if !strings.HasPrefix(grid, root.prefix()) {
		return nil, fmt.Errorf("topology: grid %s lies outside city %q (%s)", grid, root.Name, root.Jurisdiction)
	}
	path := []Node{root.clone()}
	cur := root.Name
	for _, tier := range []Tier{District, Street, Community} {
		name, ok := t.byCode[grid[:tier.CodeLen()]]
		if !ok || t.nodes[name].Parent != cur {
			break
		}
		path = append(path, t.nodes[name].clone())
		cur = name
	}
	return path, nil
}

// HolderForGrid returns the deepest configured node covering the grid code:
// the last node of PathTo.
func (t *Topology) HolderForGrid(grid string) (Node, error) {
	path, err := t.PathTo(grid)
	if err != nil {
		return Node{}, err
	}
	return path[len(path)-1], nil
}

// NodeOfUnit returns the node hosting the unit.
func (t *Topology) NodeOfUnit(unitID string) (Node, bool) {
	name, ok := t.units[unitID]
	if !ok {
		return Node{}, false
	}
	return t.nodes[name].clone(), true
}

// Ancestors returns the ancestors of the named node, parent first, ending with
// the city. It is empty for the city and nil for an unknown name.
func (t *Topology) Ancestors(name string) []Node {
	n, ok := t.nodes[name]
	if !ok {
		return nil
	}
	var out []Node
	for p := n.Parent; p != ""; p = t.nodes[p].Parent {
		out = append(out, t.nodes[p].clone())
	}
	return out
}

// Route returns the next hop from node `from` toward node `to` along the tree:
// the child of `from` on the way down when `to` lies below `from` (up is
// false), otherwise the parent of `from` (up is true). It fails for unknown
// nodes and when from equals to.
func (t *Topology) Route(from, to string) (next string, up bool, err error) {
	f, ok := t.nodes[from]
	if !ok {
		return "", false, fmt.Errorf("topology: route: unknown node %q", from)
	}
	if _, ok := t.nodes[to]; !ok {
		return "", false, fmt.Errorf("topology: route: unknown node %q", to)
	}
	if from == to {
		return "", false, fmt.Errorf("topology: route: node %q is already the destination", from)
	}
	// Walk up from `to`; if we meet `from`, the hop is down to the node just
	// below it.
	for cur := to; cur != ""; {
		p := t.nodes[cur].Parent
		if p == from {
			return cur, false, nil
		}
		cur = p
	}
	return f.Parent, true, nil
}
