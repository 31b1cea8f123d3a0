package api

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/paulmach/orb/planar"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/catalogue"
	"github.com/cityhub/cityhub/tiers/geo"
	"github.com/cityhub/cityhub/tiers/workflow"
)

// sampleLocate is the sample city's register as a locateFunc, naming no
// node (the federation's part is the replica's).
func sampleLocate(t *testing.T) (locateFunc, *geo.Register) {
	t.Helper()
	reg, err := geo.Sample()
	if err != nil {
		t.Fatal(err)
	}
	return func(lat, lng float64) (*pb.LocateResponse, bool) {
		g, ok := reg.Locate(lat, lng)
		if !ok {
			return nil, false
		}
		return &pb.LocateResponse{GridCode: g.Code, Node: "c-" + g.Code[:12]}, true
	}, reg
}

// gcjCentre is grid code's centre as a map app in China sends it.
func gcjCentre(t *testing.T, reg *geo.Register, code string) (wgs, gcj [2]float64) {
	t.Helper()
	g, ok := reg.Grid(code)
	if !ok {
		t.Fatalf("no grid %s", code)
	}
	c, _ := planar.CentroidArea(g.Shape)
	lat, lng, _ := geo.FromWGS84(c.Lat(), c.Lon(), geo.GCJ02)
	return [2]float64{c.Lat(), c.Lon()}, [2]float64{lat, lng}
}

func locatedReport(loc *pb.Location) *pb.ReportCaseRequest {
	return &pb.ReportCaseRequest{RequestId: "geo-1", Actor: "clerk", Role: pb.Role_ROLE_INTAKE_CLERK,
		Source: pb.Source_SOURCE_HOTLINE_12345, Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02",
		Location: loc, Description: "暴露垃圾"}
}

func fieldErr(t *testing.T, err error) string {
	t.Helper()
	var fe *workflow.FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	var ce *catalogue.FieldError
	if errors.As(err, &ce) {
		return ce.Field
	}
	t.Fatalf("not a field error: %v", err)
	return ""
}

func TestReportLocatedFromGCJ02(t *testing.T) {
	locate, reg := sampleLocate(t)
	wgs, gcj := gcjCentre(t, reg, "320505001002004")
	c, err := reportToCase(catalogue.Default(), locate, locatedReport(&pb.Location{Lat: gcj[0], Lng: gcj[1], Crs: pb.Crs_CRS_GCJ02, Address: "塔园路"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.GridCode != "320505001002004" {
		t.Errorf("grid %q, want 320505001002004", c.GridCode)
	}
	l := c.Location
	if d := geo.Distance(l.Lat, l.Lng, wgs[0], wgs[1]); d > 0.01 || l.Crs != pb.Crs_CRS_WGS84 {
		t.Errorf("stored location %v is %.3f m from the WGS-84 centre", l, d)
	}
	if l.ReportedCrs != pb.Crs_CRS_GCJ02 || l.ReportedLat != gcj[0] || l.ReportedLng != gcj[1] || l.Address != "塔园路" {
		t.Errorf("what the reporter sent is not kept: %v", l)
	}

	// The leader checks the forwarded command by rebuilding it from what
	// the reporter sent: the same bits, so it passes; a forged point does not.
	cmd := &pb.Command{RequestId: "geo-1", Body: &pb.Command_Report{Report: &pb.ReportCase{Case: c, Actor: "clerk", Role: pb.Role_ROLE_INTAKE_CLERK}}}
	if err := validateCommand(catalogue.Default(), "320505", cmd, time.Now()); err != nil {
		t.Errorf("forwarded located report refused: %v", err)
	}
	forged := proto.Clone(cmd).(*pb.Command)
	forged.GetReport().Case.Location.Lat += 0.001
	if err := validateCommand(catalogue.Default(), "320505", forged, time.Now()); err == nil {
		t.Error("a forwarded report whose WGS-84 point is not its reported point's was accepted")
	}

	// A grid code given wins: the point is kept, not used to locate.
	r := locatedReport(&pb.Location{Lat: gcj[0], Lng: gcj[1], Crs: pb.Crs_CRS_GCJ02})
	r.GridCode = "320505001002009"
	if c, err := reportToCase(catalogue.Default(), locate, r); err != nil || c.GridCode != "320505001002009" {
		t.Errorf("with a grid code: %v, %v", c.GetGridCode(), err)
	}
}

func TestReportLocationRefusals(t *testing.T) {
	locate, reg := sampleLocate(t)
	_, gcj := gcjCentre(t, reg, "320505001001001")
	for _, tc := range []struct {
		name   string
		locate locateFunc
		loc    *pb.Location
		field  string
		says   string
	}{
		{"no grid, no location", locate, nil, "grid_code", "or location"},
		{"outside every grid", locate, &pb.Location{Lat: 39.9, Lng: 116.4, Crs: pb.Crs_CRS_GCJ02}, "location", "outside every grid"},
		// The GCJ-02 point read as WGS-84 is 466 m away, outside the sample grids.
		{"wrong datum", locate, &pb.Location{Lat: gcj[0], Lng: gcj[1]}, "location", "coordinate system"},
		{"no geometry", nil, &pb.Location{Lat: gcj[0], Lng: gcj[1], Crs: pb.Crs_CRS_GCJ02}, "grid_code", "geo.grids"},
		{"bad crs", locate, &pb.Location{Lat: gcj[0], Lng: gcj[1], Crs: 9}, "location.crs", "CRS_GCJ02"},
		{"latitude", locate, &pb.Location{Lat: 91, Lng: 120}, "location.lat", "latitude"},
		{"server's fields", locate, &pb.Location{Lat: gcj[0], Lng: gcj[1], ReportedLat: 1}, "location.reported_crs", "set by the server"},
	} {
		_, err := reportToCase(catalogue.Default(), tc.locate, locatedReport(tc.loc))
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if f := fieldErr(t, err); f != tc.field || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v (field %s); want field %s saying %q", tc.name, err, f, tc.field, tc.says)
		}
	}
	// In another node's grid: named.
	err := locatedElsewhere(locate, &pb.Location{Lat: 31.3, Lng: 120.6}, "320505001001001", "320505001002")
	if fieldErr(t, err) != "location" || !strings.Contains(err.Error(), "320505001001001") {
		t.Errorf("located elsewhere: %v", err)
	}
}

func TestToWGS84LeavesWGS84Alone(t *testing.T) {
	in := &pb.Location{Lat: 31.3, Lng: 120.6, Address: "x"}
	out, err := toWGS84(in, "location.")
	if err != nil || !proto.Equal(in, out) {
		t.Errorf("WGS-84 location changed: %v, %v", out, err)
	}
	// An address without coordinates in GCJ-02 stays as it is.
	in = &pb.Location{Address: "x", Crs: pb.Crs_CRS_BD09}
	if out, err := toWGS84(in, "location."); err != nil || !proto.Equal(in, out) {
		t.Errorf("address-only location changed: %v, %v", out, err)
	}
	for _, c := range []pb.Crs{pb.Crs_CRS_GCJ02, pb.Crs_CRS_BD09} {
		out, err := toWGS84(&pb.Location{Lat: 31.3, Lng: 120.6, Crs: c}, "")
		if err != nil {
			t.Fatal(err)
		}
		if d := geo.Distance(out.Lat, out.Lng, 31.3, 120.6); d < 300 || d > 1200 {
			t.Errorf("%s point moved %.0f m converting to WGS-84", c, d)
		}
		if back := reportedLocation(out); back.Lat != 31.3 || back.Lng != 120.6 || back.Crs != c {
			t.Errorf("reportedLocation(%v) = %v", out, back)
		}
	}
}
