package geo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/geojson"
)

// lattice lays cols × rows grids of about size metres from a south-west
// corner, turned by deg degrees, each vertex moved by up to jitter × size
// (deterministic for a seed; neighbours share their vertices, as in a
// grid layer drawn with topology rules). props gives grid (c, r)'s
// properties, grid_code among them.
func lattice(lat0, lng0, size, deg, jitter float64, cols, rows int, seed uint64, props func(c, r int) geojson.Properties) []*geojson.Feature {
	rng := rand.New(rand.NewPCG(seed, seed^0x5bd1e995))
	mLat := math.Pi * EarthRadius / 180
	mLng := mLat * math.Cos(lat0*math.Pi/180)
	sin, cos := math.Sincos(deg * math.Pi / 180)
	vert := make([][]orb.Point, cols+1)
	for c := range vert {
		vert[c] = make([]orb.Point, rows+1)
		for r := range vert[c] {
			x := float64(c)*size + (rng.Float64()*2-1)*jitter*size
			y := float64(r)*size + (rng.Float64()*2-1)*jitter*size
			x, y = x*cos-y*sin, x*sin+y*cos
			vert[c][r] = orb.Point{round7(lng0 + x/mLng), round7(lat0 + y/mLat)}
		}
	}
	var out []*geojson.Feature
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			ring := orb.Ring{vert[c][r], vert[c+1][r], vert[c+1][r+1], vert[c][r+1], vert[c][r]}
			f := geojson.NewFeature(orb.Polygon{ring})
			f.Properties = props(c, r)
			out = append(out, f)
		}
	}
	return out
}

func round7(v float64) float64 { return math.Round(v*1e7) / 1e7 }

// featureCollection writes features one per line (readable diffs).
func featureCollection(fs []*geojson.Feature) []byte {
	var b bytes.Buffer
	b.WriteString(`{"type":"FeatureCollection","features":[` + "\n")
	for i, f := range fs {
		j, err := json.Marshal(f)
		if err != nil {
			panic(err)
		}
		b.Write(j)
		if i < len(fs)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("]}\n")
	return b.Bytes()
}

// bigLattice is n grids (n a multiple of 400) of 100 m around Suzhou with
// unique codes: 100 grids a community, 100 communities a street.
func bigLattice(n int) []byte {
	const cols = 400
	fs := lattice(31.0, 120.3, 100, 3, 0.2, cols, n/cols, 7, func(c, r int) geojson.Properties {
		k := r*cols + c
		return geojson.Properties{GridCodeProperty: fmt.Sprintf("320505%03d%03d%03d", k/10000+1, k/100%100+1, k%100+1)}
	})
	return featureCollection(fs)
}
