package geo

import (
	"math/rand/v2"
	"testing"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/planar"
)

// BenchmarkLocate100k: point → grid over a lattice of 100,000 grids of
// 100 m (about 40 km × 25 km), points drawn over the lattice's bound.
func BenchmarkLocate100k(b *testing.B) {
	r, err := Parse(bigLattice(100000))
	if err != nil {
		b.Fatal(err)
	}
	if r.Len() != 100000 {
		b.Fatalf("%d grids", r.Len())
	}
	all := r.Grids("")
	bound := all[0].Bound
	for _, g := range all {
		bound = bound.Union(g.Bound)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	pts := make([][2]float64, 4096)
	for i := range pts {
		pts[i] = [2]float64{bound.Min[1] + rng.Float64()*(bound.Max[1]-bound.Min[1]), bound.Min[0] + rng.Float64()*(bound.Max[0]-bound.Min[0])}
	}
	found := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		p := pts[i%len(pts)]
		if _, ok := r.Locate(p[0], p[1]); ok {
			found++
		}
	}
	b.StopTimer()
	if found == 0 {
		b.Fatal("no point found a grid")
	}
}

// BenchmarkParse100k: reading, validating, indexing and unioning a
// 100,000-grid layer (a node's start-up).
func BenchmarkParse100k(b *testing.B) {
	data := bigLattice(100000)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLocateBruteForce100k is the loop the index replaces: every
// grid's bound, then planar point-in-polygon (for the ratio in one run).
func BenchmarkLocateBruteForce100k(b *testing.B) {
	r, err := Parse(bigLattice(100000))
	if err != nil {
		b.Fatal(err)
	}
	all := r.Grids("")
	bound := all[0].Bound
	for _, g := range all {
		bound = bound.Union(g.Bound)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	b.ResetTimer()
	for b.Loop() {
		p := orb.Point{bound.Min[0] + rng.Float64()*(bound.Max[0]-bound.Min[0]), bound.Min[1] + rng.Float64()*(bound.Max[1]-bound.Min[1])}
		for _, g := range all {
			if g.Bound.Contains(p) && planar.MultiPolygonContains(g.Shape, p) {
				break
			}
		}
	}
}
