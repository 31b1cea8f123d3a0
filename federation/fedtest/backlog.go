package fedtest

import (
	"context"
	"encoding/csv"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	cityhub "github.com/cityhub/cityhub"
	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// SampleSpecs are the nodes of the sample city (testdata/city/federation.yaml)
// with their units, for New. With SampleCity among New's options the
// replicas load the sample city's responsibility catalogue and grid layer
// and run reconciliation; no node takes them by default.
func SampleSpecs(t testing.TB) []NodeSpec {
	t.Helper()
	topo, err := topology.Load(cityhub.SampleFile("federation.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var specs []NodeSpec
	for _, n := range topo.Nodes() {
		s := NodeSpec{Name: n.Name, Tier: n.Tier.String(), Jurisdiction: n.Jurisdiction, Parent: n.Parent}
		for _, u := range n.Units {
			s.Units = append(s.Units, u.ID)
		}
		specs = append(specs, s)
	}
	return specs
}

// backlogClass is one kind of problem in a generated backlog, with its
// share. Which unit owns it is the responsibility catalogue's answer, not
// the generator's: the mix only makes sure every kind of owner occurs.
type backlogClass struct {
	kind         pb.Kind
	major, minor string
	weight       int
	trunk        int // 1: on a trunk road grid, -1: off them, 0: any
	registered   bool
}

// districtBacklogMix is a district system's backlog: about 30% city-owned
// (street lamps, water covers, trunk-road collapses, gas leaks), district,
// street and community work, ownerless covers (rotated monthly) and classes
// nobody's rule covers (disputes).
var districtBacklogMix = []backlogClass{
	{pb.Kind_KIND_COMPONENT, "01", "18", 12, 0, false}, // 路灯: city
	{pb.Kind_KIND_COMPONENT, "01", "01", 8, 0, false},  // 上水井盖: city water
	{pb.Kind_KIND_EVENT, "04", "01", 6, 1, false},      // 主干道路面塌陷: city
	{pb.Kind_KIND_EVENT, "04", "03", 4, 0, false},      // 燃气管道破裂: city gas
	{pb.Kind_KIND_EVENT, "05", "05", 13, 0, false},     // 乱停放: district enforcement
	{pb.Kind_KIND_EVENT, "04", "01", 9, -1, false},     // 支路塌陷: district roads
	{pb.Kind_KIND_COMPONENT, "01", "02", 5, 0, false},  // 污水井盖: district roads
	{pb.Kind_KIND_COMPONENT, "01", "02", 3, 0, true},   // registered covers: their maintainer
	{pb.Kind_KIND_EVENT, "05", "01", 10, 0, false},     // 游商: street squad
	{pb.Kind_KIND_EVENT, "01", "02", 10, -1, false},    // 暴露垃圾: street (locality)
	{pb.Kind_KIND_EVENT, "02", "01", 6, 0, false},      // 小广告: community (locality)
	{pb.Kind_KIND_COMPONENT, "01", "13", 8, 0, false},  // 无主井盖: monthly rotation
	{pb.Kind_KIND_COMPONENT, "02", "03", 6, 0, false},  // 公交站亭, unregistered: no rule covers it
}

// sampleGrid is one grid of testdata/city/grids.csv.
type sampleGrid struct {
	code  string
	trunk bool
}

func sampleGrids(t testing.TB, district string) []sampleGrid {
	t.Helper()
	rows, err := csv.NewReader(strings.NewReader(string(cityhub.SampleFile("grids.csv")))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out []sampleGrid
	for _, r := range rows[1:] {
		if strings.HasPrefix(r[0], district) {
			out = append(out, sampleGrid{code: r[0], trunk: r[len(r)-1] == "主干道"})
		}
	}
	if len(out) == 0 {
		t.Fatalf("no grids of %s in grids.csv", district)
	}
	return out
}

func registeredComponents(t testing.TB, district, class string) []string {
	t.Helper()
	rows, err := csv.NewReader(strings.NewReader(string(cityhub.SampleFile("components.csv")))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rows[1:] {
		if strings.HasPrefix(r[0], district) && r[1]+r[2] == class && len(r[0]) == 16 {
			out = append(out, r[0])
		}
	}
	return out
}

// Backlog generates n cases of district's old system (a jurisdiction code
// of the sample city), deterministic for a seed: reported 2019-2026, mostly
// filed, dispatched or accepted, dispatched to the district's own units
// (some of which no longer exist), as ImportCases entries.
func Backlog(t testing.TB, district string, n int, seed uint64) []*pb.ImportedCase {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	grids := sampleGrids(t, district)
	registered := registeredComponents(t, district, "0102")
	total := 0
	for _, m := range districtBacklogMix {
		total += m.weight
	}
	units := []string{district + "-roads", district + "-sanitation", district + "-enforcement", district + "-parks", district + "-old-construction"}
	start := time.Date(2019, 1, 1, 9, 0, 0, 0, time.UTC)
	span := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC).Sub(start)
	out := make([]*pb.ImportedCase, 0, n)
	for i := 0; i < n; i++ {
		w := rng.IntN(total)
		var m backlogClass
		for _, m = range districtBacklogMix {
			if w < m.weight {
				break
			}
			w -= m.weight
		}
		var g sampleGrid
		for {
			g = grids[rng.IntN(len(grids))]
			if m.trunk == 0 || (m.trunk == 1) == g.trunk {
				break
			}
		}
		reported := start.Add(time.Duration(rng.Int64N(int64(span)))).Truncate(time.Minute)
		c := &pb.Case{
			LegacyId: fmt.Sprintf("%s-L%07d", district, i+1), Source: pb.Source_SOURCE_INSPECTOR,
			Kind: m.kind, MajorCode: m.major, MinorCode: m.minor, GridCode: g.code,
			Description: fmt.Sprintf("积存案件 %d", i+1), Urgency: pb.Urgency_URGENCY_ORDINARY,
			ReportedAt: timestamppb.New(reported), Version: 1,
			Location: &pb.Location{Lat: 31.29 + rng.Float64()/100, Lng: 120.55 + rng.Float64()/100, Address: "苏州市"},
		}
		if m.kind == pb.Kind_KIND_COMPONENT {
			c.ComponentId = fmt.Sprintf("%s%s%s%06d", district, m.major, m.minor, 900000+i%100000)
			if m.registered && len(registered) > 0 {
				c.ComponentId = registered[rng.IntN(len(registered))]
			}
		}
		st := []pb.State{pb.State_STATE_FILED, pb.State_STATE_DISPATCHED, pb.State_STATE_DISPATCHED,
			pb.State_STATE_ACCEPTED, pb.State_STATE_ACCEPTED, pb.State_STATE_HANDLED}[rng.IntN(6)]
		c.State = st
		c.FiledAt = timestamppb.New(reported.Add(20 * time.Minute))
		if st != pb.State_STATE_FILED {
			c.OwnerUnit = units[rng.IntN(len(units))]
			c.DispatchedAt = timestamppb.New(reported.Add(40 * time.Minute))
			c.Deadline = timestamppb.New(reported.Add(72 * time.Hour))
			c.StageDeadline = c.Deadline
		}
		c.History = []*pb.HistoryEntry{{
			Action: pb.Action_ACTION_REPORT, Actor: "legacy-import", Role: pb.Role_ROLE_SYSTEM, At: c.ReportedAt,
			ToState: st, Version: 1, Unit: c.OwnerUnit, Note: "imported from the district's old system: " + c.LegacyId,
		}}
		out = append(out, &pb.ImportedCase{Case: c, IdDate: reported.Format("20060102")})
	}
	return out
}

// Import writes cases into node's store through its leader's log, in
// batches, and returns the case ids by legacy id.
func (f *Federation) Import(ctx context.Context, node string, cases []*pb.ImportedCase, batch int) map[string]string {
	f.t.Helper()
	ids := map[string]string{}
	g := f.Groups[node]
	for lo := 0; lo < len(cases); lo += batch {
		hi := min(lo+batch, len(cases))
		cmd := &pb.Command{RequestId: fmt.Sprintf("import/%s/%s", node, cases[lo].Case.LegacyId), Body: &pb.Command_ImportCases{ImportCases: &pb.ImportCases{Cases: cases[lo:hi]}}}
		var err error
		for attempt := 0; attempt < 50; attempt++ {
			l := g.WaitLeader(10 * time.Second)
			r, e := g.Replica(l).Node.ApplyLocal(ctx, cmd)
			if err = e; err == nil {
				for i, id := range r.CaseIDs {
					ids[cases[lo+i].Case.LegacyId] = id
				}
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			f.t.Fatalf("import %s[%d:%d]: %v", node, lo, hi, err)
		}
	}
	return ids
}

// SampleCity is the option naming the sample city's responsibility
// catalogue and grid layer in every replica's configuration
// (testcluster.SampleCity): a federation of SampleSpecs runs on them.
func SampleCity(t testing.TB) Option {
	t.Helper()
	return testcluster.SampleCity(t)
}
