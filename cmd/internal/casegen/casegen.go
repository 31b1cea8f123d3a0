// Package casegen makes realistic reports and walks cases through their
// lifecycle, for the demo, the load generator and soak runs. It is a
// client: it only talks to a node through the CaseService API.
//
// The mix follows DOMAIN.md: events (exposed garbage, dirty roads, illegal
// vending and parking, flyers) outnumber components (manhole covers, street
// lamps, bins); most reports come from inspectors, then the 12345 and 12319
// hotlines, the citizens' app and cameras.
package casegen

import (
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/planar"

	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/geo"
)

// Class is one kind of problem with its share of reports and the unit that
// usually handles it.
type Class struct {
	Kind         pb.Kind
	Major, Minor string
	Name         string
	Unit         string
	Weight       int
	LimitMinutes int64 // handling time limit (DOMAIN.md section 6)
}

// Classes is the default mix; every class exists in the default catalogue.
var Classes = []Class{
	{pb.Kind_KIND_EVENT, "01", "02", "暴露垃圾 exposed garbage", "sanitation", 22, 240},
	{pb.Kind_KIND_EVENT, "01", "04", "道路不洁 dirty road", "sanitation", 12, 300},
	{pb.Kind_KIND_EVENT, "05", "01", "无照经营游商 unlicensed vending", "enforcement", 12, 120},
	{pb.Kind_KIND_EVENT, "05", "05", "机动车乱停放 illegal parking", "traffic-police", 10, 60},
	{pb.Kind_KIND_EVENT, "05", "04", "店外经营 business outside the shop", "enforcement", 8, 240},
	{pb.Kind_KIND_EVENT, "02", "01", "非法小广告 illegal flyers", "sanitation", 8, 480},
	{pb.Kind_KIND_EVENT, "01", "01", "私搭乱建 illegal structure", "enforcement", 3, 9600},
	{pb.Kind_KIND_EVENT, "03", "02", "工地扬尘 construction dust", "construction", 3, 240},
	{pb.Kind_KIND_EVENT, "04", "01", "路面塌陷 road collapse", "roads", 1, 360},
	{pb.Kind_KIND_COMPONENT, "01", "01", "上水井盖 water manhole cover", "water-co", 5, 360},
	{pb.Kind_KIND_COMPONENT, "01", "03", "雨水井盖 storm drain cover", "drainage", 4, 360},
	{pb.Kind_KIND_COMPONENT, "01", "18", "路灯 street lamp", "lighting", 6, 480},
	{pb.Kind_KIND_COMPONENT, "03", "05", "垃圾箱 litter bin", "sanitation", 4, 480},
	{pb.Kind_KIND_COMPONENT, "04", "02", "行道树 street tree", "parks", 2, 960},
}

type source struct {
	src    pb.Source
	role   pb.Role
	actor  string
	weight int
}

var sources = []source{
	{pb.Source_SOURCE_INSPECTOR, pb.Role_ROLE_INSPECTOR, "insp", 60},
	{pb.Source_SOURCE_HOTLINE_12345, pb.Role_ROLE_INTAKE_CLERK, "clerk-12345", 15},
	{pb.Source_SOURCE_HOTLINE_12319, pb.Role_ROLE_INTAKE_CLERK, "clerk-12319", 10},
	{pb.Source_SOURCE_APP, pb.Role_ROLE_CITIZEN, "citizen", 10},
	{pb.Source_SOURCE_CAMERA, pb.Role_ROLE_SYSTEM, "camera", 5},
}

var places = []string{"人民路", "解放路", "建设路", "中山路", "新华街", "长江路", "学府路", "公园路"}

// Generator makes reports for grids under a jurisdiction, or at the nodes
// of a federation (NewFederated). It is not safe for concurrent use.
type Generator struct {
	rng          *rand.Rand
	jurisdiction string // 6 to 12 digits: the grid code prefix
	seq          uint64
	prefix       string
	classTotal   int
	sourceTotal  int
	topo         *topology.Topology // nil: one node alone
}

// New returns a generator for grid codes under jurisdiction (6, 9 or 12
// digits). Request ids are prefix-<n>, so two generators with different
// prefixes never collide.
func New(seed uint64, jurisdiction, prefix string) *Generator {
	g := &Generator{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), jurisdiction: jurisdiction, prefix: prefix}
	for _, c := range Classes {
		g.classTotal += c.Weight
	}
	for _, s := range sources {
		g.sourceTotal += s.weight
	}
	return g
}

// Grid returns a random 15-digit grid code under the jurisdiction.
func (g *Generator) Grid() string {
	code := g.jurisdiction
	if len(code) < 9 {
		code += fmt.Sprintf("%03d", 101+g.rng.IntN(4)) // street
	}
	if len(code) < 12 {
		code += fmt.Sprintf("%03d", 1+g.rng.IntN(3)) // community
	}
	return code + fmt.Sprintf("%03d", 1+g.rng.IntN(20))
}

func (g *Generator) class() Class {
	return pick(g.rng, Classes, g.classTotal, func(c Class) int { return c.Weight })
}

func (g *Generator) source() source {
	return pick(g.rng, sources, g.sourceTotal, func(s source) int { return s.weight })
}

// pick draws one item with probability proportional to its weight.
func pick[T any](rng *rand.Rand, items []T, total int, weight func(T) int) T {
	n := rng.IntN(total)
	for _, it := range items {
		if n < weight(it) {
			return it
		}
		n -= weight(it)
	}
	return items[0]
}

// Report makes one valid report with a fresh request id.
func (g *Generator) Report() *pb.ReportCaseRequest {
	return g.report(g.Grid(), g.source())
}

func (g *Generator) report(grid string, s source) *pb.ReportCaseRequest {
	g.seq++
	c := g.class()
	place := places[g.rng.IntN(len(places))]
	r := &pb.ReportCaseRequest{
		RequestId:   fmt.Sprintf("%s-%d", g.prefix, g.seq),
		Actor:       fmt.Sprintf("%s-%02d", s.actor, 1+g.rng.IntN(20)),
		Role:        s.role,
		Source:      s.src,
		Kind:        c.Kind,
		MajorCode:   c.Major,
		MinorCode:   c.Minor,
		GridCode:    grid,
		Description: fmt.Sprintf("%s, %s %d 号附近", c.Name, place, 1+g.rng.IntN(300)),
		Location:    g.location(grid, place),
		Media:       []string{fmt.Sprintf("photo://%s/%d.jpg", g.prefix, g.seq)},
		Urgency:     pb.Urgency_URGENCY_ORDINARY,
	}
	if c.Kind == pb.Kind_KIND_COMPONENT {
		r.ComponentId = grid[:6] + c.Major + c.Minor + fmt.Sprintf("%06d", 1+g.rng.IntN(999999))
	}
	if c.Major == "04" && c.Kind == pb.Kind_KIND_EVENT || g.rng.IntN(20) == 0 {
		r.Urgency = pb.Urgency_URGENCY_URGENT
	}
	return r
}

// location is a point in the grid's polygon when the sample city's grid
// layer has the grid (so maps show cases where they are), else somewhere
// around 苏州; WGS-84. It draws from the generator as it always did (two
// floats, then the house number), so a seed gives the same reports.
func (g *Generator) location(grid, place string) *pb.Location {
	u, v := g.rng.Float64(), g.rng.Float64()
	l := &pb.Location{Lat: 31.25 + u*0.1, Lng: 120.55 + v*0.1, Address: fmt.Sprintf("%s %d 号", place, 1+g.rng.IntN(300))}
	if reg := sampleLayer(); reg != nil {
		if gr, ok := reg.Grid(grid); ok {
			b := gr.Bound
			p := orb.Point{b.Min[0] + v*(b.Max[0]-b.Min[0]), b.Min[1] + u*(b.Max[1]-b.Min[1])}
			if !planar.MultiPolygonContains(gr.Shape, p) {
				p, _ = planar.CentroidArea(gr.Shape)
			}
			l.Lat, l.Lng = p.Lat(), p.Lon()
		}
	}
	return l
}

// sampleLayer is the sample city's grid layer (nil if it cannot be read).
var sampleLayer = sync.OnceValue(func() *geo.Register {
	reg, err := geo.Sample()
	if err != nil {
		return nil
	}
	return reg
})

// ClassOf finds the class of a case (for its handling unit and time limit).
func ClassOf(c *pb.Case) Class {
	for _, cl := range Classes {
		if cl.Kind == c.Kind && cl.Major == c.MajorCode && cl.Minor == c.MinorCode {
			return cl
		}
	}
	return Class{Unit: "general", LimitMinutes: 480}
}
