package api

import (
	"context"
	"math"
	"net/http"
	"strings"

	"google.golang.org/grpc/status"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/auth"
	"github.com/cityhub/cityhub/tiers/catalogue"
	"github.com/cityhub/cityhub/tiers/geo"
)

// errNoGeometry: the node has no grid layer (geo.grids).

// Geo is what the API needs of the grid register (tiers/geo behind the
// replica, which knows the federation's nodes).
type Geo interface {
	// Locate finds the grid a WGS-84 point lies in, with its chain of
	// jurisdictions and the node that holds it; false outside every grid.
	Locate(lat, lng float64) (*pb.LocateResponse, bool)
	// NodePrefix is the prefix of grid codes a federation node covers;
	// false for a node the federation does not have.
	NodePrefix(node string) (string, bool)
	// Features is the GeoJSON FeatureCollection of the grids under a
	// prefix of grid codes at a level, and its number of features.
	Features(prefix string, level geo.Level) ([]byte, int, error)
}

// GeoServer serves GeoService: point → grid and grid polygons for maps.
type GeoServer struct {
	pb.UnimplementedGeoServiceServer
	geo        Geo // nil: no geometry on this node
	gridPrefix string
	g          *guard
}

// Locate finds the grid a point lies in.
func (s *GeoServer) Locate(ctx context.Context, r *pb.LocateRequest) (*pb.LocateResponse, error) {
	if err := s.g.require(ctx, auth.GeoRead, nil); err != nil {
		return nil, err
	}
	crs, err := geo.ParseCRS(r.Crs)
	if err != nil {
		return nil, toStatus(invalid("crs", "%v", err))
	}
	if s.geo == nil {
		return nil, toStatus(errNoGeometry)
	}
	loc, err := toWGS84(&pb.Location{Lat: r.Lat, Lng: r.Lng, Crs: pbCRS(crs)}, "")
	if err != nil {
		return nil, toStatus(err)
	}
	resp, ok := s.geo.Locate(loc.Lat, loc.Lng)
	if !ok {
		return nil, toStatus(outsideGrids("lat", r.Lat, r.Lng, crs))
	}
	resp.Crs = pbCRS(crs)
	resp.Here = strings.HasPrefix(resp.GridCode, s.gridPrefix)
	return resp, nil
}

// GetGridGeometry returns the polygons of a node's area (or a
// jurisdiction's inside it) as GeoJSON.
func (s *GeoServer) GetGridGeometry(ctx context.Context, r *pb.GridGeometryRequest) (*pb.GridGeometryResponse, error) {
	if err := s.g.require(ctx, auth.GeoRead, nil); err != nil {
		return nil, err
	}
	level, ok := geo.ParseLevel(r.Level)
	if !ok {
		return nil, toStatus(invalid("level", "%q: want grid, community, street, district or city", r.Level))
	}
	if s.geo == nil {
		return nil, toStatus(errNoGeometry)
	}
	area := s.gridPrefix
	if r.Node != "" {
		p, ok := s.geo.NodePrefix(r.Node)
		if !ok {
			return nil, toStatus(invalid("node", "%q is not a node of this federation", r.Node))
		}
		area = p
	}
	prefix := area
	if r.Prefix != "" {
		if len(r.Prefix) > catalogue.GridCodeLen || strings.Trim(r.Prefix, "0123456789") != "" {
			return nil, toStatus(invalid("prefix", "a prefix of grid codes: at most %d digits", catalogue.GridCodeLen))
		}
		if r.Node != "" && !strings.HasPrefix(r.Prefix, area) {
			return nil, toStatus(invalid("prefix", "%s lies outside node %s (grid codes %s…)", r.Prefix, r.Node, area))
		}
		prefix = r.Prefix
	}
	b, n, err := s.geo.Features(prefix, level)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.GridGeometryResponse{Geojson: string(b), Features: int32(n)}, nil
}

// registerGeoDownload serves GET /v1/geo/grids.geojson?node=&prefix=&level=:
// GetGridGeometry's GeoJSON itself, for map libraries to load.
func registerGeoDownload(mux *http.ServeMux, gs *GeoServer) {
	mux.HandleFunc("GET /v1/geo/grids.geojson", func(w http.ResponseWriter, req *http.Request) {
		q := req.URL.Query()
		resp, err := gs.GetGridGeometry(req.Context(), &pb.GridGeometryRequest{Node: q.Get("node"), Prefix: q.Get("prefix"), Level: q.Get("level")})
		if err != nil {
			writeError(w, status.Convert(err))
			return
		}
		w.Header().Set("Content-Type", "application/geo+json")
		_, _ = w.Write([]byte(resp.Geojson))
	})
}

// pbCRS and geoCRS translate between the wire enum and tiers/geo.
func pbCRS(c geo.CRS) pb.Crs {
	switch c {
	case geo.GCJ02:
		return pb.Crs_CRS_GCJ02
	case geo.BD09:
		return pb.Crs_CRS_BD09
	}
	return pb.Crs_CRS_WGS84
}

func geoCRS(c pb.Crs) (geo.CRS, bool) {
	switch c {
	case pb.Crs_CRS_UNSPECIFIED, pb.Crs_CRS_WGS84:
		return geo.WGS84, true
	case pb.Crs_CRS_GCJ02:
		return geo.GCJ02, true
	case pb.Crs_CRS_BD09:
		return geo.BD09, true
	}
	return 0, false
}

// toWGS84 validates a location (field names under prefix, e.g.
// "location.") and returns it in WGS-84: a GCJ-02 or BD-09 point is
// converted and what the reporter sent kept in reported_*. A location
// already in WGS-84 comes back unchanged. Deterministic, so the leader
// that checks a forwarded report gets the same bits.
func toWGS84(loc *pb.Location, prefix string) (*pb.Location, error) {
	if loc == nil {
		return nil, nil
	}
	if math.IsNaN(loc.Lat) || loc.Lat < -90 || loc.Lat > 90 {
		return nil, invalid(prefix+"lat", "must be a latitude between -90 and 90")
	}
	if math.IsNaN(loc.Lng) || loc.Lng < -180 || loc.Lng > 180 {
		return nil, invalid(prefix+"lng", "must be a longitude between -180 and 180")
	}
	crs, ok := geoCRS(loc.Crs)
	if !ok {
		return nil, invalid(prefix+"crs", "CRS_WGS84 (default), CRS_GCJ02 or CRS_BD09")
	}
	if loc.ReportedCrs != pb.Crs_CRS_UNSPECIFIED || loc.ReportedLat != 0 || loc.ReportedLng != 0 {
		return nil, invalid(prefix+"reported_crs", "set by the server: give lat, lng and crs")
	}
	out := &pb.Location{Lat: loc.Lat, Lng: loc.Lng, Address: loc.Address, Crs: loc.Crs}
	if crs == geo.WGS84 || !hasPoint(loc) {
		return out, nil
	}
	lat, lng, err := geo.ToWGS84(loc.Lat, loc.Lng, crs)
	if err != nil {
		return nil, invalid(prefix+"crs", "%v", err)
	}
	out.Lat, out.Lng, out.Crs = lat, lng, pb.Crs_CRS_WGS84
	out.ReportedCrs, out.ReportedLat, out.ReportedLng = loc.Crs, loc.Lat, loc.Lng
	return out, nil
}

// reportedLocation is the location a report sent, from a stored (or
// proposed) case's: the inverse of toWGS84's bookkeeping.
func reportedLocation(loc *pb.Location) *pb.Location {
	if loc == nil || loc.ReportedCrs == pb.Crs_CRS_UNSPECIFIED {
		return loc
	}
	return &pb.Location{Lat: loc.ReportedLat, Lng: loc.ReportedLng, Address: loc.Address, Crs: loc.ReportedCrs}
}

// hasPoint: (0, 0) means no coordinates, as everywhere in cityhub.
func hasPoint(l *pb.Location) bool { return l != nil && (l.Lat != 0 || l.Lng != 0) }

func outsideGrids(field string, lat, lng float64, crs geo.CRS) error {
	return invalid(field, "(%v, %v) in %s lies outside every grid of the register: check the coordinates and their coordinate system, or give grid_code", lat, lng, crs)
}

// locateReport finds the grid of a report that gives a location and no
// grid code (nil locate: this node has no geometry).
type locateFunc func(lat, lng float64) (*pb.LocateResponse, bool)

func locateGrid(locate locateFunc, loc *pb.Location) (string, error) {
	if !hasPoint(loc) {
		return "", nil
	}
	if locate == nil {
		return "", invalid("grid_code", "required: this node has no grid geometry (geo.grids) to find the grid of location")
	}
	res, ok := locate(loc.Lat, loc.Lng)
	if !ok {
		r := reportedLocation(loc)
		crs, _ := geoCRS(r.Crs)
		return "", outsideGrids("location", r.Lat, r.Lng, crs)
	}
	return res.GridCode, nil
}

// locatedElsewhere refuses a located report whose grid another node holds,
// naming it.
func locatedElsewhere(locate locateFunc, loc *pb.Location, grid, gridPrefix string) error {
	node := ""
	if locate != nil {
		if res, ok := locate(loc.Lat, loc.Lng); ok {
			node = res.Node
		}
	}
	if node == "" {
		return invalid("location", "lies in grid %s, outside this node's jurisdiction (grid codes %s…)", grid, gridPrefix)
	}
	return invalid("location", "lies in grid %s, held by node %s: report it there (this node takes grid codes %s…)", grid, node, gridPrefix)
}
