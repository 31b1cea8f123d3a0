package geo

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Published reference points of the GCJ-02 algorithm (WGS-84 → GCJ-02),
// from eviltransform's test suite.
var gcjReference = []struct{ wLat, wLng, gLat, gLng float64 }{
	{31.1774276, 121.5272106, 31.17530398364597, 121.531541859215}, // Shanghai
	{22.543847, 113.912316, 22.540796131694766, 113.9171764808363}, // Shenzhen
	{39.911954, 116.377817, 39.91334545536069, 116.38404722455657}, // Beijing
}

func TestGCJ02MatchesPublishedPoints(t *testing.T) {
	for _, p := range gcjReference {
		lat, lng, err := FromWGS84(p.wLat, p.wLng, GCJ02)
		if err != nil {
			t.Fatal(err)
		}
		if d := Distance(lat, lng, p.gLat, p.gLng); d > 0.5 {
			t.Errorf("WGS-84 (%v, %v) → GCJ-02 (%v, %v), want (%v, %v): %.3f m off", p.wLat, p.wLng, lat, lng, p.gLat, p.gLng, d)
		}
		lat, lng, err = ToWGS84(p.gLat, p.gLng, GCJ02)
		if err != nil {
			t.Fatal(err)
		}
		if d := Distance(lat, lng, p.wLat, p.wLng); d > 0.5 {
			t.Errorf("GCJ-02 (%v, %v) → WGS-84 (%v, %v), want (%v, %v): %.3f m off", p.gLat, p.gLng, lat, lng, p.wLat, p.wLng, d)
		}
	}
}

// gcoord's published values: GCJ-02 (45, 123) is WGS-84
// (44.99804071, 122.99395597) and BD-09 (45.00636899, 123.00636499).
func TestBD09AndInverseMatchPublishedPoints(t *testing.T) {
	lat, lng, _ := ToWGS84(45, 123, GCJ02)
	if math.Abs(lat-44.99804071) > 1e-6 || math.Abs(lng-122.99395597) > 1e-6 {
		t.Errorf("GCJ-02 (45, 123) → WGS-84 (%.8f, %.8f), want (44.99804071, 122.99395597)", lat, lng)
	}
	bLat, bLng := gcj02ToBD09(45, 123)
	if math.Abs(bLat-45.00636899) > 1e-6 || math.Abs(bLng-123.00636499) > 1e-6 {
		t.Errorf("GCJ-02 (45, 123) → BD-09 (%.8f, %.8f), want (45.00636899, 123.00636499)", bLat, bLng)
	}
	gLat, gLng := bd09ToGCJ02(bLat, bLng)
	if d := Distance(gLat, gLng, 45, 123); d > 0.01 {
		t.Errorf("BD-09 → GCJ-02 round trip %.4f m off", d)
	}
}

// The offset the issue names: hundreds of metres at the sample city, so a
// GCJ-02 point taken for WGS-84 breaks a 50 m duplicate radius.
func TestGCJ02OffsetAtSuzhou(t *testing.T) {
	lat, lng, _ := FromWGS84(31.30, 120.57, GCJ02)
	d := Distance(31.30, 120.57, lat, lng)
	if d < 300 || d > 700 {
		t.Fatalf("GCJ-02 offset at Suzhou %.1f m, want several hundred", d)
	}
	t.Logf("GCJ-02 offset at (31.30, 120.57): %.1f m", d)
}

func TestRoundTripsStayWithinAMillimetre(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		// Anywhere in mainland China's box.
		lat, lng := 18+rng.Float64()*35, 74+rng.Float64()*60
		for _, c := range []CRS{GCJ02, BD09} {
			cLat, cLng, _ := FromWGS84(lat, lng, c)
			wLat, wLng, _ := ToWGS84(cLat, cLng, c)
			if d := Distance(lat, lng, wLat, wLng); d > 0.001 {
				t.Fatalf("%s round trip of (%v, %v): %.4f m off", c, lat, lng, d)
			}
		}
	}
}

func TestOutsideChinaIsUnchanged(t *testing.T) {
	for _, p := range [][2]float64{{51.5, -0.12}, {35.68, 139.77}, {-33.9, 151.2}} {
		lat, lng, _ := FromWGS84(p[0], p[1], GCJ02)
		if lat != p[0] || lng != p[1] {
			t.Errorf("(%v, %v) moved to (%v, %v) outside China", p[0], p[1], lat, lng)
		}
		lat, lng, _ = ToWGS84(p[0], p[1], GCJ02)
		if lat != p[0] || lng != p[1] {
			t.Errorf("(%v, %v) moved to (%v, %v) outside China", p[0], p[1], lat, lng)
		}
	}
}

func TestParseCRS(t *testing.T) {
	for in, want := range map[string]CRS{"": WGS84, "WGS-84": WGS84, "wgs84": WGS84, "CRS_WGS84": WGS84,
		"gcj02": GCJ02, "GCJ-02": GCJ02, "CRS_GCJ02": GCJ02, "bd09": BD09, "BD-09": BD09, "crs_bd09": BD09} {
		got, err := ParseCRS(in)
		if err != nil || got != want {
			t.Errorf("ParseCRS(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"utm", "gcj", "epsg:3857"} {
		if _, err := ParseCRS(bad); err == nil {
			t.Errorf("ParseCRS(%q) accepted", bad)
		}
	}
}

func TestDistance(t *testing.T) {
	// One degree of latitude is about 111.2 km on the mean sphere.
	if d := Distance(31, 120, 32, 120); math.Abs(d-111195) > 10 {
		t.Errorf("one degree of latitude = %.0f m", d)
	}
	if d := Distance(31.3, 120.57, 31.3, 120.57); d != 0 {
		t.Errorf("same point: %v m", d)
	}
}
