package geo

import (
	"bytes"
	"encoding/csv"
	"flag"
	"os"
	"testing"

	"github.com/paulmach/orb/geojson"

	cityhub "github.com/cityhub/cityhub"
)

var genSample = flag.Bool("gen-sample", false, "write testdata/city/grids.geojson from grids.csv")

// sampleStreets places the sample city's streets near their real places
// (WGS-84 south-west corner of each street's block, the block's turn):
// 狮山 and 枫桥 in 虎丘区 (苏州高新区), 长桥 and 郭巷 in 吴中区. Each
// street is a block of 10 × 2 grids of about 100 m (≈10,000 m², DOMAIN.md
// §4): its first community the western 5 × 2, its second the eastern.
var sampleStreets = map[string]struct {
	lat, lng, turn float64
	seed           uint64
}{
	"320505001": {31.2950, 120.5520, 12, 1}, // 狮山街道
	"320505002": {31.3100, 120.5480, -8, 2}, // 枫桥街道
	"320506001": {31.2600, 120.6000, 20, 3}, // 长桥街道
	"320506002": {31.2650, 120.6700, 5, 4},  // 郭巷街道
}

// TestGenerateSample writes the sample city's grid polygons with
// -gen-sample: go test ./tiers/geo -run TestGenerateSample -gen-sample.
func TestGenerateSample(t *testing.T) {
	if !*genSample {
		t.Skip("run with -gen-sample to rewrite testdata/city/grids.geojson")
	}
	rows, err := csv.NewReader(bytes.NewReader(cityhub.SampleFile("grids.csv"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	byCode := map[string][]string{}
	for _, r := range rows[1:] {
		byCode[r[0]] = r
	}
	var all []*geojson.Feature
	for _, street := range []string{"320505001", "320505002", "320506001", "320506002"} {
		s := sampleStreets[street]
		fs := lattice(s.lat, s.lng, 100, s.turn, 0.2, 10, 2, s.seed, func(c, r int) geojson.Properties {
			community := "001"
			if c >= 5 {
				community, c = "002", c-5
			}
			n := r*5 + c + 1
			code := street + community + string(rune('0'+n/100)) + string(rune('0'+n/10%10)) + string(rune('0'+n%10))
			row := byCode[code]
			if row == nil {
				t.Fatalf("grid %s not in grids.csv", code)
			}
			// grid_code,name,community,street,district,road,road_class
			return geojson.Properties{GridCodeProperty: code, "name": row[1], "community": row[2], "street": row[3],
				"district": row[4], "city": "苏州市", "road": row[5], "road_class": row[6]}
		})
		all = append(all, fs...)
	}
	if err := os.WriteFile("../../testdata/city/grids.geojson", featureCollection(all), 0o644); err != nil {
		t.Fatal(err)
	}
}
