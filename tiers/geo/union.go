package geo

import (
	"cmp"
	"math"
	"slices"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/planar"
)

// Union is the area covered by shapes that meet along shared edges, such
// as the grids of one community: no library at hand computes a true
// polygon union in Go (paulmach/orb has none; golang/geo's S2 port lacks
// S2BooleanOperation; GEOS needs cgo), so the union is made by dissolving
// shared edges. Every ring is oriented (shells counter-clockwise, holes
// clockwise), positions are snapped to 1e-7 degrees (about a centimetre),
// each edge cancels its reverse from a neighbour, and what remains is
// chained back into rings: counter-clockwise ones are the shells of the
// result, clockwise ones its holes.
//
// This is exact for a topologically clean layer, where neighbours share
// their vertices (as grid layers drawn with topology rules are). Where a
// grid's edge spans two of its neighbour's (a T-junction) or shapes
// overlap, the seam stays as a zero-width slit or an extra ring: the
// result still covers the right area for drawing, but is not minimal.
func Union(shapes []orb.MultiPolygon) orb.MultiPolygon {
	type edge struct{ a, b snapPt }
	count := map[edge]int{}
	var order []edge // first appearance, for a deterministic result
	add := func(ring orb.Ring, wantCCW bool) {
		if len(ring) < 4 {
			return
		}
		pts := make([]snapPt, 0, len(ring))
		for _, p := range ring {
			s := snap(p)
			if len(pts) > 0 && pts[len(pts)-1] == s {
				continue
			}
			pts = append(pts, s)
		}
		if len(pts) > 1 && pts[0] == pts[len(pts)-1] {
			pts = pts[:len(pts)-1]
		}
		if len(pts) < 3 {
			return
		}
		if ccw := signedArea(pts) > 0; ccw != wantCCW {
			slices.Reverse(pts)
		}
		for i := range pts {
			e := edge{pts[i], pts[(i+1)%len(pts)]}
			if r := (edge{e.b, e.a}); count[r] > 0 {
				count[r]--
				continue
			}
			if count[e] == 0 {
				order = append(order, e)
			}
			count[e]++
		}
	}
	for _, mp := range shapes {
		for _, poly := range mp {
			for i, ring := range poly {
				add(ring, i == 0)
			}
		}
	}

	// Outgoing edges per vertex, in order of first appearance.
	out := map[snapPt][]snapPt{}
	for _, e := range order {
		for n := count[e]; n > 0; n-- {
			out[e.a] = append(out[e.a], e.b)
		}
	}
	take := func(a, b snapPt) {
		l := out[a]
		i := slices.Index(l, b)
		out[a] = slices.Delete(l, i, i+1)
	}
	var shells, holes [][]snapPt
	for _, e := range order {
		for slices.Contains(out[e.a], e.b) {
			ring := []snapPt{e.a}
			take(e.a, e.b)
			prev, cur := e.a, e.b
			for cur != e.a {
				ring = append(ring, cur)
				next, ok := leftmost(prev, cur, out[cur])
				if !ok {
					break // an open chain: a broken layer; drop it
				}
				take(cur, next)
				prev, cur = cur, next
			}
			if cur != e.a || len(ring) < 3 {
				continue
			}
			if signedArea(ring) > 0 {
				shells = append(shells, ring)
			} else {
				holes = append(holes, ring)
			}
		}
	}

	result := make(orb.MultiPolygon, len(shells))
	areas := make([]float64, len(shells))
	for i, s := range shells {
		result[i] = orb.Polygon{toRing(s)}
		areas[i] = signedArea(s)
	}
	// Each hole goes to the smallest shell around it.
	for _, h := range holes {
		hr := toRing(h)
		best := -1
		for i := range shells {
			outer := result[i][0]
			if !outer.Bound().Contains(hr.Bound().Min) || !outer.Bound().Contains(hr.Bound().Max) {
				continue
			}
			if inside(outer, hr) && (best < 0 || areas[i] < areas[best]) {
				best = i
			}
		}
		if best >= 0 {
			result[best] = append(result[best], hr)
		}
	}
	slices.SortStableFunc(result, func(a, b orb.Polygon) int {
		ba, bb := a.Bound(), b.Bound()
		return cmp.Or(cmp.Compare(ba.Min[0], bb.Min[0]), cmp.Compare(ba.Min[1], bb.Min[1]))
	})
	return result
}

// snapPt is a position snapped to 1e-7 degrees.
type snapPt struct{ x, y int64 }

const snapScale = 1e7

func snap(p orb.Point) snapPt {
	return snapPt{int64(math.Round(p[0] * snapScale)), int64(math.Round(p[1] * snapScale))}
}

func (s snapPt) point() orb.Point {
	return orb.Point{float64(s.x) / snapScale, float64(s.y) / snapScale}
}

func toRing(pts []snapPt) orb.Ring {
	r := make(orb.Ring, 0, len(pts)+1)
	for _, p := range pts {
		r = append(r, p.point())
	}
	return append(r, pts[0].point())
}

// signedArea is twice the ring's planar area, positive when
// counter-clockwise (exact in integers up to rings of a few degrees).
func signedArea(pts []snapPt) float64 {
	var s float64
	for i := range pts {
		a, b := pts[i], pts[(i+1)%len(pts)]
		s += float64(a.x)*float64(b.y) - float64(b.x)*float64(a.y)
	}
	return s
}

// leftmost picks, at vertex cur reached from prev, the outgoing edge that
// turns furthest left: where two shells touch at a corner, each keeps its
// own boundary and no ring crosses itself.
func leftmost(prev, cur snapPt, cands []snapPt) (snapPt, bool) {
	if len(cands) == 0 {
		return snapPt{}, false
	}
	inX, inY := float64(cur.x-prev.x), float64(cur.y-prev.y)
	best, bestTurn := cands[0], math.Inf(-1)
	for _, c := range cands {
		oX, oY := float64(c.x-cur.x), float64(c.y-cur.y)
		turn := math.Atan2(inX*oY-inY*oX, inX*oX+inY*oY)
		if turn >= math.Pi-1e-12 {
			turn = -math.Pi // going straight back is the last resort
		}
		if turn > bestTurn {
			best, bestTurn = c, turn
		}
	}
	return best, true
}

// inside reports whether ring h lies inside ring outer: some vertex of h
// strictly inside (vertices on outer's boundary tell nothing).
func inside(outer, h orb.Ring) bool {
	for _, p := range h[:len(h)-1] {
		if onRing(outer, p) {
			continue
		}
		return planar.RingContains(outer, p)
	}
	// Every vertex on the boundary: test the midpoint of the first edge.
	return planar.RingContains(outer, orb.Point{(h[0][0] + h[1][0]) / 2, (h[0][1] + h[1][1]) / 2})
}

func onRing(r orb.Ring, p orb.Point) bool {
	for _, q := range r {
		if q == p {
			return true
		}
	}
	return false
}
