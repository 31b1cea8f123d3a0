package replica_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/paulmach/orb/planar"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cityhub/cityhub/config"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/geo"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// sampleCentre is a sample grid's centre in WGS-84 and as crs sends it.
func sampleCentre(t *testing.T, code string, crs geo.CRS) (wgs, sent [2]float64) {
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
	lat, lng, _ := geo.FromWGS84(c.Lat(), c.Lon(), crs)
	return [2]float64{c.Lat(), c.Lon()}, [2]float64{lat, lng}
}

// retryReport reports through member i until the write is not refused for
// an election (the request id makes the retry safe).
func retryReport(t *testing.T, c *testcluster.Cluster, i int, req *pb.ReportCaseRequest) (*pb.CaseResponse, error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := c.Cases(i).ReportCase(ctx, req)
		cancel()
		if err == nil || !retryable(err) || time.Now().After(deadline) {
			return resp, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Acceptance 1: a report with only a location in GCJ-02 (as a map app in
// China sends it), made through a follower of a 3-replica community node,
// lands in the right grid with its WGS-84 point; the leader accepts the
// forwarded, already located command; the same place reported in WGS-84
// is found as its duplicate (the radius is measured on one datum).
func TestReportWithOnlyGCJ02LocationLandsInItsGrid(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.SampleGrids(t), func(cfg *config.Config) {
		cfg.Node.Tier, cfg.Node.Jurisdiction = config.TierCommunity, "320505001001"
	})
	leader := c.WaitLeader(20 * time.Second)
	follower := (leader + 1) % 3
	const grid = "320505001001003"
	wgs, gcj := sampleCentre(t, grid, geo.GCJ02)

	first := report("geo-wgs", "暴露垃圾 (WGS-84)")
	first.GridCode = grid
	first.Location = &pb.Location{Lat: wgs[0], Lng: wgs[1]}
	fr, err := retryReport(t, c, leader, first)
	if err != nil {
		t.Fatal(err)
	}
	// Duplicates are a hint from the answering replica's store: wait until
	// the follower has the first report.
	testcluster.WaitFor(t, 20*time.Second, "the follower applies the first report", func() bool {
		_, err := c.Members[follower].R.Node.Store().GetCase(fr.Case.Id)
		return err == nil
	})

	req := report("geo-gcj", "暴露垃圾 (高德坐标)")
	req.GridCode = ""
	req.Location = &pb.Location{Lat: gcj[0], Lng: gcj[1], Crs: pb.Crs_CRS_GCJ02, Address: "狮山路"}
	resp, err := retryReport(t, c, follower, req)
	if err != nil {
		t.Fatalf("report through follower %s: %v", c.Members[follower].ID, err)
	}
	got := resp.Case
	if got.GridCode != grid {
		t.Errorf("located in grid %q, want %s", got.GridCode, grid)
	}
	l := got.Location
	if d := geo.Distance(l.Lat, l.Lng, wgs[0], wgs[1]); d > 0.01 || l.Crs != pb.Crs_CRS_WGS84 {
		t.Errorf("stored point %v is %.3f m from the WGS-84 centre", l, d)
	}
	if l.ReportedCrs != pb.Crs_CRS_GCJ02 || l.ReportedLat != gcj[0] || l.ReportedLng != gcj[1] {
		t.Errorf("the reported GCJ-02 point is not kept: %v", l)
	}
	if len(resp.PossibleDuplicates) != 1 {
		t.Errorf("possible duplicates %v, want the WGS-84 report of the same place", resp.PossibleDuplicates)
	}

	// REST, the way a hotline system posts it: BD-09 in JSON.
	_, bd := sampleCentre(t, "320505001001008", geo.BD09)
	body := fmt.Sprintf(`{"request_id":"geo-rest","actor":"clerk","role":"ROLE_INTAKE_CLERK","source":"SOURCE_HOTLINE_12345",
		"kind":"KIND_EVENT","major_code":"01","minor_code":"02","description":"小广告",
		"location":{"lat":%v,"lng":%v,"crs":"CRS_BD09"}}`, bd[0], bd[1])
	code, out := httpDo(t, http.MethodPost, c.HTTPBase(follower)+"/v1/cases", body)
	if code != http.StatusOK || !strings.Contains(out, `"grid_code":"320505001001008"`) {
		t.Errorf("REST report with a BD-09 point: %d %s", code, out)
	}

	// Outside every grid, and in another community's grid: refused, naming
	// the field, and nothing is written.
	for _, tc := range []struct {
		name     string
		lat, lng float64
		says     string
	}{
		{"outside", 31.5, 120.9, "outside every grid"},
		{"elsewhere", 0, 0, "320505001002005"},
	} {
		lat, lng := tc.lat, tc.lng
		if lat == 0 {
			_, p := sampleCentre(t, "320505001002005", geo.GCJ02)
			lat, lng = p[0], p[1]
		}
		req := report("geo-"+tc.name, tc.name)
		req.GridCode = ""
		req.Location = &pb.Location{Lat: lat, Lng: lng, Crs: pb.Crs_CRS_GCJ02}
		_, err := retryReport(t, c, follower, req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), "location") {
			t.Errorf("%s: %v; want InvalidArgument on location saying %q", tc.name, err, tc.says)
		}
	}
	n := len(allCases(t, c, leader))
	if n != 3 {
		t.Errorf("%d cases stored, want 3 (refusals write nothing)", n)
	}

	// GET /v1/geo/locate names the grid, its chain and whether it is here.
	q := url.Values{"lat": {fmt.Sprint(gcj[0])}, "lng": {fmt.Sprint(gcj[1])}, "crs": {"gcj02"}}
	code, out = httpDo(t, http.MethodGet, c.HTTPBase(follower)+"/v1/geo/locate?"+q.Encode(), "")
	var loc struct {
		GridCode string `json:"grid_code"`
		Here     bool   `json:"here"`
		Chain    []struct{ Code, Name string }
	}
	if err := json.Unmarshal([]byte(out), &loc); code != http.StatusOK || err != nil {
		t.Fatalf("locate: %d %s %v", code, out, err)
	}
	if loc.GridCode != grid || !loc.Here || len(loc.Chain) != 4 || loc.Chain[0].Name != "狮山社区" || loc.Chain[3].Name != "苏州市" {
		t.Errorf("locate answered %+v", loc)
	}
	code, out = httpDo(t, http.MethodGet, c.HTTPBase(follower)+"/v1/geo/locate?lat=31.3&lng=120.6&crs=utm", "")
	if code != http.StatusBadRequest || !strings.Contains(out, `"field":"crs"`) {
		t.Errorf("locate with an unknown crs: %d %s", code, out)
	}

	// The node's own area as GeoJSON for a map: its 10 grids.
	code, out = httpDo(t, http.MethodGet, c.HTTPBase(leader)+"/v1/geo/grids.geojson", "")
	var fc struct {
		Type     string
		Features []json.RawMessage
	}
	if err := json.Unmarshal([]byte(out), &fc); code != http.StatusOK || err != nil || fc.Type != "FeatureCollection" || len(fc.Features) != 10 {
		t.Errorf("grids.geojson: %d, %d features, %v", code, len(fc.Features), err)
	}
}

func httpDo(t *testing.T, method, u, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
