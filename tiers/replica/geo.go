package replica

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/cityhub/cityhub/config"
	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/geo"
)

// grids is the node's grid register with the federation around it: which
// node holds a grid and which grids a node's area covers (api.Geo).
type grids struct {
	reg    *geo.Register
	topo   *topology.Topology // nil outside a federation
	self   string             // this node's name
	prefix string             // the grid codes this node covers
	jur    string             // this node's jurisdiction code
}

// loadGrids reads geo.grids; nil when it is not set (no geometry: reports
// need a grid code, and locating a point and the maps are refused). No
// layer is taken by default, not even the sample city's for a node of its
// area: the demo and the tests name it. A configured layer whose grids lie
// outside the federation's city is refused.
func loadGrids(cfg config.Config, topo *topology.Topology) (*grids, error) {
	g := &grids{topo: topo, self: cfg.Group(), prefix: gridPrefix(cfg.Node.Tier, cfg.Node.Jurisdiction), jur: cfg.Node.Jurisdiction}
	if topo != nil {
		g.self = cfg.Federation.Node
	}
	data, err := cfg.LoadGridsFile()
	if err != nil || data == nil {
		return nil, err
	}
	if g.reg, err = geo.Parse(data); err != nil {
		return nil, fmt.Errorf("geo.grids: %w", err)
	}
	if topo != nil {
		var errs []error
		for _, gr := range g.reg.Grids("") {
			if _, err := topo.PathTo(gr.Code); err != nil && len(errs) < 10 {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return nil, fmt.Errorf("geo.grids: grids outside the federation's city: %w", errors.Join(errs...))
		}
	}
	return g, nil
}

// Locate implements api.Geo.
func (g *grids) Locate(lat, lng float64) (*pb.LocateResponse, bool) {
	gr, ok := g.reg.Locate(lat, lng)
	if !ok {
		return nil, false
	}
	code := gr.Code
	resp := &pb.LocateResponse{GridCode: code, GridName: gr.Name, Lat: lat, Lng: lng}
	nodes := map[pb.Tier]string{}
	cityCode := code[:4] + "00"
	if g.topo != nil {
		path, err := g.topo.PathTo(code)
		if err == nil {
			for _, n := range path {
				nodes[pb.Tier(n.Tier)] = n.Name
			}
			resp.Node = path[len(path)-1].Name
		}
		cityCode = g.topo.Root().Jurisdiction
	} else if strings.HasPrefix(code, g.prefix) {
		resp.Node = g.self
		nodes[standaloneTier(len(g.jur), g.jur == cityCode)] = g.self
	}
	for _, j := range []struct {
		tier       pb.Tier
		code, name string
	}{
		{pb.Tier_TIER_COMMUNITY, code[:12], g.reg.Name(code[:12])},
		{pb.Tier_TIER_STREET, code[:9], g.reg.Name(code[:9])},
		{pb.Tier_TIER_DISTRICT, code[:6], g.reg.Name(code[:6])},
		{pb.Tier_TIER_CITY, cityCode, g.reg.Name(code[:4])},
	} {
		resp.Chain = append(resp.Chain, &pb.Jurisdiction{Tier: j.tier, Code: j.code, Name: j.name, Node: nodes[j.tier]})
	}
	return resp, true
}

// standaloneTier is the tier of a node outside a federation from its
// jurisdiction code.
func standaloneTier(n int, city bool) pb.Tier {
	switch {
	case city:
		return pb.Tier_TIER_CITY
	case n == 6:
		return pb.Tier_TIER_DISTRICT
	case n == 9:
		return pb.Tier_TIER_STREET
	case n == 12:
		return pb.Tier_TIER_COMMUNITY
	}
	return pb.Tier_TIER_UNSPECIFIED
}

// NodePrefix implements api.Geo.
func (g *grids) NodePrefix(name string) (string, bool) {
	if g.topo == nil {
		return g.prefix, name == g.self
	}
	n, ok := g.topo.Node(name)
	if !ok {
		return "", false
	}
	if n.Tier == topology.City {
		return n.Jurisdiction[:4], true
	}
	return n.Jurisdiction, true
}

// Features implements api.Geo.
func (g *grids) Features(prefix string, level geo.Level) ([]byte, int, error) {
	fc := g.reg.Features(prefix, level)
	b, err := json.Marshal(fc)
	if err != nil {
		return nil, 0, fmt.Errorf("grid geometry: %w", err)
	}
	return b, len(fc.Features), nil
}

// AreaName implements api.AreaNamer: the grid register's name of a grid
// or of a jurisdiction (its grid code prefix; the city's is 4 digits).
func (g *grids) AreaName(code string) string {
	if len(code) == 15 {
		if gr, ok := g.reg.Grid(code); ok {
			return gr.Name
		}
		return ""
	}
	return g.reg.Name(code)
}

// AreaNode implements api.AreaNamer: the federation node whose
// jurisdiction is the area ("" when none is).
func (g *grids) AreaNode(code string) string {
	if g.topo == nil {
		if code == g.prefix {
			return g.self
		}
		return ""
	}
	if root := g.topo.Root(); len(code) == 4 && strings.HasPrefix(root.Jurisdiction, code) {
		return root.Name
	}
	if name, ok := g.topo.NameByJurisdiction(code); ok {
		return name
	}
	return ""
}
