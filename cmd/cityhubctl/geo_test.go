package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/paulmach/orb/planar"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cityhub/cityhub/config"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/geo"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// TestGeoLocateAndGrids runs `geo locate` and `geo grids` against a node
// of the sample city's 狮山街道 with the sample grid layer (geo.grids).
func TestGeoLocateAndGrids(t *testing.T) {
	c := testcluster.New(t, 1, testcluster.SampleGrids(t), func(c *config.Config) {
		c.Node.Tier, c.Node.Jurisdiction = config.TierStreet, "320505001"
	})
	c.WaitLeader(20 * time.Second)
	addr := c.Members[0].Cfg.GRPC.Addr

	reg, err := geo.Sample()
	if err != nil {
		t.Fatal(err)
	}
	g, _ := reg.Grid("320505001002006")
	centre, _ := planar.CentroidArea(g.Shape)
	lat, lng, _ := geo.FromWGS84(centre.Lat(), centre.Lon(), geo.GCJ02)

	code, out, errOut := runCLI(t, "--addr", addr, "geo", "locate", "--lat", fmt.Sprint(lat), "--lng", fmt.Sprint(lng), "--crs", "gcj02")
	if code != 0 {
		t.Fatalf("geo locate: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("geo locate:\n%s", out)
	for _, re := range []string{`(?m)^grid: +320505001002006  塔园社区第06网格$`, `(?m)^community: +320505001002  塔园社区`,
		`(?m)^street: +320505001  狮山街道  \(node 320505001\)$`, `(?m)^city: +320500  苏州市`, `(?m)^held by: .*this node takes its reports`,
		fmt.Sprintf(`(?m)^wgs84: +%.7f, %.7f$`, centre.Lat(), centre.Lon())} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output lacks %s", re)
		}
	}
	code, out, _ = runCLI(t, "--addr", addr, "-o", "json", "geo", "locate", "--lat", fmt.Sprint(lat), "--lng", fmt.Sprint(lng), "--crs", "GCJ-02")
	var r pb.LocateResponse
	if code != 0 || protojson.Unmarshal([]byte(out), &r) != nil || r.GridCode != "320505001002006" || r.Crs != pb.Crs_CRS_GCJ02 {
		t.Errorf("json: exit %d\n%s", code, out)
	}
	// Outside every grid: the server's refusal, naming the field.
	code, _, errOut = runCLI(t, "--addr", addr, "geo", "locate", "--lat", "39.9", "--lng", "116.4")
	if code != 1 || !strings.Contains(errOut, "InvalidArgument") || !strings.Contains(errOut, "field: lat") {
		t.Errorf("outside: exit %d, stderr %q", code, errOut)
	}

	file := filepath.Join(t.TempDir(), "streets.geojson")
	code, out, errOut = runCLI(t, "--addr", addr, "geo", "grids", "--level", "community", "--out", file)
	if code != 0 || !strings.Contains(out, "2 features written") {
		t.Fatalf("geo grids: exit %d\n%s%s", code, out, errOut)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var fc struct {
		Features []struct {
			Properties map[string]any
		}
	}
	if err := json.Unmarshal(b, &fc); err != nil || len(fc.Features) != 2 || fc.Features[0].Properties["name"] != "狮山社区" {
		t.Errorf("communities GeoJSON: %v %v", err, fc.Features)
	}
	code, out, _ = runCLI(t, "--addr", addr, "geo", "grids")
	if _, err := geo.Parse([]byte(out)); code != 0 || err != nil {
		t.Errorf("geo grids to stdout does not read back as a grid layer: exit %d, %v", code, err)
	}
}
