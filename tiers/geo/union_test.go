package geo

import (
	"testing"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/planar"
)

func square(x, y, s float64) orb.MultiPolygon {
	return orb.MultiPolygon{{{{x, y}, {x + s, y}, {x + s, y + s}, {x, y + s}, {x, y}}}}
}

func TestUnionDissolvesSharedEdges(t *testing.T) {
	// 3 × 3 squares without the centre: one shell with one hole.
	var ring []orb.MultiPolygon
	for i := 0; i < 3; i++ {
		for j := 0; j < 3; j++ {
			if i != 1 || j != 1 {
				ring = append(ring, square(120+float64(i)*0.001, 31+float64(j)*0.001, 0.001))
			}
		}
	}
	u := Union(ring)
	if len(u) != 1 || len(u[0]) != 2 {
		t.Fatalf("3×3 without the centre: %d polygons, first with %d rings; want 1 with a hole", len(u), len(u[0]))
	}
	if a := planar.Area(u); a < 8e-6*0.9999 || a > 8e-6*1.0001 {
		t.Errorf("area %g, want 8e-6", a)
	}
	if planar.PolygonContains(u[0], orb.Point{120.0015, 31.0015}) {
		t.Error("the hole's centre is inside the union")
	}
	if !planar.PolygonContains(u[0], orb.Point{120.0005, 31.0005}) {
		t.Error("a corner square's centre is outside the union")
	}
	// 8 outer squares: the shell has 12 corners left after dissolving
	// (straight runs keep their vertices: 3 per side), the hole 4.
	if n := len(u[0][0]) - 1; n != 12 {
		t.Errorf("shell has %d vertices, want 12", n)
	}
	// Clockwise input rings are oriented, not mistaken for holes.
	cw := square(121, 31, 0.001)
	cw[0][0].Reverse()
	if u := Union([]orb.MultiPolygon{cw, square(121.001, 31, 0.001)}); len(u) != 1 || len(u[0]) != 1 {
		t.Errorf("a clockwise square and its neighbour: %v", u)
	}
}

func TestUnionKeepsCornerTouchingShapesApart(t *testing.T) {
	u := Union([]orb.MultiPolygon{square(120, 31, 0.001), square(120.001, 31.001, 0.001)})
	if len(u) != 2 {
		t.Fatalf("two squares touching at a corner: %d polygons, want 2", len(u))
	}
	for _, p := range u {
		if n := len(p[0]) - 1; n != 4 {
			t.Errorf("a square came out with %d vertices: %v", n, p[0])
		}
	}
}
