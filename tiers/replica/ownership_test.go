package replica

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhub "github.com/cityhub/cityhub"
	"github.com/cityhub/cityhub/config"
	"github.com/cityhub/cityhub/federation/ownership"
	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/api"
	"github.com/cityhub/cityhub/tiers/workflow"
)

// Tests of the replica's ownership wiring (ownership.go): which catalogue
// a node loads, the owners the leader stamps into commands, and
// ResolveOwner's validation.

var cst = time.FixedZone("CST", 8*3600)

func sampleTopology(t *testing.T) *topology.Topology {
	t.Helper()
	topo, err := topology.Load(cityhub.SampleFile("federation.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// otherTopology is a city the sample catalogue knows nothing of.
func otherTopology(t *testing.T) *topology.Topology {
	t.Helper()
	topo, _, err := topology.FromProto(&pb.FederationTopology{Self: "d-110105", Nodes: []*pb.FederationNode{
		{Name: "city", Tier: pb.Tier_TIER_CITY, Jurisdiction: "110100", Replicas: []string{"127.0.0.1:1"}, Units: []string{"city-water"}},
		{Name: "d-110105", Tier: pb.Tier_TIER_DISTRICT, Jurisdiction: "110105", Parent: "city", Replicas: []string{"127.0.0.1:2"}, Units: []string{"d-roads"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func sampleOwners(t *testing.T) owners {
	t.Helper()
	cat, err := ownership.Sample(sampleTopology(t))
	if err != nil {
		t.Fatal(err)
	}
	return owners{cat: cat, loc: cst}
}

// coverCase is an unregistered ownerless cover (0114) in 虎丘区, whose owner
// rotates monthly: January 2026 320505-roads, February 320505-housing.
func coverCase(id string, reported time.Time) *pb.Case {
	return &pb.Case{Id: id, Kind: pb.Kind_KIND_COMPONENT, MajorCode: "01", MinorCode: "14", GridCode: "320505001001005",
		State: pb.State_STATE_VERIFIED, ReportedAt: timestamppb.New(reported), Version: 2}
}

func TestLoadOwnership(t *testing.T) {
	// Nothing configured, even on the sample city's topology: no catalogue
	// (the sample's is not taken by default), and no error.
	for name, topo := range map[string]*topology.Topology{"the sample city": sampleTopology(t), "another city": otherTopology(t)} {
		if cat, err := loadOwnership(config.Config{}, topo); err != nil || cat != nil {
			t.Fatalf("%s without files: %v, %v; want nil, nil", name, cat, err)
		}
	}
	// The sample city's files, named: its catalogue.
	paths, err := cityhub.WriteSample(t.TempDir(), cityhub.SampleRules, cityhub.SampleComponents)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := loadOwnership(config.Config{Ownership: config.OwnershipConfig{Rules: paths[0], Components: paths[1]}}, sampleTopology(t))
	if err != nil || cat == nil || cat.Version() != "2026.1" {
		t.Fatalf("the sample city's files: %v, %v", cat, err)
	}

	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rules := func(unit string) string {
		return `
version: "t-9"
name: test
rules:
  - id: default
    kind: event
    class: "*"
    owner: {unit: ` + unit + `}
    priority: 0
`
	}
	comps := write("components.csv", "component_id,major,minor,name,grid_code,supervising,owning,maintaining\n")
	// Configured files are read and checked against the topology.
	cfg := config.Config{Ownership: config.OwnershipConfig{Rules: write("good.yaml", rules("d-roads")), Components: comps}}
	cat, err = loadOwnership(cfg, otherTopology(t))
	if err != nil || cat == nil || cat.Version() != "t-9" {
		t.Fatalf("configured catalogue: %v, %v", cat, err)
	}
	if o := (owners{cat: cat, loc: cst}).OwnerOf(&pb.Case{Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", GridCode: "110105001001001"}); o.GetUnit() != "d-roads" {
		t.Fatalf("configured catalogue answers %v", o)
	}
	for _, bad := range []struct {
		name      string
		cfg       config.OwnershipConfig
		mentions  []string
		errTarget error
	}{
		{"unit the topology lacks", config.OwnershipConfig{Rules: write("bad.yaml", rules("no-such-unit")), Components: comps},
			[]string{"ownership.rules", "no-such-unit"}, ownership.ErrInvalidCatalogue},
		{"missing rules file", config.OwnershipConfig{Rules: filepath.Join(dir, "absent.yaml"), Components: comps},
			[]string{"ownership.rules"}, os.ErrNotExist},
		{"missing components file", config.OwnershipConfig{Rules: write("good2.yaml", rules("d-roads")), Components: filepath.Join(dir, "absent.csv")},
			[]string{"ownership.components"}, os.ErrNotExist},
	} {
		cat, err := loadOwnership(config.Config{Ownership: bad.cfg}, otherTopology(t))
		if err == nil || cat != nil || !errors.Is(err, bad.errTarget) {
			t.Errorf("%s: %v, %v", bad.name, cat, err)
			continue
		}
		for _, m := range bad.mentions {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("%s: %q does not mention %q", bad.name, err, m)
			}
		}
	}
}

// Stamp writes the catalogue's owner into a report (at the time of the
// report), a filing (from the stored case, at its report time) and every
// imported case; other actions, and a filing of a decided case, carry none.
func TestStampFillsTheOwner(t *testing.T) {
	o := sampleOwners(t)
	jan := time.Date(2026, 1, 20, 10, 0, 0, 0, cst)
	// Just after midnight on 1 February in the city, still January in UTC.
	feb := time.Date(2026, 2, 1, 0, 30, 0, 0, cst)
	want := func(c *pb.Case, at time.Time) *pb.Ownership {
		return o.cat.Resolve(ownership.Query{Kind: c.Kind, Major: c.MajorCode, Minor: c.MinorCode, Grid: c.GridCode, ComponentID: c.ComponentId, At: at.In(cst)})
	}
	if a, b := want(coverCase("x", jan), jan), want(coverCase("x", feb), feb); a.GetUnit() != "320505-roads" || b.GetUnit() != "320505-housing" {
		t.Fatalf("fixture: the rotation gives %q in January and %q in February", a.GetUnit(), b.GetUnit())
	}
	noRead := func(string) (*pb.Case, error) {
		t.Fatal("read a case for a command that needs none")
		return nil, nil
	}

	// A report: the owner now.
	rep := &pb.Command{Body: &pb.Command_Report{Report: &pb.ReportCase{Case: coverCase("", feb)}}}
	o.Stamp(jan, rep, noRead)
	if got := rep.GetReport().GetOwnership(); got == nil || !proto.Equal(got, want(coverCase("", jan), jan)) {
		t.Fatalf("report stamped %v", got)
	}

	// A filing: the owner of the stored case, in the month it was reported
	// (the city's month, not UTC's).
	stored := map[string]*pb.Case{"c-1": coverCase("c-1", feb)}
	decided := coverCase("c-2", feb)
	decided.Ownership = &pb.Ownership{Unit: "320505-parks", Rule: "joint-review", Decided: true}
	stored["c-2"] = decided
	read := func(id string) (*pb.Case, error) {
		if c, ok := stored[id]; ok {
			return proto.Clone(c).(*pb.Case), nil
		}
		return nil, errors.New("not found")
	}
	file := func(id string) *pb.Command {
		return &pb.Command{Body: &pb.Command_Act{Act: &pb.CaseAction{CaseId: id, Action: pb.Action_ACTION_FILE}}}
	}
	cmd := file("c-1")
	o.Stamp(jan, cmd, read)
	if got := cmd.GetAct().GetOwnership(); got.GetUnit() != "320505-housing" || !proto.Equal(got, want(stored["c-1"], feb)) {
		t.Fatalf("filing stamped %v, want the February owner", got)
	}
	// A decided case keeps its owner: nothing stamped.
	cmd = file("c-2")
	o.Stamp(jan, cmd, read)
	if got := cmd.GetAct().GetOwnership(); got != nil {
		t.Fatalf("filing of a decided case stamped %v", got)
	}
	// A case the leader cannot read: nothing stamped (Apply refuses it).
	cmd = file("c-404")
	o.Stamp(jan, cmd, read)
	if got := cmd.GetAct().GetOwnership(); got != nil {
		t.Fatalf("filing of an unknown case stamped %v", got)
	}
	// Other actions carry no owner.
	for _, a := range []pb.Action{pb.Action_ACTION_DISPATCH, pb.Action_ACTION_REASSIGN, pb.Action_ACTION_TRANSFER_UP,
		pb.Action_ACTION_REFER_REVIEW, pb.Action_ACTION_DECIDE_OWNER, pb.Action_ACTION_VERIFY} {
		cmd := &pb.Command{Body: &pb.Command_Act{Act: &pb.CaseAction{CaseId: "c-1", Action: a, Unit: "u"}}}
		o.Stamp(jan, cmd, noRead)
		if got := cmd.GetAct().GetOwnership(); got != nil {
			t.Errorf("%s stamped %v", a, got)
		}
	}

	// An import: every case, each at its own report time; an entry
	// without a case is left alone.
	event := &pb.Case{Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", GridCode: "320505001001005", ReportedAt: timestamppb.New(jan)}
	imp := &pb.Command{Body: &pb.Command_ImportCases{ImportCases: &pb.ImportCases{Cases: []*pb.ImportedCase{
		{Case: coverCase("", jan)}, {Case: coverCase("", feb)}, {}, {Case: event},
	}}}}
	o.Stamp(time.Date(2030, 6, 1, 0, 0, 0, 0, cst), imp, noRead)
	cs := imp.GetImportCases().Cases
	if cs[0].Case.GetOwnership().GetUnit() != "320505-roads" || cs[1].Case.GetOwnership().GetUnit() != "320505-housing" {
		t.Fatalf("import stamped %v and %v", cs[0].Case.GetOwnership(), cs[1].Case.GetOwnership())
	}
	if cs[2].Case != nil {
		t.Fatalf("an empty entry got a case: %v", cs[2].Case)
	}
	if got := cs[3].Case.GetOwnership(); got.GetUnit() == "" || !proto.Equal(got, want(event, jan)) {
		t.Fatalf("imported event stamped %v", got)
	}

	// Other commands are untouched.
	other := &pb.Command{Body: &pb.Command_MarkOverdue{MarkOverdue: &pb.MarkOverdue{CaseId: "c-1"}}}
	before := proto.Clone(other)
	o.Stamp(jan, other, noRead)
	if !proto.Equal(other, before) {
		t.Fatal("Stamp changed a MarkOverdue")
	}
}

func TestResolveOwnerValidates(t *testing.T) {
	o := sampleOwners(t)
	ctx := context.Background()
	for _, bad := range []struct {
		field string
		r     *pb.ResolveOwnerRequest
	}{
		{"kind", &pb.ResolveOwnerRequest{MajorCode: "01", MinorCode: "02", GridCode: "320505001001005"}},
		{"grid_code", &pb.ResolveOwnerRequest{Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02"}},
		{"grid_code", &pb.ResolveOwnerRequest{Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", GridCode: "32050500100100"}},
		{"grid_code", &pb.ResolveOwnerRequest{Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", GridCode: "3205050010010051"}},
	} {
		got, err := o.ResolveOwner(ctx, bad.r)
		var fe *workflow.FieldError
		if got != nil || !errors.As(err, &fe) || fe.Field != bad.field || !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%v: %v, %v; want an invalid %s", bad.r, got, err, bad.field)
		}
	}
	// At a given time: the owner of that month, in the city's zone (two
	// months: at most one of them can be the owner of today's).
	for at, want := range map[time.Time]string{
		time.Date(2026, 1, 31, 23, 30, 0, 0, cst): "320505-roads",
		time.Date(2026, 2, 1, 0, 30, 0, 0, cst):   "320505-housing",
	} {
		got, err := o.ResolveOwner(ctx, &pb.ResolveOwnerRequest{Kind: pb.Kind_KIND_COMPONENT, MajorCode: "01", MinorCode: "14", GridCode: "320505001001005", At: timestamppb.New(at)})
		if err != nil || got.GetUnit() != want || got.GetCatalogueVersion() != "2026.1" {
			t.Errorf("resolve at %v: %v, %v; want %s", at, got, err, want)
		}
	}
}
