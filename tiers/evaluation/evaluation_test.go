package evaluation

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/workflow"
)

func tsMs(ms int64) *timestamppb.Timestamp { return timestamppb.New(time.UnixMilli(ms)) }

func sortStrings(s []string) { slices.Sort(s) }

// queries lists every report the generated data can answer: each day,
// week, month and quarter from late October 2026 to the end of January
// 2027, for every dimension and region level, under both presets. Days
// take one scheme and dimension set less, to keep the test quick.
func queries() []Query {
	var qs []Query
	dims := []Query{{Dimension: Unit}, {Dimension: Region, RegionDigits: 6}, {Dimension: Region}, {Dimension: Region, RegionDigits: 12}, {Dimension: Inspector}}
	add := func(period, at string, schemes []string, dims []Query) {
		for _, s := range schemes {
			for _, d := range dims {
				d.Period, d.At, d.Scheme = period, at, s
				qs = append(qs, d)
			}
		}
	}
	both := []string{"department", "jinhua"}
	for d := time.Date(2026, 10, 26, 0, 0, 0, 0, time.UTC); d.Before(time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC)); d = d.AddDate(0, 0, 1) {
		at := d.Format(DateLayout)
		add(Day, at, []string{"jinhua"}, []Query{dims[0], dims[2], dims[4]})
		if d.Weekday() == time.Wednesday {
			add(Week, at, both, dims)
		}
		if d.Day() == 15 {
			add(Month, at, both, dims)
		}
	}
	add(Quarter, "2026-11-22", both, dims)
	add(Quarter, "2027-01-05", both, dims)
	return qs
}

// TestReportEqualsRecount is the acceptance test of issue 5: a generated
// month of cases, observed write by write (and as multi-entry copies, and
// as one final copy) into counters, reports the same as a recount straight
// from the cases' histories, for every period, dimension and scheme.
func TestReportEqualsRecount(t *testing.T) {
	n := 1500
	if testing.Short() {
		n = 400
	}
	g := newGenerator(t, 20261122)
	g.month(n)
	for _, what := range []string{"ACTION_DISPATCH", "ACTION_CHECK_FAIL", "ACTION_APPROVE_EXTENSION", "ACTION_APPROVE_RETURN",
		"ACTION_DENY_RETURN", "ACTION_TRANSFER_UP", "ACTION_RESUME", "ACTION_VOID", "ACTION_CLOSE", "ACTION_SELF_HANDLE",
		"ACTION_SUPERVISE", "ACTION_REJECT", "overdue"} {
		if g.seen[what] == 0 {
			t.Errorf("the generated month has no %s", what)
		}
	}
	for k, v := range g.w {
		if v <= 0 {
			t.Fatalf("counter %q = %d: counts never go negative and zeros are deleted", k, v)
		}
	}
	var total [numIndicators + 1]int64
	nonEmpty := 0
	for _, q := range queries() {
		got, err := Report(g.w, q)
		if err != nil {
			t.Fatalf("%+v: %v", q, err)
		}
		want := Recount(g.cases, q, cst)
		if !proto.Equal(got, want) {
			t.Fatalf("%s %s %s/%d %s: report differs from the recount\n got  %v\n want %v",
				q.Period, q.At, q.Dimension, q.RegionDigits, q.Scheme, got, want)
		}
		if len(got.Rows) > 0 {
			nonEmpty++
		}
		if q.Period == Month && q.Dimension == Region && q.RegionDigits == 6 && q.Scheme == "department" {
			for _, r := range got.Rows {
				for ind, v := range []int64{0, r.Filed, r.Dispatched, r.Due, r.Closed, r.ClosedOnTime, r.HandledOnTime, r.Rework, r.Overdue, r.Extensions, r.Recurrence} {
					total[ind] += v
				}
			}
		}
	}
	// Every indicator is exercised; the definitions hold in aggregate.
	names := []string{"", "filed", "dispatched", "due", "closed", "closed on time", "handled on time", "rework", "overdue", "extensions", "recurrence"}
	for ind := 1; ind <= numIndicators; ind++ {
		if total[ind] == 0 {
			t.Errorf("no %s counted over the months", names[ind])
		}
	}
	if total[indClosed] > total[indDue] || total[indClosedOnTime] > total[indClosed] || total[indHandledOnTime] > total[indDue] {
		t.Errorf("inconsistent totals %v", total)
	}
	if nonEmpty < len(queries())/3 {
		t.Errorf("only %d of %d reports have rows", nonEmpty, len(queries()))
	}
	t.Logf("%d cases, %d counters, %d reports; month totals by district: %v", len(g.cases), len(g.w), len(queries()), total)
}

// Observing the same case write by write, as copies of several entries, or
// once at the end leaves the same counters; so does re-observing an
// unchanged copy.
func TestObserveIndependentOfDelivery(t *testing.T) {
	g := newGenerator(t, 7)
	g.month(300)
	final := memCounters{}
	for _, c := range g.cases {
		if err := Observe(final, nil, c, cst); err != nil {
			t.Fatal(err)
		}
		if err := Observe(final, c, proto.Clone(c).(*pb.Case), cst); err != nil {
			t.Fatal(err)
		}
	}
	if !maps(g.w, final) {
		t.Fatalf("counters depend on how the versions arrived: %d keys step by step, %d from final copies", len(g.w), len(final))
	}
}

func maps(a, b memCounters) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// A hand-built case, walked step by step with the real workflow.
type walkCase struct {
	t   *testing.T
	c   *pb.Case
	old *pb.Case
	w   memCounters
}

func newWalk(t *testing.T, src pb.Source, actor string, role pb.Role, at time.Time) *walkCase {
	t.Helper()
	wc := &walkCase{t: t, c: &pb.Case{Id: "320505-20261120-000001", Source: src, GridCode: "320505001002003"}, w: memCounters{}}
	if err := workflow.NewCase(wc.c, workflow.Step{Action: pb.Action_ACTION_REPORT, Actor: actor, Role: role, AtUnixMs: at.UnixMilli()}); err != nil {
		t.Fatal(err)
	}
	wc.observe()
	return wc
}

func (wc *walkCase) observe() {
	wc.t.Helper()
	cur := proto.Clone(wc.c).(*pb.Case)
	if err := Observe(wc.w, wc.old, cur, cst); err != nil {
		wc.t.Fatal(err)
	}
	wc.old = cur
}

func (wc *walkCase) do(a pb.Action, actor string, role pb.Role, at time.Time, f func(*workflow.Step)) {
	wc.t.Helper()
	s := workflow.Step{Action: a, Actor: actor, Role: role, AtUnixMs: at.UnixMilli()}
	if f != nil {
		f(&s)
	}
	if err := workflow.Apply(wc.c, s); err != nil {
		wc.t.Fatalf("%s: %v", a, err)
	}
	wc.observe()
}

// row returns the row of key in the report of q (nil when absent), and
// checks the report against the recount.
func (wc *walkCase) row(period, at, dim string, key string) *pb.EvaluationRow {
	wc.t.Helper()
	q := Query{Period: period, At: at, Dimension: dim}
	rep, err := Report(wc.w, q)
	if err != nil {
		wc.t.Fatal(err)
	}
	if want := Recount([]*pb.Case{wc.c}, q, cst); !proto.Equal(rep, want) {
		wc.t.Fatalf("report %v differs from recount %v", rep, want)
	}
	for _, r := range rep.Rows {
		if r.Key == key {
			return r
		}
	}
	return nil
}

func local(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, cstZone)
	if err != nil {
		panic(err)
	}
	return t
}

type counted struct{ filed, dispatched, due, closed, closedOnTime, handledOnTime, rework, overdue, extensions, recurrence int64 }

func countsOf(r *pb.EvaluationRow) counted {
	if r == nil {
		return counted{}
	}
	return counted{r.Filed, r.Dispatched, r.Due, r.Closed, r.ClosedOnTime, r.HandledOnTime, r.Rework, r.Overdue, r.Extensions, r.Recurrence}
}

func TestDueMovesWithTheDeadline(t *testing.T) {
	// Friday 2026-11-20 (W47): filed and dispatched with a deadline on
	// Sunday the 22nd (W47); an extension of 2 days moves it to Tuesday the
	// 24th (W48).
	wc := newWalk(t, pb.Source_SOURCE_INSPECTOR, "insp-1", rInsp, local("2026-11-20 09:00"))
	wc.do(pb.Action_ACTION_FILE, "lead", rLead, local("2026-11-20 09:10"), nil)
	wc.do(pb.Action_ACTION_DISPATCH, "disp", rDisp, local("2026-11-20 09:20"), func(s *workflow.Step) {
		s.Unit, s.DeadlineUnixMs = "water-co", local("2026-11-22 17:00").UnixMilli()
	})
	if got := countsOf(wc.row(Week, "2026-11-22", Unit, "water-co")); got != (counted{filed: 1, dispatched: 1, due: 1}) {
		t.Fatalf("W47 after dispatch: %+v", got)
	}
	wc.do(pb.Action_ACTION_ACCEPT, "water-co", rUnit, local("2026-11-20 10:00"), nil)
	wc.do(pb.Action_ACTION_REQUEST_EXTENSION, "water-co", rUnit, local("2026-11-21 10:00"), func(s *workflow.Step) { s.ExtensionMinutes = 2 * 24 * 60 })
	wc.do(pb.Action_ACTION_APPROVE_EXTENSION, "disp", rDisp, local("2026-11-21 11:00"), nil)
	if got := countsOf(wc.row(Week, "2026-11-22", Unit, "water-co")); got != (counted{filed: 1, dispatched: 1, extensions: 1}) {
		t.Fatalf("W47 after the extension: %+v", got)
	}
	if got := countsOf(wc.row(Week, "2026-11-24", Unit, "water-co")); got != (counted{due: 1}) {
		t.Fatalf("W48 after the extension: %+v", got)
	}
	// Handled on Monday (on time), closed on Wednesday (late).
	wc.do(pb.Action_ACTION_HANDLE, "water-co", rUnit, local("2026-11-23 15:00"), nil)
	if got := countsOf(wc.row(Week, "2026-11-24", Unit, "water-co")); got != (counted{due: 1, handledOnTime: 1}) {
		t.Fatalf("W48 handled: %+v", got)
	}
	wc.do(pb.Action_ACTION_CHECK_PASS, "insp-1", rInsp, local("2026-11-24 16:00"), nil)
	wc.do(pb.Action_ACTION_CLOSE, "lead", rLead, local("2026-11-25 09:00"), nil)
	r := wc.row(Week, "2026-11-24", Unit, "water-co")
	if got := countsOf(r); got != (counted{due: 1, closed: 1, handledOnTime: 1}) {
		t.Fatalf("W48 closed late: %+v", got)
	}
	if r.ClosureRate != 100 || r.OnTimeClosureRate != 0 || r.OnTimeHandlingRate != 100 {
		t.Fatalf("rates %+v", r)
	}
	// The month holds everything; the inspector and the street too.
	if got := countsOf(wc.row(Month, "2026-11-01", Unit, "water-co")); got != (counted{filed: 1, dispatched: 1, due: 1, closed: 1, handledOnTime: 1, extensions: 1}) {
		t.Fatalf("November: %+v", got)
	}
	if got := countsOf(wc.row(Month, "2026-11-30", Inspector, "insp-1")); got.due != 1 || got.filed != 1 {
		t.Fatalf("inspector: %+v", got)
	}
	if got := countsOf(wc.row(Quarter, "2026-10-01", Region, "320505001")); got.due != 1 || got.extensions != 1 {
		t.Fatalf("street: %+v", got)
	}
}

func TestReturnsReworkVoidAndOverdue(t *testing.T) {
	wc := newWalk(t, pb.Source_SOURCE_HOTLINE_12345, "clerk", pb.Role_ROLE_INTAKE_CLERK, local("2026-11-16 08:00"))
	// Verified by insp-2, who becomes the case's inspector.
	wc.do(pb.Action_ACTION_VERIFY, "insp-2", rInsp, local("2026-11-16 08:30"), nil)
	wc.do(pb.Action_ACTION_FILE, "lead", rLead, local("2026-11-16 08:40"), nil)
	wc.do(pb.Action_ACTION_DISPATCH, "disp", rDisp, local("2026-11-16 09:00"), func(s *workflow.Step) {
		s.Unit, s.DeadlineUnixMs = "unit-a", local("2026-11-17 17:00").UnixMilli()
	})
	wc.do(pb.Action_ACTION_REQUEST_RETURN, "unit-a", rUnit, local("2026-11-16 10:00"), func(s *workflow.Step) { s.Note = "not ours" })
	wc.do(pb.Action_ACTION_APPROVE_RETURN, "disp", rDisp, local("2026-11-16 11:00"), nil)
	wc.do(pb.Action_ACTION_DISPATCH, "disp", rDisp, local("2026-11-16 11:30"), func(s *workflow.Step) {
		s.Unit, s.DeadlineUnixMs = "unit-b", local("2026-11-18 17:00").UnixMilli()
	})
	if a, b := countsOf(wc.row(Week, "2026-11-16", Unit, "unit-a")), countsOf(wc.row(Week, "2026-11-16", Unit, "unit-b")); a != (counted{dispatched: 1}) || b != (counted{filed: 1, dispatched: 1, due: 1}) {
		t.Fatalf("after the return: unit-a %+v, unit-b %+v", a, b)
	}
	// A supervision by a person is not an overdue mark; the system's is.
	wc.do(pb.Action_ACTION_SUPERVISE, "super", rSuper, local("2026-11-18 18:00"), func(s *workflow.Step) { s.Note = "overdue: says a person" })
	wc.c.StageDeadline = tsMs(local("2026-11-18 17:00").UnixMilli())
	if err := workflow.MarkOverdue(wc.c, local("2026-11-18 17:00").UnixMilli(), local("2026-11-18 17:01").UnixMilli(), "od"); err != nil {
		t.Fatal(err)
	}
	wc.observe()
	wc.do(pb.Action_ACTION_ACCEPT, "unit-b", rUnit, local("2026-11-19 08:00"), nil)
	wc.do(pb.Action_ACTION_HANDLE, "unit-b", rUnit, local("2026-11-19 09:00"), nil)
	// insp-5 fails the check: the rework counts for unit-b, for the case's
	// inspector (insp-2) and for insp-5; a new deadline moves "due".
	wc.do(pb.Action_ACTION_CHECK_FAIL, "insp-5", rInsp, local("2026-11-19 10:00"), func(s *workflow.Step) {
		s.DeadlineUnixMs = local("2026-11-23 12:00").UnixMilli()
	})
	b := countsOf(wc.row(Week, "2026-11-16", Unit, "unit-b"))
	if b != (counted{filed: 1, dispatched: 1, overdue: 1, rework: 1}) {
		t.Fatalf("unit-b W47: %+v", b)
	}
	if got := countsOf(wc.row(Week, "2026-11-23", Unit, "unit-b")); got != (counted{due: 1}) {
		t.Fatalf("unit-b W48: %+v", got)
	}
	i2, i5 := countsOf(wc.row(Week, "2026-11-16", Inspector, "insp-2")), countsOf(wc.row(Week, "2026-11-16", Inspector, "insp-5"))
	if i2 != (counted{filed: 1, dispatched: 2, overdue: 1, rework: 1}) || i5 != (counted{rework: 1}) {
		t.Fatalf("inspectors: insp-2 %+v, insp-5 %+v", i2, i5)
	}
	// Voided: it leaves filed and due; what happened stays.
	wc.do(pb.Action_ACTION_VOID, "lead", rLead, local("2026-11-20 09:00"), func(s *workflow.Step) { s.Note = "duplicate" })
	if got := countsOf(wc.row(Month, "2026-11-16", Unit, "unit-b")); got != (counted{dispatched: 1, overdue: 1, rework: 1}) {
		t.Fatalf("unit-b after void: %+v", got)
	}
	if got := countsOf(wc.row(Month, "2026-11-16", Region, "320505001")); got != (counted{dispatched: 2, overdue: 1, rework: 1}) {
		t.Fatalf("street after void: %+v", got)
	}
}

func TestSuspensionAndRecurrence(t *testing.T) {
	wc := newWalk(t, pb.Source_SOURCE_MEDIA, "clerk", pb.Role_ROLE_INTAKE_CLERK, local("2026-11-02 08:00"))
	wc.c.RecurrenceOf = "320505-20261001-000009"
	wc.observe() // the report processor links the earlier case
	wc.do(pb.Action_ACTION_VERIFY, "insp-3", rInsp, local("2026-11-02 09:00"), nil)
	wc.do(pb.Action_ACTION_FILE, "lead", rLead, local("2026-11-02 09:10"), nil)
	wc.do(pb.Action_ACTION_DISPATCH, "disp", rDisp, local("2026-11-02 09:20"), func(s *workflow.Step) {
		s.Unit, s.DeadlineUnixMs = "yuanlin", local("2026-11-03 17:00").UnixMilli()
	})
	wc.do(pb.Action_ACTION_REQUEST_SUSPEND, "yuanlin", rUnit, local("2026-11-02 10:00"), nil)
	wc.do(pb.Action_ACTION_APPROVE_SUSPEND, "lead", rLead, local("2026-11-02 11:00"), nil)
	if got := countsOf(wc.row(Day, "2026-11-03", Unit, "yuanlin")); got != (counted{}) {
		t.Fatalf("suspended: due counted %+v", got)
	}
	// Resumed 30 days later: the deadline moves by the suspended time.
	wc.do(pb.Action_ACTION_RESUME, "lead", rLead, local("2026-12-02 11:00"), nil)
	if got := countsOf(wc.row(Day, "2026-12-03", Unit, "yuanlin")); got != (counted{due: 1}) {
		t.Fatalf("resumed: %+v", got)
	}
	if got := countsOf(wc.row(Day, "2026-11-02", Region, "320505001")); got != (counted{filed: 1, dispatched: 1, recurrence: 1}) {
		t.Fatalf("street on the day of the report: %+v", got)
	}
	if got := countsOf(wc.row(Day, "2026-11-02", Inspector, "insp-3")); got.recurrence != 1 {
		t.Fatalf("inspector: %+v", got)
	}
	if got := countsOf(wc.row(Day, "2026-11-02", Unit, "yuanlin")); got.recurrence != 0 {
		t.Fatalf("recurrence is not a unit's: %+v", got)
	}
	// Media cases are also counted apart, for the schemes that weight them.
	var prio int
	for k := range wc.w {
		if k[len(k)-1]&priorityBit != 0 {
			prio++
		}
	}
	if prio == 0 || prio*2 != len(wc.w) {
		t.Fatalf("%d of %d counters are the media's copies, want half", prio, len(wc.w))
	}
}

// Periods are cut in local time: 16:30 UTC on Sunday 22 November is already
// Monday 23 November in UTC+8 (the next ISO week).
func TestLocalOffset(t *testing.T) {
	at := time.Date(2026, 11, 22, 16, 30, 0, 0, time.UTC)
	c := &pb.Case{Id: "x", Source: pb.Source_SOURCE_LEADER, GridCode: "320505001001001"}
	if err := workflow.NewCase(c, workflow.Step{Action: pb.Action_ACTION_REPORT, Actor: "lead", Role: rLead, AtUnixMs: at.UnixMilli()}); err != nil {
		t.Fatal(err)
	}
	if err := workflow.Apply(c, workflow.Step{Action: pb.Action_ACTION_FILE, Actor: "lead", Role: rLead, AtUnixMs: at.UnixMilli()}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		offset int32
		day    string
		other  string
	}{{cst, "2026-11-23", "2026-11-22"}, {0, "2026-11-22", "2026-11-23"}, {-5 * 3600, "2026-11-22", "2026-11-23"}} {
		w := memCounters{}
		if err := Observe(w, nil, c, tc.offset); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{Day, Week} {
			q := Query{Period: p, At: tc.day, Dimension: Region, RegionDigits: 6}
			rep, _ := Report(w, q)
			if len(rep.Rows) != 1 || rep.Rows[0].Filed != 1 || !proto.Equal(rep, Recount([]*pb.Case{c}, q, tc.offset)) {
				t.Errorf("offset %d, %s of %s: %v", tc.offset, p, tc.day, rep)
			}
			q.At = tc.other
			if rep, _ := Report(w, q); len(rep.Rows) != 0 {
				t.Errorf("offset %d: counted on %s too: %v", tc.offset, tc.other, rep)
			}
		}
	}
}

func TestOverdueNoteMatchesWorkflow(t *testing.T) {
	if OverdueNotePrefix != workflow.OverdueNote {
		t.Fatalf("evaluation looks for %q, the workflow writes %q", OverdueNotePrefix, workflow.OverdueNote)
	}
}

func TestParsePeriod(t *testing.T) {
	for _, tc := range []struct{ period, at, want string }{
		{Day, "2026-11-22", "2026-11-22"},
		{Day, "2024-02-29", "2024-02-29"},
		{Week, "2026-11-22", "2026-W47"}, // Sunday: the end of W47
		{Week, "2026-11-23", "2026-W48"}, // Monday
		{Week, "2026-01-01", "2026-W01"}, // Thursday: week 1 holds it
		{Week, "2026-12-31", "2026-W53"}, // 2026 has 53 ISO weeks
		{Week, "2027-01-03", "2026-W53"}, // Sunday: still 2026's week 53
		{Week, "2027-01-04", "2027-W01"},
		{Week, "2024-12-30", "2025-W01"}, // Monday in 2024, week 1 of 2025
		{Week, "2021-01-03", "2020-W53"},
		{Week, "2022-01-02", "2021-W52"},
		{Month, "2026-11-22", "2026-11"},
		{Month, "2027-01-31", "2027-01"},
		{Quarter, "2026-01-01", "2026-Q1"},
		{Quarter, "2026-03-31", "2026-Q1"},
		{Quarter, "2026-04-01", "2026-Q2"},
		{Quarter, "2026-07-01", "2026-Q3"},
		{Quarter, "2026-09-30", "2026-Q3"},
		{Quarter, "2026-12-31", "2026-Q4"},
	} {
		got, err := ParsePeriod(tc.period, tc.at)
		if err != nil || got != tc.want {
			t.Errorf("ParsePeriod(%s, %s) = %q, %v; want %q", tc.period, tc.at, got, err, tc.want)
		}
		// The recount's own calendar agrees.
		d, _ := time.Parse(DateLayout, tc.at)
		if r := recountPeriodName(tc.period, d); r != tc.want {
			t.Errorf("recount names %s of %s %q, want %q", tc.period, tc.at, r, tc.want)
		}
	}
	for _, tc := range []struct{ period, at, field string }{
		{"fortnight", "2026-11-22", "period"},
		{"", "2026-11-22", "period"},
		{"Week", "2026-11-22", "period"},
		{Week, "", "at"},
		{Week, "2026-13-01", "at"},
		{Week, "2026-02-30", "at"},
		{Week, "20261122", "at"},
		{Week, "2026-11-22T10:00:00Z", "at"},
	} {
		_, err := ParsePeriod(tc.period, tc.at)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("ParsePeriod(%q, %q) = %v, want an error naming %s", tc.period, tc.at, err, tc.field)
		}
	}
}

// Period keys sort in time order within a kind, so a range of periods
// would be one range of keys.
func TestPeriodKeysSortInTimeOrder(t *testing.T) {
	for _, code := range periodCodes {
		var prev []byte
		for d := time.Date(2025, 12, 1, 12, 0, 0, 0, time.UTC); d.Year() < 2027; d = d.AddDate(0, 0, 1) {
			k := periodOf(code, d).appendKey(nil)
			if prev != nil && string(k) < string(prev) {
				t.Fatalf("%c: %s sorts before the day before", code, d.Format(DateLayout))
			}
			prev = k
		}
	}
}

// A week is read as its seven days and a quarter as its three months:
// every day of a decade is in exactly the parts of its own week and
// quarter, and each part lies inside the period it is summed into
// (including the ISO weeks that straddle a new year, and 53-week years).
func TestPeriodPartsCoverThePeriod(t *testing.T) {
	for d := time.Date(2019, 12, 20, 12, 0, 0, 0, time.UTC); d.Year() < 2031; d = d.AddDate(0, 0, 1) {
		for _, tc := range []struct {
			code, partCode byte
			n              int
		}{{'w', 'd', 7}, {'q', 'm', 3}, {'d', 'd', 1}, {'m', 'm', 1}} {
			p := periodOf(tc.code, d)
			parts := p.parts()
			if len(parts) != tc.n {
				t.Fatalf("%s: %d parts, want %d", p, len(parts), tc.n)
			}
			found := 0
			for i, part := range parts {
				if part.code != tc.partCode {
					t.Fatalf("%s: part %s is not of kind %c", p, part, tc.partCode)
				}
				if i > 0 && string(part.appendKey(nil)) <= string(parts[i-1].appendKey(nil)) {
					t.Fatalf("%s: parts %s, %s not in time order", p, parts[i-1], part)
				}
				if part == periodOf(tc.partCode, d) {
					found++
				}
				// The part's first day is inside p.
				first := time.Date(part.year, time.Month(max(1, part.n/100)), max(1, part.n%100), 12, 0, 0, 0, time.UTC)
				if part.code == 'm' {
					first = time.Date(part.year, time.Month(part.n), 1, 12, 0, 0, 0, time.UTC)
				}
				if periodOf(tc.code, first) != p {
					t.Fatalf("%s: part %s lies in %s", p, part, periodOf(tc.code, first))
				}
			}
			if found != 1 {
				t.Fatalf("%s: %s is in %d of its parts", p, d.Format(DateLayout), found)
			}
		}
	}
}

func TestQueryErrorsNameTheField(t *testing.T) {
	w := memCounters{}
	for _, tc := range []struct {
		q     Query
		field string
	}{
		{Query{Period: "year", At: "2026-11-22", Dimension: Unit}, "period"},
		{Query{Period: Week, At: "22/11/2026", Dimension: Unit}, "at"},
		{Query{Period: Week, At: "2026-11-22", Dimension: "person"}, "dimension"},
		{Query{Period: Week, At: "2026-11-22", Dimension: Region, RegionDigits: 15}, "region_digits"},
		{Query{Period: Week, At: "2026-11-22", Dimension: Unit, RegionDigits: 3}, "region_digits"},
		{Query{Period: Week, At: "2026-11-22", Dimension: Unit, Scheme: "hangzhou"}, "scheme"},
	} {
		_, err := Report(w, tc.q)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%+v: %v, want an error naming %s", tc.q, err, tc.field)
		}
		if Recount(nil, tc.q, 0) != nil {
			t.Errorf("recount answered the invalid query %+v", tc.q)
		}
	}
	rep, err := Report(w, Query{Period: Week, At: "2026-11-22", Dimension: Region})
	if err != nil || rep.Scheme != "department" || rep.PeriodKey != "2026-W47" || len(rep.Rows) != 0 {
		t.Fatalf("defaults: %v %v", rep, err)
	}
}

func TestMalformedCounterKeys(t *testing.T) {
	p := dimPrefix(nil, period{'d', 2026, 1122}, dimUnit, 0) // a day of 2026-W47
	for _, k := range []string{string(p) + "x", string(p) + "unit\x01\x01", string(p) + "unit\x00\x0b", string(p) + "unit\x00\x00"} {
		w := memCounters{k: 1}
		if _, err := Report(w, Query{Period: Week, At: "2026-11-22", Dimension: Unit}); err == nil {
			t.Errorf("key %q accepted", k)
		}
	}
}

// Schemes on hand-computed rows.
func TestSchemes(t *testing.T) {
	set := func(plain, prio map[byte]int64) *counts {
		c := &counts{}
		for k, v := range plain {
			c[0][k] = v
		}
		for k, v := range prio {
			c[1][k] = v
		}
		return c
	}
	rows := map[string]*counts{
		// filed 10 (the most): 10 points; closure 6/8 = 75%; on-time
		// handling 4/8 = 50%; rework 2/8 = 25%:
		// 10 + 22.5 + 15 + 0.3 × 75 = 70.
		"unit-a": set(map[byte]int64{indFiled: 10, indDue: 8, indClosed: 6, indClosedOnTime: 5, indHandledOnTime: 4, indRework: 2}, nil),
		// 5 + 30 + 30 + 30 = 95.
		"unit-b": set(map[byte]int64{indFiled: 5, indDue: 4, indClosed: 4, indClosedOnTime: 4, indHandledOnTime: 4}, nil),
		// nothing due: 2 + 0 + 0 + 30 = 32.
		"unit-c": set(map[byte]int64{indFiled: 2, indDispatched: 1}, nil),
		// leader cases: due 10 of which 5 a leader's, on time 8 of which 3 a leader's; rework 1, a leader's.
		"unit-d": set(map[byte]int64{indFiled: 10, indDue: 10, indClosed: 8, indClosedOnTime: 8, indHandledOnTime: 8, indRework: 1, indDispatched: 4, indExtensions: 1},
			map[byte]int64{indFiled: 5, indDue: 5, indClosed: 3, indClosedOnTime: 3, indHandledOnTime: 3, indRework: 1}),
		// the same as unit-b: ties go by key.
		"a-unit": set(map[byte]int64{indFiled: 5, indDue: 4, indClosed: 4, indClosedOnTime: 4, indHandledOnTime: 4}, nil),
	}
	for _, tc := range []struct {
		scheme string
		want   []string // key:score in rank order
	}{
		// department: unit-d: 10 + 0.3×80 + 0.3×80 + 0.3×90 = 85.
		{"department", []string{"a-unit:95", "unit-b:95", "unit-d:85", "unit-a:70", "unit-c:32"}},
		// jinhua: unit-a 5/8 = 62.5% → 50 − 7.5 − 0.2×2 = 42.1;
		// unit-b 100% → 50; unit-c 0% → max(0, 50 − 70) = 0;
		// unit-d weighted: on time 8+3 = 11 of 10+5 = 15 → 73.33% → 50,
		// rework 1+1 = 2 → −0.4 → 49.6.
		{"jinhua", []string{"a-unit:50", "unit-b:50", "unit-d:49.6", "unit-a:42.1", "unit-c:0"}},
	} {
		cq, err := Query{Period: Week, At: "2026-11-22", Dimension: Unit, Scheme: tc.scheme}.check()
		if err != nil {
			t.Fatal(err)
		}
		rep := cq.finish(rows)
		var got []string
		for i, r := range rep.Rows {
			got = append(got, fmt.Sprintf("%s:%g", r.Key, r.Score))
			if r.Rank != int32(i+1) {
				t.Errorf("%s: row %d ranked %d", tc.scheme, i, r.Rank)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.scheme, got, tc.want)
		}
		// Rows show plain counts and rates, whatever the scheme weighs.
		for _, r := range rep.Rows {
			if r.Key == "unit-d" && (r.Due != 10 || r.OnTimeClosureRate != 80 || r.ReworkRate != 10 || r.ExtensionRate != 25) {
				t.Errorf("%s: unit-d row %v", tc.scheme, r)
			}
			if r.Key == "unit-a" && (r.ClosureRate != 75 || r.OnTimeClosureRate != 62.5 || r.OnTimeHandlingRate != 50 || r.ReworkRate != 25) {
				t.Errorf("%s: unit-a row %v", tc.scheme, r)
			}
		}
	}
	// A custom scheme from configuration.
	custom := &Scheme{Name: "city-x", OnTimeClosureWeight: 1}
	cq, _ := Query{Period: Week, At: "2026-11-22", Dimension: Unit, Weights: custom}.check()
	rep := cq.finish(rows)
	if rep.Scheme != "city-x" || rep.Rows[0].Score != 100 || rep.Rows[len(rep.Rows)-1].Key != "unit-c" {
		t.Fatalf("custom scheme: %v", rep)
	}
	if got := SchemeNames(); !slices.Equal(got, []string{"department", "jinhua"}) {
		t.Fatalf("presets %v", got)
	}
}
