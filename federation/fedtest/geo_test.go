package fedtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/paulmach/orb/planar"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/geo"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// gridPoint is a sample grid's centre as crs sends it.
func gridPoint(t *testing.T, code string, crs geo.CRS) (lat, lng float64) {
	t.Helper()
	reg, err := geo.Sample()
	if err != nil {
		t.Fatal(err)
	}
	g, ok := reg.Grid(code)
	if !ok {
		t.Fatalf("no sample grid %s", code)
	}
	c, _ := planar.CentroidArea(g.Shape)
	lat, lng, _ = geo.FromWGS84(c.Lat(), c.Lon(), crs)
	return lat, lng
}

// Acceptance 1: in a federation of the sample city's nodes, any node
// locates a point in the node that holds its grid, with the chain of
// jurisdictions and their nodes; a report with only a map app's
// coordinates, made at that node, lands there in its grid and travels up
// with the grid code the node stamped; made at a sibling it is refused,
// naming the node to report to.
func TestLocatedReportLandsAtItsNode(t *testing.T) {
	specs := append(chain(), NodeSpec{Name: "c-320505001002", Tier: "community", Jurisdiction: "320505001002",
		Parent: "s-320505001", Units: []string{"320505001002-grid"}})
	f := New(t, specs, 1, testcluster.SampleGrids(t))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const grid = "320505001002007"
	lat, lng := gridPoint(t, grid, geo.BD09)
	city := pb.NewGeoServiceClient(f.Groups["city"].Conn(0))
	loc, err := city.Locate(ctx, &pb.LocateRequest{Lat: lat, Lng: lng, Crs: "bd09"})
	if err != nil {
		t.Fatal(err)
	}
	if loc.GridCode != grid || loc.Node != "c-320505001002" || loc.Here != true || loc.Crs != pb.Crs_CRS_BD09 {
		t.Errorf("city locates (%v, %v) BD-09 in %s at %s (here %v)", lat, lng, loc.GridCode, loc.Node, loc.Here)
	}
	wantChain := []struct{ code, node string }{{"320505001002", "c-320505001002"}, {"320505001", "s-320505001"}, {"320505", "d-320505"}, {"320500", "city"}}
	if len(loc.Chain) != len(wantChain) {
		t.Fatalf("chain %v", loc.Chain)
	}
	for i, w := range wantChain {
		if j := loc.Chain[i]; j.Code != w.code || j.Node != w.node || j.Name == "" {
			t.Errorf("chain[%d] = %v, want %s at %s", i, j, w.code, w.node)
		}
	}
	// A grid of a district that has no node here is held by the city.
	wLat, wLng := gridPoint(t, "320506002001004", geo.WGS84)
	if loc, err := city.Locate(ctx, &pb.LocateRequest{Lat: wLat, Lng: wLng}); err != nil || loc.Node != "city" {
		t.Errorf("a 吴中区 grid: %v, %v; want held by the city", loc, err)
	}

	req := func(rid string) *pb.ReportCaseRequest {
		return &pb.ReportCaseRequest{RequestId: rid, Actor: "clerk", Role: pb.Role_ROLE_INTAKE_CLERK,
			Source: pb.Source_SOURCE_HOTLINE_12345, Kind: pb.Kind_KIND_EVENT, MajorCode: "02", MinorCode: "01",
			Location: &pb.Location{Lat: lat, Lng: lng, Crs: pb.Crs_CRS_BD09}, Description: "小广告"}
	}
	var c *pb.Case
	if err := f.Client("c-320505001002").Do(ctx, func(ctx context.Context, cl pb.CaseServiceClient) error {
		resp, err := cl.ReportCase(ctx, req("geo-fed-1"))
		if err == nil {
			c = resp.Case
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if c.GridCode != grid || c.Holder != "c-320505001002" {
		t.Errorf("case %s in grid %s held by %s; want %s at c-320505001002", c.Id, c.GridCode, c.Holder, grid)
	}
	// The mirror at the city has the stamped grid and WGS-84 point.
	testcluster.WaitFor(t, time.Minute, "the city mirrors the located case", func() bool {
		r := f.Groups["city"].Replica(0)
		m, err := r.Node.Store().GetCase(c.Id)
		return err == nil && m.GridCode == grid && m.Location.GetReportedCrs() == pb.Crs_CRS_BD09 && m.Location.GetLat() == c.Location.GetLat()
	})

	err = f.Client("c-320505001001").Do(ctx, func(ctx context.Context, cl pb.CaseServiceClient) error {
		_, err := cl.ReportCase(ctx, req("geo-fed-2"))
		return err
	})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "c-320505001002") {
		t.Errorf("a sibling's grid: %v; want InvalidArgument naming c-320505001002", err)
	}
}
