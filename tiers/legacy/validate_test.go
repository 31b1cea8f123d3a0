package legacy_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/catalogue"
	"github.com/cityhub/cityhub/tiers/legacy"
)

var cst = time.FixedZone("CST", 8*3600)

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

func validator() *legacy.Validator {
	return &legacy.Validator{Catalogue: catalogue.Default(), GridPrefix: "320505", Location: cst,
		Now: time.Date(2026, 11, 22, 15, 0, 0, 0, cst), RequestID: "imp-1"}
}

// goodRow is a dispatched water cover in 狮山社区.
func goodRow() *pb.LegacyRow {
	return &pb.LegacyRow{Line: 7, LegacyId: "HQCG-2021-00012", ReportedAt: "2021-03-04 09:30:00", Source: "监督员", Kind: "部件",
		Major: "01", Minor: "01", GridCode: "320505001001012", ComponentId: "3205050101000031", Lat: "31.296", Lng: "120.566",
		Address: "狮山路 88 号", Description: "上水井盖破损", Status: "已派遣", DispatchedUnit: "city-water", Deadline: "2021-03-06 17:30:00"}
}

func TestValidateFieldRules(t *testing.T) {
	event := func(r *pb.LegacyRow) { r.Kind, r.Major, r.Minor, r.ComponentId = "事件", "01", "02", "" }
	for _, tc := range []struct {
		name  string
		mod   func(*pb.LegacyRow)
		field string
	}{
		{"legacy id missing", func(r *pb.LegacyRow) { r.LegacyId = "  " }, "legacy_id"},
		{"legacy id too long", func(r *pb.LegacyRow) { r.LegacyId = strings.Repeat("号", 65) }, "legacy_id"},
		{"legacy id not printable", func(r *pb.LegacyRow) { r.LegacyId = "A\tB" }, "legacy_id"},
		{"reported_at missing", func(r *pb.LegacyRow) { r.ReportedAt = "" }, "reported_at"},
		{"reported_at unreadable", func(r *pb.LegacyRow) { r.ReportedAt = "03/04/2021" }, "reported_at"},
		{"reported_at future", func(r *pb.LegacyRow) { r.ReportedAt = "2026-11-22 15:00:01" }, "reported_at"},
		{"reported_at before 2000", func(r *pb.LegacyRow) { r.ReportedAt = "1999-12-31T23:59:59+08:00" }, "reported_at"},
		{"source unknown", func(r *pb.LegacyRow) { r.Source = "微信" }, "source"},
		{"source empty", func(r *pb.LegacyRow) { r.Source = "" }, "source"},
		{"kind unknown", func(r *pb.LegacyRow) { r.Kind = "设施" }, "kind"},
		{"major not digits", func(r *pb.LegacyRow) { r.Major = "0A" }, "major"},
		{"major unknown", func(r *pb.LegacyRow) { r.Major = "09" }, "major"},
		{"minor unknown", func(r *pb.LegacyRow) { r.Minor = "99" }, "minor"},
		{"minor missing", func(r *pb.LegacyRow) { r.Minor = "" }, "minor"},
		{"grid 14 digits", func(r *pb.LegacyRow) { r.GridCode = "32050500100101" }, "grid_code"},
		{"grid elsewhere", func(r *pb.LegacyRow) { event(r); r.GridCode = "320506001001012" }, "grid_code"},
		{"grid elsewhere, component", func(r *pb.LegacyRow) { r.GridCode = "320506001001012" }, "grid_code"},
		{"component id missing", func(r *pb.LegacyRow) { r.ComponentId = "" }, "component_id"},
		{"component id of another class", func(r *pb.LegacyRow) { r.Minor = "18" }, "component_id"},
		{"component id of another district", func(r *pb.LegacyRow) { r.ComponentId = "3205060101000031" }, "component_id"},
		{"component id 15 digits", func(r *pb.LegacyRow) { r.ComponentId = "320505010100003" }, "component_id"},
		{"component id on an event", func(r *pb.LegacyRow) { event(r); r.ComponentId = "3205050102000031" }, "component_id"},
		{"lat out of China", func(r *pb.LegacyRow) { r.Lat = "3.13" }, "lat"},
		{"lat not a number", func(r *pb.LegacyRow) { r.Lat = "北纬31" }, "lat"},
		{"lat NaN", func(r *pb.LegacyRow) { r.Lat = "NaN" }, "lat"},
		{"lng out of China", func(r *pb.LegacyRow) { r.Lng = "150" }, "lng"},
		{"lat without lng", func(r *pb.LegacyRow) { r.Lng = "" }, "lng"},
		{"lng without lat", func(r *pb.LegacyRow) { r.Lat = "" }, "lat"},
		{"address too long", func(r *pb.LegacyRow) { r.Address = strings.Repeat("路", 257) }, "address"},
		{"description missing", func(r *pb.LegacyRow) { r.Description = " " }, "description"},
		{"description too long", func(r *pb.LegacyRow) { r.Description = strings.Repeat("字", 4001) }, "description"},
		{"status unknown", func(r *pb.LegacyRow) { r.Status = "已转办" }, "status"},
		{"unit missing when dispatched", func(r *pb.LegacyRow) { r.DispatchedUnit = "" }, "dispatched_unit"},
		{"unit missing when handled", func(r *pb.LegacyRow) { r.Status, r.DispatchedUnit = "已处置", "" }, "dispatched_unit"},
		{"unit missing when suspended", func(r *pb.LegacyRow) { r.Status, r.DispatchedUnit = "挂账", "" }, "dispatched_unit"},
		{"unit not an id", func(r *pb.LegacyRow) { r.DispatchedUnit = "市自来水公司" }, "dispatched_unit"},
		{"deadline unreadable", func(r *pb.LegacyRow) { r.Deadline = "next week" }, "deadline"},
		{"deadline before report", func(r *pb.LegacyRow) { r.Deadline = "2021-03-04 09:29:59" }, "deadline"},
		{"not UTF-8", func(r *pb.LegacyRow) { r.Address = "\xff" }, "address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := goodRow()
			tc.mod(r)
			ic, e := validator().Row(r)
			if e == nil {
				t.Fatalf("accepted: %v", ic)
			}
			if e.Field != tc.field || e.Line != 7 || e.LegacyId != r.LegacyId || e.Reason == "" {
				t.Fatalf("error %v, want field %s on line 7", e, tc.field)
			}
		})
	}
	// The good row, and the leniencies: spaces, a dropped leading zero,
	// other time formats, English names, an address without coordinates.
	for _, mod := range []func(*pb.LegacyRow){
		func(*pb.LegacyRow) {},
		func(r *pb.LegacyRow) { r.Major, r.Minor = "1", " 1 " },
		func(r *pb.LegacyRow) { r.ReportedAt, r.Deadline = "2021/03/04 09:30:00", "2021-03-06 17:30" },
		func(r *pb.LegacyRow) { r.ReportedAt = "2021-03-04T01:30:00Z" },
		func(r *pb.LegacyRow) { r.Source, r.Kind, r.Status = "INSPECTOR", "Component", "Dispatched" },
		func(r *pb.LegacyRow) {
			r.Source, r.Kind, r.Status = "source_inspector", "KIND_COMPONENT", "state_dispatched"
		},
		func(r *pb.LegacyRow) { r.Lat, r.Lng = "", "" },
		func(r *pb.LegacyRow) { r.LegacyId = " HQCG-2021-00012 " },
	} {
		r := goodRow()
		mod(r)
		ic, e := validator().Row(r)
		if e != nil {
			t.Fatalf("%v refused: %v", r, e)
		}
		c := ic.Case
		if c.LegacyId != "HQCG-2021-00012" || c.MajorCode != "01" || c.MinorCode != "01" || c.State != pb.State_STATE_DISPATCHED ||
			c.Source != pb.Source_SOURCE_INSPECTOR || c.Kind != pb.Kind_KIND_COMPONENT ||
			!c.ReportedAt.AsTime().Equal(time.Date(2021, 3, 4, 9, 30, 0, 0, cst)) || ic.IdDate != "20210304" {
			t.Errorf("%v → %v", r, ic)
		}
	}
}

func TestValidateBuildsTheCase(t *testing.T) {
	r := goodRow()
	r.ReportedAt = "2021-03-04 23:30:00" // 15:30 UTC: the id takes the local date
	ic, e := validator().Row(r)
	if e != nil {
		t.Fatal(e)
	}
	c, at := ic.Case, time.Date(2021, 3, 4, 23, 30, 0, 0, cst)
	want := &pb.Case{
		Source: pb.Source_SOURCE_INSPECTOR, Kind: pb.Kind_KIND_COMPONENT, MajorCode: "01", MinorCode: "01",
		GridCode: "320505001001012", ComponentId: "3205050101000031",
		Location:    &pb.Location{Lat: 31.296, Lng: 120.566, Address: "狮山路 88 号"},
		Description: "上水井盖破损", Urgency: pb.Urgency_URGENCY_ORDINARY, LegacyId: "HQCG-2021-00012",
		State: pb.State_STATE_DISPATCHED, OwnerUnit: "city-water", Version: 1,
		ReportedAt: ts(at), UpdatedAt: ts(at), FiledAt: ts(at), DispatchedAt: ts(at),
		Deadline: ts(time.Date(2021, 3, 6, 17, 30, 0, 0, cst)), StageDeadline: ts(time.Date(2021, 3, 6, 17, 30, 0, 0, cst)),
		History: []*pb.HistoryEntry{{Action: pb.Action_ACTION_REPORT, Actor: legacy.DefaultActor, Role: pb.Role_ROLE_SYSTEM, At: ts(at),
			Note:    "imported from legacy system: legacy_id=HQCG-2021-00012, status=已派遣",
			ToState: pb.State_STATE_DISPATCHED, Version: 1, Unit: "city-water", RequestId: "imp-1"}},
	}
	if !proto.Equal(c, want) || ic.IdDate != "20210304" {
		t.Fatalf("case\n%v\nwant\n%v (id date %s)", c, want, ic.IdDate)
	}

	// Per state: the stage fields, what the note keeps, the actor.
	for _, tc := range []struct {
		status, unit, deadline string
		check                  func(*pb.Case) bool
	}{
		{"待派遣", "", "", func(c *pb.Case) bool {
			return c.State == pb.State_STATE_FILED && c.FiledAt != nil && c.DispatchedAt == nil && c.OwnerUnit == ""
		}},
		{"filed", "320505-roads", "2021-03-06 17:30:00", func(c *pb.Case) bool {
			return c.OwnerUnit == "" && c.Deadline == nil &&
				strings.HasSuffix(c.History[0].Note, ", dispatched_unit=320505-roads, deadline=2021-03-06 17:30:00")
		}},
		{"处置中", "320505-roads", "", func(c *pb.Case) bool {
			return c.State == pb.State_STATE_ACCEPTED && c.OwnerUnit == "320505-roads" && c.Deadline == nil && c.StageDeadline == nil
		}},
		{"待核查", "320505-roads", "2021-03-06 17:30:00", func(c *pb.Case) bool {
			return c.State == pb.State_STATE_HANDLED && c.OwnerUnit == "320505-roads" && c.Deadline == nil &&
				strings.HasSuffix(c.History[0].Note, ", deadline=2021-03-06 17:30:00")
		}},
		{"挂账", "320505-old-construction", "2021-03-06 17:30:00", func(c *pb.Case) bool {
			return c.State == pb.State_STATE_SUSPENDED && c.SuspendedFrom == pb.State_STATE_ACCEPTED && c.Deadline != nil && c.StageDeadline == nil
		}},
		{"已结案", "320505-roads", "", func(c *pb.Case) bool {
			return c.State == pb.State_STATE_CLOSED && c.ClosedAt != nil && c.OwnerUnit == "320505-roads"
		}},
		{"closed", "", "", func(c *pb.Case) bool {
			return c.State == pb.State_STATE_CLOSED && c.ClosedAt != nil && c.FiledAt == nil && c.OwnerUnit == ""
		}},
		{"不予立案", "", "", func(c *pb.Case) bool { return c.State == pb.State_STATE_NOT_FILED && c.FiledAt == nil }},
	} {
		r := goodRow()
		r.Status, r.DispatchedUnit, r.Deadline = tc.status, tc.unit, tc.deadline
		v := validator()
		v.Actor = "王工"
		ic, e := v.Row(r)
		if e != nil {
			t.Fatalf("%s: %v", tc.status, e)
		}
		c := ic.Case
		if !tc.check(c) || c.History[0].Actor != "王工" || c.History[0].ToState != c.State || c.Version != 1 {
			t.Errorf("%s: %v", tc.status, c)
		}
	}
}

func TestStatusMapping(t *testing.T) {
	for s, want := range map[string]pb.State{
		"reported": pb.State_STATE_REPORTED, "上报": pb.State_STATE_REPORTED, "待核实": pb.State_STATE_REPORTED,
		"verified": pb.State_STATE_VERIFIED, "已核实": pb.State_STATE_VERIFIED,
		"filed": pb.State_STATE_FILED, "已立案": pb.State_STATE_FILED, "待派遣": pb.State_STATE_FILED,
		"dispatched": pb.State_STATE_DISPATCHED, "已派遣": pb.State_STATE_DISPATCHED, "待签收": pb.State_STATE_DISPATCHED,
		"accepted": pb.State_STATE_ACCEPTED, "已签收": pb.State_STATE_ACCEPTED, "处置中": pb.State_STATE_ACCEPTED,
		"handled": pb.State_STATE_HANDLED, "已处置": pb.State_STATE_HANDLED, "待核查": pb.State_STATE_HANDLED,
		"closed": pb.State_STATE_CLOSED, "已结案": pb.State_STATE_CLOSED,
		"voided": pb.State_STATE_VOIDED, "已作废": pb.State_STATE_VOIDED,
		"not_filed": pb.State_STATE_NOT_FILED, "Not Filed": pb.State_STATE_NOT_FILED, "not-filed": pb.State_STATE_NOT_FILED, "不予立案": pb.State_STATE_NOT_FILED,
		"suspended": pb.State_STATE_SUSPENDED, "挂账": pb.State_STATE_SUSPENDED, " 挂账 ": pb.State_STATE_SUSPENDED,
		"STATE_CLOSED": pb.State_STATE_CLOSED,
	} {
		if got, ok := legacy.State(s); !ok || got != want {
			t.Errorf("%q → %v %v, want %v", s, got, ok, want)
		}
	}
	for _, s := range []string{"", "已转办", "checked?", "state_", "unspecified"} {
		if got, ok := legacy.State(s); ok {
			t.Errorf("%q accepted as %v", s, got)
		}
	}
	for s, want := range map[string]pb.Source{
		"监督员": pb.Source_SOURCE_INSPECTOR, "信息采集员": pb.Source_SOURCE_INSPECTOR, "12345热线": pb.Source_SOURCE_HOTLINE_12345,
		"12319": pb.Source_SOURCE_HOTLINE_12319, "市民通": pb.Source_SOURCE_APP, "视频": pb.Source_SOURCE_CAMERA,
		"领导交办": pb.Source_SOURCE_LEADER, "媒体": pb.Source_SOURCE_MEDIA, "Media": pb.Source_SOURCE_MEDIA,
	} {
		if got, ok := legacy.Source(s); !ok || got != want {
			t.Errorf("source %q → %v %v, want %v", s, got, ok, want)
		}
	}
	// The refusal lists what is accepted.
	r := goodRow()
	r.Status = "已转办"
	_, e := validator().Row(r)
	for _, w := range []string{`"已转办"`, "reported/上报/待核实", "suspended/挂账", "not_filed/不予立案"} {
		if e == nil || !strings.Contains(e.Reason, w) {
			t.Errorf("reason %v lacks %s", e, w)
		}
	}
}

func TestValidateDuplicates(t *testing.T) {
	a, b, c := goodRow(), goodRow(), goodRow()
	b.Line, c.Line = 8, 9
	b.Status = "已转办" // a bad row still claims its legacy id
	c.LegacyId = "OTHER"
	d := proto.Clone(a).(*pb.LegacyRow)
	d.Line = 12
	cases, good, rejected := validator().Validate([]*pb.LegacyRow{a, b, c, d})
	if len(cases) != 2 || len(good) != 2 || good[0] != a || good[1] != c || cases[1].Case.LegacyId != "OTHER" {
		t.Fatalf("good rows %v", good)
	}
	if len(rejected) != 2 || rejected[0].Line != 8 || rejected[0].Field != "legacy_id" || rejected[1].Line != 12 ||
		rejected[1].Field != "legacy_id" || !strings.Contains(rejected[1].Reason, "line 7") {
		t.Fatalf("rejected %v", rejected)
	}
	kept, dups := legacy.Duplicates([]*pb.LegacyRow{a, b, c, d, {Line: 20}, {Line: 21}})
	if len(kept) != 4 || len(dups) != 2 || dups[0].Row != b || dups[1].Err.Line != 12 {
		t.Fatalf("kept %v dups %v", kept, dups)
	}
}
