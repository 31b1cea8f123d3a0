package geo

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/paulmach/orb"
)

func TestParseRefusesBadLayers(t *testing.T) {
	sq := `{"type":"Polygon","coordinates":[[[120,31],[120.001,31],[120.001,31.001],[120,31.001],[120,31]]]}`
	feature := func(props, geom string) string {
		return `{"type":"Feature","properties":` + props + `,"geometry":` + geom + `}`
	}
	fc := func(fs ...string) []byte {
		return []byte(`{"type":"FeatureCollection","features":[` + strings.Join(fs, ",") + `]}`)
	}
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"not geojson":   {[]byte(`{"nodes":[]}`), "FeatureCollection"},
		"empty":         {fc(), "no grids"},
		"no code":       {fc(feature(`{"name":"x"}`, sq)), "grid_code is required"},
		"numeric code":  {fc(feature(`{"grid_code":320505001001001}`, sq)), "grid_code is required"},
		"short code":    {fc(feature(`{"grid_code":"3205050010010"}`, sq)), "want 15"},
		"duplicate":     {fc(feature(`{"grid_code":"320505001001001"}`, sq), feature(`{"grid_code":"320505001001001"}`, sq)), "listed twice"},
		"a point":       {fc(feature(`{"grid_code":"320505001001001"}`, `{"type":"Point","coordinates":[120,31]}`)), "want Polygon"},
		"two positions": {fc(feature(`{"grid_code":"320505001001001"}`, `{"type":"Polygon","coordinates":[[[120,31],[120.001,31],[120,31]]]}`)), "fewer than 3"},
		"latitude 95":   {fc(feature(`{"grid_code":"320505001001001"}`, `{"type":"Polygon","coordinates":[[[120,95],[120.001,31],[120.001,31.001],[120,95]]]}`)), "not a longitude"},
		"bow tie": {fc(feature(`{"grid_code":"320505001001001"}`,
			`{"type":"Polygon","coordinates":[[[120,31],[120.001,31.001],[120.001,31],[120,31.001],[120,31]]]}`)), "crosses itself"},
	} {
		_, err := Parse(tc.data)
		if err == nil || !errors.Is(err, ErrBadGeometry) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want ErrBadGeometry saying %q", name, err, tc.want)
		}
	}
}

func TestLocateOutsideAndInvalid(t *testing.T) {
	r := sample(t)
	for _, p := range [][2]float64{{39.9, 116.4}, {31.3, 120.9}, {91, 120}, {31.3, 181}} {
		if g, ok := r.Locate(p[0], p[1]); ok {
			t.Errorf("(%v, %v) located in %s", p[0], p[1], g.Code)
		}
	}
}

func TestFeatures(t *testing.T) {
	r := sample(t)
	for _, tc := range []struct {
		prefix string
		level  Level
		n      int
	}{
		{"", LevelGrid, 80}, {"320505001", LevelGrid, 20}, {"320505", LevelCommunity, 4},
		{"", LevelStreet, 4}, {"", LevelDistrict, 2}, {"", LevelCity, 1},
		{"320505001001", LevelDistrict, 1}, // coarser than the prefix: the prefix's own area
		{"320507", LevelGrid, 0},
	} {
		fc := r.Features(tc.prefix, tc.level)
		if len(fc.Features) != tc.n {
			t.Errorf("Features(%q, %s): %d features, want %d", tc.prefix, tc.level, len(fc.Features), tc.n)
		}
		b, err := json.Marshal(fc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(b); tc.level == LevelGrid && tc.n > 0 && err != nil {
			t.Errorf("grid features do not read back: %v", err)
		}
	}
	st := r.Features("320505001", LevelStreet).Features[0]
	if st.Properties["name"] != "狮山街道" || st.Properties["grids"] != 20 || st.Properties["level"] != "street" {
		t.Errorf("street feature properties %v", st.Properties)
	}
}

func TestSelfIntersection(t *testing.T) {
	for name, tc := range map[string]struct {
		ring orb.Ring
		bad  bool
	}{
		"square":   {orb.Ring{{0, 0}, {1, 0}, {1, 1}, {0, 1}}, false},
		"concave":  {orb.Ring{{0, 0}, {2, 0}, {2, 2}, {1, 1}, {0, 2}}, false},
		"bow tie":  {orb.Ring{{0, 0}, {1, 1}, {1, 0}, {0, 1}}, true},
		"spike":    {orb.Ring{{0, 0}, {2, 0}, {1, 0}, {1, 1}}, true},
		"touching": {orb.Ring{{0, 0}, {2, 0}, {2, 2}, {1, 0}, {0, 2}}, true},
	} {
		if _, _, got := selfIntersection(tc.ring); got != tc.bad {
			t.Errorf("%s: self-intersecting %v, want %v", name, got, tc.bad)
		}
	}
}
