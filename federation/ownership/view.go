package ownership

import (
	"fmt"

	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// nodeInfo is what Resolve needs of a topology node, copied once so that
// Resolve never clones topology nodes.
type nodeInfo struct {
	name         string
	tier         topology.Tier
	jurisdiction string
	prefix       string // grid codes inside start with this (the city: 4 digits)
	parent       string
	firstUnit    string // "" when the node has no units
}

// unitInfo is a unit with its hosting node.
type unitInfo struct {
	id, name string
	node     string
	tier     pb.Tier
}

// view indexes the topology for parsing and resolving.
type view struct {
	root           *nodeInfo
	byName         map[string]*nodeInfo
	byJurisdiction map[string]*nodeInfo // jurisdiction as written (the city: 6 digits)
	byPrefix       map[string]*nodeInfo // grid prefix (the city: 4 digits)
	units          map[string]unitInfo
}

func newView(topo *topology.Topology) *view {
	v := &view{
		byName:         map[string]*nodeInfo{},
		byJurisdiction: map[string]*nodeInfo{},
		byPrefix:       map[string]*nodeInfo{},
		units:          map[string]unitInfo{},
	}
	for _, n := range topo.Nodes() {
		ni := &nodeInfo{name: n.Name, tier: n.Tier, jurisdiction: n.Jurisdiction, prefix: n.Jurisdiction, parent: n.Parent}
		if n.Tier == topology.City {
			ni.prefix = n.Jurisdiction[:4]
			v.root = ni
		}
		if len(n.Units) > 0 {
			ni.firstUnit = n.Units[0].ID
		}
		v.byName[n.Name] = ni
		v.byJurisdiction[n.Jurisdiction] = ni
		v.byPrefix[ni.prefix] = ni
		for _, u := range n.Units {
			v.units[u.ID] = unitInfo{id: u.ID, name: u.Name, node: n.Name, tier: pb.Tier(n.Tier)}
		}
	}
	return v
}

// tierLens are the grid prefix lengths of the tiers below the city.
var tierLens = [...]int{6, 9, 12}

// path returns the configured nodes from the city down whose jurisdiction
// prefixes the grid (as topology.PathTo, without allocating), and how many
// there are; 0 when the grid is not a grid code of the city.
func (v *view) path(grid string) (out [4]*nodeInfo, n int) {
	if len(grid) != topology.GridLen || !allDigits(grid) || v.root == nil || grid[:4] != v.root.prefix {
		return out, 0
	}
	out[0], n = v.root, 1
	for _, l := range tierLens {
		ni, ok := v.byPrefix[grid[:l]]
		if !ok || ni.parent != out[n-1].name {
			break
		}
		out[n] = ni
		n++
	}
	return out, n
}

// checkGrid reports why g is not a grid code inside the city.
func (v *view) checkGrid(g string) error {
	if len(g) != topology.GridLen || !allDigits(g) {
		return fmt.Errorf("grid code %q must be %d digits", g, topology.GridLen)
	}
	if _, n := v.path(g); n == 0 {
		return fmt.Errorf("grid code %s lies outside city %s (%s)", g, v.root.name, v.root.jurisdiction)
	}
	return nil
}
