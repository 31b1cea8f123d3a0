package geo

import (
	"github.com/paulmach/orb"
	"github.com/paulmach/orb/geojson"
)

// Level is what a feature of a geometry answer stands for.
type Level int

// The levels: a grid, or a jurisdiction as the union of its grids.
const (
	LevelGrid Level = iota
	LevelCommunity
	LevelStreet
	LevelDistrict
	LevelCity
)

// prefixLen is the length of a jurisdiction's prefix of grid codes.
func (l Level) prefixLen() int {
	switch l {
	case LevelCommunity:
		return 12
	case LevelStreet:
		return 9
	case LevelDistrict:
		return 6
	case LevelCity:
		return 4
	}
	return 15
}

func (l Level) String() string {
	return [...]string{"grid", "community", "street", "district", "city"}[l]
}

// ParseLevel reads grid, community, street, district or city ("" is grid).
func ParseLevel(s string) (Level, bool) {
	switch s {
	case "", "grid":
		return LevelGrid, true
	case "community":
		return LevelCommunity, true
	case "street":
		return LevelStreet, true
	case "district":
		return LevelDistrict, true
	case "city":
		return LevelCity, true
	}
	return 0, false
}

// buildAreas computes every jurisdiction's union of grids and collects the
// names the layer gives them.
func (r *Register) buildAreas() {
	r.areas = map[string]orb.MultiPolygon{}
	for _, l := range []Level{LevelCommunity, LevelStreet, LevelDistrict, LevelCity} {
		n := l.prefixLen()
		groups := map[string][]orb.MultiPolygon{}
		var keys []string
		for _, g := range r.grids {
			k := g.Code[:n]
			if _, ok := groups[k]; !ok {
				keys = append(keys, k)
				if name := g.jurisdictionName(l); name != "" {
					r.names[k] = name
				}
			}
			groups[k] = append(groups[k], g.Shape)
		}
		for _, k := range keys {
			r.areas[k] = Union(groups[k])
		}
	}
}

func (g Grid) jurisdictionName(l Level) string {
	switch l {
	case LevelCommunity:
		return g.Community
	case LevelStreet:
		return g.Street
	case LevelDistrict:
		return g.District
	case LevelCity:
		return g.City
	}
	return g.Name
}

// Area returns the union of the grids under a jurisdiction prefix of grid
// codes (a community's 12 digits, a street's 9, a district's 6, the
// city's 4), or false when the register has no grid there.
func (r *Register) Area(prefix string) (orb.MultiPolygon, bool) {
	a, ok := r.areas[prefix]
	return a, ok
}

// Name returns the name the layer gives a jurisdiction prefix ("" if none).
func (r *Register) Name(prefix string) string { return r.names[prefix] }

// Features returns the geometry under a prefix of grid codes ("" for the
// whole register) at a level, as GeoJSON: each grid with its code and
// names (LevelGrid), or each jurisdiction of that level as the union of
// its grids, with its code, level, name and number of grids. A level
// coarser than the prefix answers the prefix's own area.
func (r *Register) Features(prefix string, l Level) *geojson.FeatureCollection {
	fc := geojson.NewFeatureCollection()
	if l == LevelGrid {
		for _, g := range r.Grids(prefix) {
			f := geojson.NewFeature(geometry(g.Shape))
			f.ID = g.Code
			f.Properties = geojson.Properties{"grid_code": g.Code, "name": g.Name, "level": "grid"}
			for k, v := range map[string]string{"community": g.Community, "street": g.Street, "district": g.District, "city": g.City} {
				if v != "" {
					f.Properties[k] = v
				}
			}
			fc.Append(f)
		}
		return fc
	}
	n := l.prefixLen()
	if len(prefix) > n {
		n = len(prefix)
	}
	var last string
	for _, g := range r.Grids(prefix) {
		k := g.Code[:n]
		if k == last {
			continue
		}
		last = k
		area, ok := r.areas[k]
		if !ok {
			continue
		}
		f := geojson.NewFeature(geometry(area))
		f.ID = k
		f.Properties = geojson.Properties{"code": k, "level": levelOfLen(n).String(), "grids": len(r.Grids(k))}
		if name := r.names[k]; name != "" {
			f.Properties["name"] = name
		}
		fc.Append(f)
	}
	return fc
}

func levelOfLen(n int) Level {
	for _, l := range []Level{LevelCity, LevelDistrict, LevelStreet, LevelCommunity} {
		if l.prefixLen() == n {
			return l
		}
	}
	return LevelGrid
}

// geometry writes a one-part MultiPolygon as the Polygon it is.
func geometry(mp orb.MultiPolygon) orb.Geometry {
	if len(mp) == 1 {
		return mp[0]
	}
	return mp
}
