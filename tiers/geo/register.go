package geo

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/golang/geo/s2"
	"github.com/paulmach/orb"
	"github.com/paulmach/orb/geojson"

	"github.com/cityhub/cityhub/tiers/catalogue"
)

// ErrBadGeometry: a grid layer cannot be read or breaks the rules.
var ErrBadGeometry = errors.New("bad grid geometry")

// GridCodeProperty is the feature property that carries a grid's 15-digit
// code. Name properties are optional: name (the grid's), community,
// street, district and city.
const GridCodeProperty = "grid_code"

// Grid is one unit grid of the register: its code, names and polygon
// (WGS-84, longitude first as in GeoJSON).
type Grid struct {
	Code string
	Name string
	// Names of the jurisdictions the grid lies in, as the layer gives
	// them (empty when it does not).
	Community, Street, District, City string
	// Shape is the grid's area: one polygon, or several parts.
	Shape orb.MultiPolygon
	Bound orb.Bound
}

// Register is a city's grid layer with its spatial index and the areas of
// its jurisdictions. Immutable after Parse.
type Register struct {
	grids  []Grid         // sorted by code
	byCode map[string]int // code -> index in grids
	index  *s2.ShapeIndex
	// areas: jurisdiction prefix (4, 6, 9 or 12 digits) -> its grids' union.
	areas map[string]orb.MultiPolygon
	names map[string]string // jurisdiction prefix -> name, when the layer names it
}

// gridShape is a grid's polygon in the S2 index, knowing its grid.
type gridShape struct {
	*s2.Polygon
	grid int
}

// Parse reads a GeoJSON FeatureCollection of grid polygons (Polygon or
// MultiPolygon features, WGS-84/CGCS2000 longitude and latitude, the grid
// code in the grid_code property), validates it, indexes it and computes
// the union of each community's, street's, district's and the city's
// grids. Every problem found is reported, naming the feature.
func Parse(data []byte) (*Register, error) {
	fc, err := geojson.UnmarshalFeatureCollection(data)
	if err != nil {
		return nil, fmt.Errorf("%w: not a GeoJSON FeatureCollection: %w", ErrBadGeometry, err)
	}
	var errs []error
	bad := func(i int, code, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: feature %d (grid %q): %s", ErrBadGeometry, i, code, fmt.Sprintf(format, args...)))
	}
	r := &Register{byCode: map[string]int{}, names: map[string]string{}}
	for i, f := range fc.Features {
		code := strings.TrimSpace(str(f.Properties, GridCodeProperty))
		if code == "" {
			// A numeric property (some layers store codes as numbers)
			// would lose digits past 2^53: refuse rather than guess.
			bad(i, "", "property %s is required: the 15-digit grid code as a string", GridCodeProperty)
			continue
		}
		if err := catalogue.ValidateGridCode(code); err != nil {
			bad(i, code, "%v", err)
			continue
		}
		if _, dup := r.byCode[code]; dup {
			bad(i, code, "grid code listed twice")
			continue
		}
		shape, err := toMultiPolygon(f.Geometry)
		if err != nil {
			bad(i, code, "%v", err)
			continue
		}
		g := Grid{
			Code: code, Name: str(f.Properties, "name"),
			Community: str(f.Properties, "community"), Street: str(f.Properties, "street"),
			District: str(f.Properties, "district"), City: str(f.Properties, "city"),
			Shape: shape, Bound: shape.Bound(),
		}
		r.byCode[code] = len(r.grids)
		r.grids = append(r.grids, g)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(r.grids) == 0 {
		return nil, fmt.Errorf("%w: no grids", ErrBadGeometry)
	}
	slices.SortFunc(r.grids, func(a, b Grid) int { return strings.Compare(a.Code, b.Code) })
	for i, g := range r.grids {
		r.byCode[g.Code] = i
	}
	if err := r.buildIndex(); err != nil {
		return nil, err
	}
	r.buildAreas()
	return r, nil
}

// toMultiPolygon checks a feature's geometry: polygons of closed rings of
// at least three distinct positions with valid coordinates. Unclosed rings
// are closed.
func toMultiPolygon(g orb.Geometry) (orb.MultiPolygon, error) {
	var mp orb.MultiPolygon
	switch v := g.(type) {
	case orb.Polygon:
		mp = orb.MultiPolygon{v}
	case orb.MultiPolygon:
		mp = v
	case nil:
		return nil, errors.New("no geometry")
	default:
		return nil, fmt.Errorf("geometry is a %s: want Polygon or MultiPolygon", g.GeoJSONType())
	}
	if len(mp) == 0 {
		return nil, errors.New("empty geometry")
	}
	out := make(orb.MultiPolygon, 0, len(mp))
	for pi, poly := range mp {
		if len(poly) == 0 {
			return nil, fmt.Errorf("polygon %d has no rings", pi)
		}
		np := make(orb.Polygon, 0, len(poly))
		for ri, ring := range poly {
			rr := make(orb.Ring, 0, len(ring)+1)
			for _, p := range ring {
				if math.IsNaN(p[0]) || math.IsNaN(p[1]) || p[0] < -180 || p[0] > 180 || p[1] < -90 || p[1] > 90 {
					return nil, fmt.Errorf("polygon %d ring %d: position %v is not a longitude, latitude", pi, ri, p)
				}
				if len(rr) > 0 && rr[len(rr)-1] == p {
					continue // repeated position
				}
				rr = append(rr, p)
			}
			if len(rr) > 1 && rr[0] == rr[len(rr)-1] {
				rr = rr[:len(rr)-1]
			}
			if len(rr) < 3 {
				return nil, fmt.Errorf("polygon %d ring %d has fewer than 3 distinct positions", pi, ri)
			}
			if i, j, ok := selfIntersection(rr); ok {
				return nil, fmt.Errorf("polygon %d ring %d crosses itself (edges %d and %d)", pi, ri, i, j)
			}
			rr = append(rr, rr[0]) // closed, as GeoJSON wants
			np = append(np, rr)
		}
		out = append(out, np)
	}
	return out, nil
}

// buildIndex puts every grid into an S2 shape index: one polygon per grid
// whose loops are its rings (odd nesting depth is inside, so parts and
// holes need no orientation). Loops S2 finds invalid (self-intersecting
// rings) are refused.
func (r *Register) buildIndex() error {
	r.index = s2.NewShapeIndex()
	var errs []error
	for i, g := range r.grids {
		var loops []*s2.Loop
		for _, poly := range g.Shape {
			for _, ring := range poly {
				pts := make([]s2.Point, 0, len(ring)-1)
				for _, p := range ring[:len(ring)-1] {
					pts = append(pts, s2.PointFromLatLng(s2.LatLngFromDegrees(p[1], p[0])))
				}
				l := s2.LoopFromPoints(pts)
				if err := l.Validate(); err != nil {
					errs = append(errs, fmt.Errorf("%w: grid %s: %w", ErrBadGeometry, g.Code, err))
					loops = nil
					break
				}
				l.Normalize()
				loops = append(loops, l)
			}
		}
		if loops == nil {
			continue
		}
		r.index.Add(&gridShape{Polygon: s2.PolygonFromLoops(loops), grid: i})
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	r.index.Build()
	return nil
}

// Len is the number of grids.
func (r *Register) Len() int { return len(r.grids) }

// Grid returns the grid with the given code.
func (r *Register) Grid(code string) (Grid, bool) {
	i, ok := r.byCode[code]
	if !ok {
		return Grid{}, false
	}
	return r.grids[i], true
}

// Grids lists the grids whose codes start with prefix ("" for all), by code.
func (r *Register) Grids(prefix string) []Grid {
	lo, _ := slices.BinarySearchFunc(r.grids, prefix, func(g Grid, p string) int { return strings.Compare(g.Code, p) })
	var out []Grid
	for i := lo; i < len(r.grids) && strings.HasPrefix(r.grids[i].Code, prefix); i++ {
		out = append(out, r.grids[i])
	}
	return out
}

// Locate returns the grid a WGS-84 point lies in, through the index: a
// point on an edge two grids share lies in exactly one of them (S2's
// semi-open model), a point outside every grid in none. Grids that
// overlap (a layer error) answer the lowest code.
func (r *Register) Locate(lat, lng float64) (Grid, bool) {
	if math.IsNaN(lat) || math.IsNaN(lng) || lat < -90 || lat > 90 || lng < -180 || lng > 180 {
		return Grid{}, false
	}
	q := s2.NewContainsPointQuery(r.index, s2.VertexModelSemiOpen)
	best := -1
	for _, sh := range q.ContainingShapes(s2.PointFromLatLng(s2.LatLngFromDegrees(lat, lng))) {
		if gs, ok := sh.(*gridShape); ok && (best < 0 || gs.grid < best) {
			best = gs.grid
		}
	}
	if best < 0 {
		return Grid{}, false
	}
	return r.grids[best], true
}

// str is a string property, "" when missing or not a string.
func str(p geojson.Properties, key string) string {
	s, _ := p[key].(string)
	return s
}

// selfIntersection finds two non-adjacent edges of an open ring (first
// position not repeated) that touch or cross, or two adjacent ones that
// fold back over each other.
func selfIntersection(r orb.Ring) (int, int, bool) {
	n := len(r)
	for i := 0; i < n; i++ {
		a, b := r[i], r[(i+1)%n]
		for j := i + 1; j < n; j++ {
			c, d := r[j], r[(j+1)%n]
			adjacent := j == i+1 || (i == 0 && j == n-1)
			if adjacent {
				// Adjacent edges share a vertex; they must not fold back
				// along each other (a spike).
				p, q, r := a, b, d // edges p-q, q-r
				if j == n-1 && i == 0 {
					p, q, r = c, a, b
				}
				if orient(p, q, r) == 0 && (q[0]-p[0])*(r[0]-q[0])+(q[1]-p[1])*(r[1]-q[1]) < 0 {
					return i, j, true
				}
				continue
			}
			if segmentsTouch(a, b, c, d) {
				return i, j, true
			}
		}
	}
	return 0, 0, false
}

func orient(a, b, c orb.Point) float64 {
	v := (b[0]-a[0])*(c[1]-a[1]) - (b[1]-a[1])*(c[0]-a[0])
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

func segmentsTouch(a, b, c, d orb.Point) bool {
	o1, o2, o3, o4 := orient(a, b, c), orient(a, b, d), orient(c, d, a), orient(c, d, b)
	if o1 != o2 && o3 != o4 {
		return true
	}
	onSeg := func(p, q, r orb.Point) bool {
		return min(p[0], q[0]) <= r[0] && r[0] <= max(p[0], q[0]) && min(p[1], q[1]) <= r[1] && r[1] <= max(p[1], q[1])
	}
	return (o1 == 0 && onSeg(a, b, c)) || (o2 == 0 && onSeg(a, b, d)) || (o3 == 0 && onSeg(c, d, a)) || (o4 == 0 && onSeg(c, d, b))
}
