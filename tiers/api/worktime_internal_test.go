package api

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/calendar"
)

// TestWorkingTimeLeft: a case read carries the working time to its stage
// deadline on the node's calendar (nights and the weekend do not count),
// negative once the deadline has passed; ended or suspended cases and cases
// without a stage deadline carry none.
func TestWorkingTimeLeft(t *testing.T) {
	cal, err := calendar.New(calendar.Spec{TimeZone: "Asia/Shanghai", Windows: []calendar.Window{{Start: "09:00", End: "12:00"}, {Start: "13:00", End: "18:00"}}})
	if err != nil {
		t.Fatal(err)
	}
	cst := time.FixedZone("CST", 8*3600)
	// Friday 2026-12-04 17:00: one working hour left that day, then Monday.
	now := time.Date(2026, 12, 4, 17, 0, 0, 0, cst)
	s := &CaseServer{work: cal, now: func() time.Time { return now }}
	cases := []struct {
		name     string
		state    pb.State
		deadline time.Time
		want     time.Duration
		none     bool
	}{
		{"same day", pb.State_STATE_DISPATCHED, time.Date(2026, 12, 4, 17, 30, 0, 0, cst), 30 * time.Minute, false},
		{"over the weekend", pb.State_STATE_DISPATCHED, time.Date(2026, 12, 7, 10, 0, 0, 0, cst), 2 * time.Hour, false},
		{"over the lunch break", pb.State_STATE_DISPATCHED, time.Date(2026, 12, 7, 14, 0, 0, 0, cst), 5 * time.Hour, false},
		{"past since Friday morning", pb.State_STATE_ACCEPTED, time.Date(2026, 12, 4, 11, 0, 0, 0, cst), -(1*time.Hour + 4*time.Hour), false},
		{"closed", pb.State_STATE_CLOSED, time.Date(2026, 12, 7, 10, 0, 0, 0, cst), 0, true},
		{"suspended", pb.State_STATE_SUSPENDED, time.Date(2026, 12, 7, 10, 0, 0, 0, cst), 0, true},
		{"no stage deadline", pb.State_STATE_REPORTED, time.Time{}, 0, true},
	}
	for _, tc := range cases {
		c := &pb.Case{State: tc.state}
		if !tc.deadline.IsZero() {
			c.StageDeadline = timestamppb.New(tc.deadline)
		}
		got := s.decorate(c).GetWorkingTimeLeft()
		switch {
		case tc.none && got != nil:
			t.Errorf("%s: working time left %v, want none", tc.name, got.AsDuration())
		case !tc.none && (got == nil || got.AsDuration() != tc.want):
			t.Errorf("%s: working time left %v, want %v", tc.name, got.AsDuration(), tc.want)
		}
	}
	// Without a calendar nothing is computed.
	if got := (&CaseServer{now: time.Now}).decorate(&pb.Case{State: pb.State_STATE_DISPATCHED, StageDeadline: timestamppb.Now()}).GetWorkingTimeLeft(); got != nil {
		t.Errorf("no calendar: %v", got)
	}
}
