package geo

import (
	"bytes"
	"encoding/csv"
	"math/rand/v2"
	"testing"

	"github.com/paulmach/orb"
	orbgeo "github.com/paulmach/orb/geo"
	"github.com/paulmach/orb/planar"

	cityhub "github.com/cityhub/cityhub"
)

func sample(t testing.TB) *Register {
	t.Helper()
	r, err := Sample()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The layer and grids.csv list the same grids with the same names.
func TestSampleMatchesGridsCSV(t *testing.T) {
	r := sample(t)
	rows, err := csv.NewReader(bytes.NewReader(cityhub.SampleFile("grids.csv"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() != len(rows)-1 {
		t.Errorf("%d grids in grids.geojson, %d in grids.csv", r.Len(), len(rows)-1)
	}
	for _, row := range rows[1:] {
		g, ok := r.Grid(row[0])
		if !ok {
			t.Errorf("grid %s of grids.csv has no polygon", row[0])
			continue
		}
		if g.Name != row[1] || g.Community != row[2] || g.Street != row[3] || g.District != row[4] || g.City != "苏州市" {
			t.Errorf("grid %s: names %q %q %q %q %q, grids.csv %v", g.Code, g.Name, g.Community, g.Street, g.District, g.City, row)
		}
		// About 10,000 m² (DOMAIN.md §4) and near 苏州 (31.3N 120.6E).
		if a := orbgeo.Area(g.Shape); a < 5000 || a > 16000 {
			t.Errorf("grid %s covers %.0f m²", g.Code, a)
		}
		if c := g.Bound.Center(); c.Lat() < 31.2 || c.Lat() > 31.4 || c.Lon() < 120.5 || c.Lon() > 120.75 {
			t.Errorf("grid %s centred at %v, not in 苏州", g.Code, c)
		}
	}
}

// samplePoints draws n points over the sample city: a fifth anywhere in
// its bound (mostly outside every grid), the rest in and around a random
// grid's bound (many near edges and corners).
func samplePoints(r *Register, n int, seed uint64) []orb.Point {
	rng := rand.New(rand.NewPCG(seed, 99))
	all := r.Grids("")
	b := all[0].Bound
	for _, g := range all {
		b = b.Union(g.Bound)
	}
	in := func(b orb.Bound, pad float64) orb.Point {
		w, h := b.Max[0]-b.Min[0], b.Max[1]-b.Min[1]
		return orb.Point{b.Min[0] - pad*w + rng.Float64()*w*(1+2*pad), b.Min[1] - pad*h + rng.Float64()*h*(1+2*pad)}
	}
	pts := make([]orb.Point, n)
	for i := range pts {
		if i%5 == 0 {
			pts[i] = in(b, 0.05)
		} else {
			pts[i] = in(all[rng.IntN(len(all))].Bound, 0.1)
		}
	}
	return pts
}

// bruteForce tests every grid with orb's planar point-in-polygon.
func bruteForce(r *Register, p orb.Point) []string {
	var out []string
	for _, g := range r.Grids("") {
		if planar.MultiPolygonContains(g.Shape, p) {
			out = append(out, g.Code)
		}
	}
	return out
}

// Acceptance 1: 10,000 random points over the sample city land where a
// brute-force point-in-polygon over every grid puts them.
func TestLocateAgreesWithBruteForce(t *testing.T) {
	r := sample(t)
	inside, outside := 0, 0
	for _, p := range samplePoints(r, 10000, 1) {
		want := bruteForce(r, p)
		got, ok := r.Locate(p.Lat(), p.Lon())
		switch {
		case len(want) == 0 && ok:
			t.Errorf("(%v, %v): index says %s, brute force no grid", p.Lat(), p.Lon(), got.Code)
		case len(want) > 0 && !ok:
			t.Errorf("(%v, %v): index says no grid, brute force %v", p.Lat(), p.Lon(), want)
		case len(want) > 1:
			// On a shared edge (planar counts the boundary in): the index
			// must pick one of them.
			if got.Code != want[0] && got.Code != want[1] {
				t.Errorf("(%v, %v): index says %s, brute force %v", p.Lat(), p.Lon(), got.Code, want)
			}
		case len(want) == 1 && got.Code != want[0]:
			t.Errorf("(%v, %v): index says %s, brute force %s", p.Lat(), p.Lon(), got.Code, want[0])
		}
		if ok {
			inside++
		} else {
			outside++
		}
	}
	// Both kinds of answer were exercised.
	if inside < 3000 || outside < 1000 {
		t.Fatalf("%d points inside a grid, %d outside: the test draws badly", inside, outside)
	}
	t.Logf("%d points in a grid, %d outside every grid", inside, outside)
}

// Acceptance 1: GCJ-02 → WGS-84 → GCJ-02 stays within 1 m at every
// vertex and centre of the sample grids (and WGS-84 → GCJ-02 → WGS-84).
func TestGCJ02RoundTripOnSamplePoints(t *testing.T) {
	r := sample(t)
	var pts []orb.Point
	for _, g := range r.Grids("") {
		pts = append(pts, g.Bound.Center())
		pts = append(pts, g.Shape[0][0]...)
	}
	worst := 0.0
	for _, p := range pts {
		for _, c := range []CRS{GCJ02, BD09} {
			wLat, wLng, _ := ToWGS84(p.Lat(), p.Lon(), c) // p taken as a GCJ-02 (BD-09) point
			gLat, gLng, _ := FromWGS84(wLat, wLng, c)
			d := Distance(p.Lat(), p.Lon(), gLat, gLng)
			cLat, cLng, _ := FromWGS84(p.Lat(), p.Lon(), c) // p as WGS-84
			wLat, wLng, _ = ToWGS84(cLat, cLng, c)
			d = max(d, Distance(p.Lat(), p.Lon(), wLat, wLng))
			if d > 1 {
				t.Errorf("%s round trip at (%v, %v): %.3f m", c, p.Lat(), p.Lon(), d)
			}
			worst = max(worst, d)
		}
	}
	t.Logf("%d sample points, worst round trip %.2g m", len(pts), worst)
}

// A GCJ-02 point a map app sends lands, after conversion, in the grid its
// WGS-84 original lies in, and taken raw would land elsewhere.
func TestGCJ02PointLandsInItsGrid(t *testing.T) {
	r := sample(t)
	moved := 0
	for _, g := range r.Grids("") {
		c, _ := planar.CentroidArea(g.Shape)
		gLat, gLng, _ := FromWGS84(c.Lat(), c.Lon(), GCJ02)
		wLat, wLng, _ := ToWGS84(gLat, gLng, GCJ02)
		got, ok := r.Locate(wLat, wLng)
		if !ok || got.Code != g.Code {
			t.Errorf("centre of %s sent as GCJ-02 located in %q", g.Code, got.Code)
		}
		if raw, ok := r.Locate(gLat, gLng); !ok || raw.Code != g.Code {
			moved++
		}
	}
	if moved != r.Len() {
		t.Errorf("only %d of %d GCJ-02 points taken as WGS-84 leave their grid (466 m off)", moved, r.Len())
	}
}

// Communities and streets are one polygon each (their grids are
// contiguous) covering exactly their grids' area; a district whose two
// streets lie apart is two.
func TestSampleAreas(t *testing.T) {
	r := sample(t)
	for prefix, parts := range map[string]int{"320505001001": 1, "320505001": 1, "320506002": 1, "320505": 2, "3205": 4} {
		a, ok := r.Area(prefix)
		if !ok {
			t.Fatalf("no area %s", prefix)
		}
		if len(a) != parts {
			t.Errorf("area %s has %d polygons, want %d", prefix, len(a), parts)
		}
		sum := 0.0
		for _, g := range r.Grids(prefix) {
			sum += planar.Area(g.Shape)
		}
		if got := planar.Area(a); got < sum*0.9999 || got > sum*1.0001 {
			t.Errorf("area %s: %.10f, its grids %.10f", prefix, got, sum)
		}
		for _, poly := range a {
			if len(poly) != 1 {
				t.Errorf("area %s: a polygon with %d rings (holes where none are)", prefix, len(poly))
			}
		}
	}
	if r.Name("320505001") != "狮山街道" || r.Name("320506") != "吴中区" || r.Name("3205") != "苏州市" {
		t.Errorf("names: %q %q %q", r.Name("320505001"), r.Name("320506"), r.Name("3205"))
	}
}
