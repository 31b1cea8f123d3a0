package deadline_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cityhub/cityhub/config"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	. "github.com/cityhub/cityhub/tiers/deadline"
)

var sh = time.FixedZone("CST", 8*3600)

func at(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, sh)
	if err != nil {
		panic(err)
	}
	return t
}

func policy(t *testing.T) *Policy {
	t.Helper()
	p, err := Parse(config.DefaultDeadlinePolicy)
	if err != nil {
		t.Fatalf("the embedded policy does not parse: %v", err)
	}
	return p
}

func TestDefaultPolicyLimits(t *testing.T) {
	p := policy(t)
	garbage := &pb.Case{Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02"}
	cover := &pb.Case{Kind: pb.Kind_KIND_COMPONENT, MajorCode: "01", MinorCode: "01", Urgency: pb.Urgency_URGENCY_URGENT}
	other := &pb.Case{Kind: pb.Kind_KIND_EVENT, MajorCode: "02", MinorCode: "01"}
	for _, tc := range []struct {
		stage Stage
		c     *pb.Case
		want  time.Duration
	}{
		{StageHandle, garbage, 4 * time.Hour},
		{StageHandle, cover, 30 * time.Minute},
		{StageHandle, other, 7*time.Hour + 30*time.Minute},
		{StageVerify, other, time.Hour},
		{StageFile, cover, 10 * time.Minute},
		{StageDispatch, other, 30 * time.Minute},
	} {
		if got := p.Limit(tc.stage, tc.c); got != tc.want {
			t.Errorf("%s of %s: %v, want %v", tc.stage, ClassKey(tc.c.Kind, tc.c.MajorCode, tc.c.MinorCode), got, tc.want)
		}
	}
	// Exposed garbage dispatched Friday 16:00: 2 h that day, 2 h on Monday.
	if got := p.Deadline(StageHandle, garbage, at("2026-11-20 16:00")); !got.Equal(at("2026-11-23 10:30")) {
		t.Errorf("handling deadline from Friday 16:00: %v", got.In(sh))
	}
	// National Day: dispatched 30 Sept 17:00, one working day (7h30): 1 h that
	// day, 1–7 Oct off, 6h30 on Thursday 8 Oct.
	if got := p.Deadline(StageHandle, other, at("2026-09-30 17:00")); !got.Equal(at("2026-10-08 17:00")) {
		t.Errorf("handling deadline across National Day: %v", got.In(sh))
	}
}

func TestParseNamesEveryProblem(t *testing.T) {
	bad := strings.NewReplacer(
		"verify:   {ordinary: 1h,", "verify:   {ordinary: soon,",
		"kind: event,     major: \"01\", minor: \"04\"", "kind: thing,     major: \"01\", minor: \"04\"",
		"workdays: [monday,", "workdays: [mondy,",
	).Replace(string(config.DefaultDeadlinePolicy))
	_, err := Parse([]byte(bad))
	if err == nil {
		t.Fatal("a bad policy parsed")
	}
	for _, key := range []string{"limits.verify.ordinary", "handle_by_class[1].kind", "calendar.workdays[0]"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s: %v", key, err)
		}
	}
	if _, err := Parse([]byte("calendar: {windows: [{start: \"08:00\", end: \"12:00\"}]}\nlimits: {}\n")); err == nil || !strings.Contains(err.Error(), "limits.handle: required") {
		t.Errorf("missing limits: %v", err)
	}
	if _, err := Parse([]byte("nonsense: 1\n")); err == nil {
		t.Error("an unknown key parsed")
	}
}

func ms(s string) int64 { return at(s).UnixMilli() }

func TestStamp(t *testing.T) {
	p := policy(t)
	now := at("2026-11-23 11:00") // Monday
	garbage := &pb.Case{Id: "c1", Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02"}
	read := func(id string) (*pb.Case, error) {
		if id != garbage.Id {
			return nil, errors.New("not found")
		}
		return garbage, nil
	}
	rep := &pb.Command{Body: &pb.Command_Report{Report: &pb.ReportCase{Case: garbage}}}
	p.Stamp(now, rep, read)
	if got := rep.GetReport().StageDeadlineUnixMs; got != ms("2026-11-23 12:00") {
		t.Errorf("verify deadline %v, want 12:00 (1 working hour, ending with the morning window)", time.UnixMilli(got).In(sh))
	}
	act := func(a *pb.CaseAction) *pb.CaseAction {
		a.CaseId = "c1"
		p.Stamp(now, &pb.Command{Body: &pb.Command_Act{Act: a}}, read)
		return a
	}
	if a := act(&pb.CaseAction{Action: pb.Action_ACTION_FILE}); a.StageDeadlineUnixMs != ms("2026-11-23 11:30") {
		t.Errorf("dispatch-stage deadline after FILE: %v", time.UnixMilli(a.StageDeadlineUnixMs).In(sh))
	}
	if a := act(&pb.CaseAction{Action: pb.Action_ACTION_DISPATCH}); a.DeadlineUnixMs != ms("2026-11-23 17:00") {
		t.Errorf("class handling deadline: %v, want 17:00 (4 working hours)", time.UnixMilli(a.DeadlineUnixMs).In(sh))
	}
	if a := act(&pb.CaseAction{Action: pb.Action_ACTION_DISPATCH, TimeLimitMinutes: 120}); a.DeadlineUnixMs != ms("2026-11-23 15:00") {
		t.Errorf("time limit in working minutes: %v, want 15:00", time.UnixMilli(a.DeadlineUnixMs).In(sh))
	}
	if a := act(&pb.CaseAction{Action: pb.Action_ACTION_DISPATCH, DeadlineUnixMs: ms("2026-12-01 09:00")}); a.DeadlineUnixMs != ms("2026-12-01 09:00") {
		t.Error("an explicit deadline was replaced")
	}
	// Extension: 3 working hours added to a deadline of Monday 17:00 → 1 h
	// Monday, 2 h Tuesday morning: 10:30.
	garbage.Deadline = timestamppb.New(at("2026-11-23 17:00"))
	garbage.Pending = &pb.Pending{Action: pb.Action_ACTION_REQUEST_EXTENSION, ExtensionMinutes: 180}
	a := act(&pb.CaseAction{Action: pb.Action_ACTION_APPROVE_EXTENSION})
	if !a.HasBaseDeadline || a.BaseDeadlineUnixMs != ms("2026-11-23 17:00") || a.DeadlineUnixMs != ms("2026-11-24 10:30") {
		t.Errorf("extension: base %v, new %v", time.UnixMilli(a.BaseDeadlineUnixMs).In(sh), time.UnixMilli(a.DeadlineUnixMs).In(sh))
	}
	// Resume: suspended Friday 17:00 to Monday 11:00 = 1 h + 2 h 30 working → deadline +3h30.
	garbage.Pending = nil
	garbage.SuspendedAt = timestamppb.New(at("2026-11-20 17:00"))
	a = act(&pb.CaseAction{Action: pb.Action_ACTION_RESUME})
	if a.DeadlineUnixMs != ms("2026-11-24 11:00") {
		t.Errorf("resume: new deadline %v, want Tuesday 11:00", time.UnixMilli(a.DeadlineUnixMs).In(sh))
	}
}

func TestSettleAndCheckBase(t *testing.T) {
	c := &pb.Case{Id: "c1", State: pb.State_STATE_FILED, StageDeadline: timestamppb.New(at("2026-11-23 11:30")), Overdue: true}
	// The workflow moved it to DISPATCHED: the stage deadline is the handling deadline; the mark clears.
	c.State, c.Deadline = pb.State_STATE_DISPATCHED, timestamppb.New(at("2026-11-23 17:00"))
	Settle(c, pb.State_STATE_FILED, &pb.CaseAction{Action: pb.Action_ACTION_DISPATCH}, ms("2026-11-23 11:00"))
	if !c.StageDeadline.AsTime().Equal(at("2026-11-23 17:00")) || c.Overdue {
		t.Fatalf("after dispatch: stage %v overdue %v", c.StageDeadline.AsTime().In(sh), c.Overdue)
	}
	// An extension stamped from another deadline is refused.
	stale := &pb.CaseAction{Action: pb.Action_ACTION_APPROVE_EXTENSION, HasBaseDeadline: true, BaseDeadlineUnixMs: ms("2026-11-23 16:00"), DeadlineUnixMs: ms("2026-11-24 10:00")}
	if err := CheckBase(c, stale); !errors.Is(err, ErrStale) {
		t.Fatalf("stale base: %v", err)
	}
	ok := &pb.CaseAction{Action: pb.Action_ACTION_APPROVE_EXTENSION, HasBaseDeadline: true, BaseDeadlineUnixMs: ms("2026-11-23 17:00"), DeadlineUnixMs: ms("2026-11-24 11:30")}
	if err := CheckBase(c, ok); err != nil {
		t.Fatal(err)
	}
	c.Overdue = true
	Settle(c, pb.State_STATE_DISPATCHED, ok, ms("2026-11-23 12:00"))
	if !c.Deadline.AsTime().Equal(at("2026-11-24 11:30")) || !c.StageDeadline.AsTime().Equal(at("2026-11-24 11:30")) || c.Overdue {
		t.Fatalf("after extension: deadline %v stage %v overdue %v", c.Deadline.AsTime().In(sh), c.StageDeadline.AsTime().In(sh), c.Overdue)
	}
	// Suspended: no stage deadline runs.
	c.State = pb.State_STATE_SUSPENDED
	Settle(c, pb.State_STATE_ACCEPTED, &pb.CaseAction{Action: pb.Action_ACTION_APPROVE_SUSPEND}, ms("2026-11-23 13:00"))
	if c.StageDeadline != nil {
		t.Fatal("a suspended case keeps a stage deadline")
	}
	// Handled: handled_at and the check deadline.
	c.State = pb.State_STATE_HANDLED
	Settle(c, pb.State_STATE_ACCEPTED, &pb.CaseAction{Action: pb.Action_ACTION_HANDLE, StageDeadlineUnixMs: ms("2026-11-24 16:00")}, ms("2026-11-24 14:00"))
	if c.HandledAt.AsTime().UnixMilli() != ms("2026-11-24 14:00") || c.StageDeadline.AsTime().UnixMilli() != ms("2026-11-24 16:00") {
		t.Fatalf("after handle: handled %v stage %v", c.HandledAt, c.StageDeadline)
	}
	// Closed: none.
	c.State = pb.State_STATE_CLOSED
	Settle(c, pb.State_STATE_CHECKED, &pb.CaseAction{Action: pb.Action_ACTION_CLOSE}, ms("2026-11-24 17:00"))
	if c.StageDeadline != nil {
		t.Fatal("a closed case keeps a stage deadline")
	}
}
