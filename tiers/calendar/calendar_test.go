package calendar

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

const layout = "2006-01-02 15:04"

func at(t *testing.T, loc *time.Location, s string) time.Time {
	t.Helper()
	v, err := time.ParseInLocation(layout, s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func shanghai(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func newYork(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// The notice's own weekdays: the data matches the published arrangement.
func TestChina2026Data(t *testing.T) {
	loc := shanghai(t)
	c := Default()
	makeup := map[string]time.Weekday{
		"2026-01-04": time.Sunday, "2026-02-14": time.Saturday, "2026-02-28": time.Saturday,
		"2026-05-09": time.Saturday, "2026-09-20": time.Sunday, "2026-10-10": time.Saturday,
	}
	for d, wd := range makeup {
		v := at(t, loc, d+" 10:00")
		if v.Weekday() != wd || !c.IsWorkday(v) {
			t.Errorf("make-up day %s: weekday %s (want %s), workday %v", d, v.Weekday(), wd, c.IsWorkday(v))
		}
	}
	// First day of each run with its weekday per the notice, and run length.
	runs := []struct {
		first string
		wd    time.Weekday
		days  int
	}{
		{"2026-01-01", time.Thursday, 3}, {"2026-02-15", time.Sunday, 9}, {"2026-04-04", time.Saturday, 3},
		{"2026-05-01", time.Friday, 5}, {"2026-06-19", time.Friday, 3}, {"2026-09-25", time.Friday, 3},
		{"2026-10-01", time.Thursday, 7},
	}
	off := 0
	for _, r := range runs {
		v := at(t, loc, r.first+" 10:00")
		if v.Weekday() != r.wd {
			t.Errorf("%s is a %s, want %s", r.first, v.Weekday(), r.wd)
		}
		for i := range r.days {
			if d := v.AddDate(0, 0, i); c.IsWorkday(d) {
				t.Errorf("%s in the run from %s is a working day", d.Format(time.DateOnly), r.first)
			}
		}
		off += r.days
	}
	if off != 33 {
		t.Errorf("2026 has %d days of holiday runs, want 33", off)
	}
	// Working days in 2026: 365 - 104 weekend days - holidays on weekdays
	// + 6 make-up days. Weekday holidays: 1/1,1/2 (2); 2/16-2/20,2/23 (6);
	// 4/6 (1); 5/1,5/4,5/5 (3); 6/19 (1); 9/25 (1); 10/1,10/2,10/5-10/7 (5):
	// 19, so 248.
	n := 0
	for v := at(t, loc, "2026-01-01 12:00"); v.Year() == 2026; v = v.AddDate(0, 0, 1) {
		if c.IsWorkday(v) {
			n++
		}
	}
	if want := 365 - 104 - 19 + 6; n != want {
		t.Errorf("2026 has %d working days, want %d", n, want)
	}
}

func TestAddDefault(t *testing.T) {
	loc := shanghai(t)
	c := Default()
	cases := []struct {
		name  string
		start string
		d     time.Duration
		want  string
	}{
		{"within a window", "2026-03-10 09:00", 2 * time.Hour, "2026-03-10 11:00"},
		{"exactly to the window end", "2026-03-10 11:00", time.Hour, "2026-03-10 12:00"},
		{"across lunch", "2026-03-10 11:00", 2 * time.Hour, "2026-03-10 15:00"},
		{"afternoon exactly to the end of day", "2026-03-10 14:00", 4 * time.Hour, "2026-03-10 18:00"},
		{"across a night", "2026-03-10 17:00", 2 * time.Hour, "2026-03-11 09:30"},
		{"Friday to Monday", "2026-03-13 17:30", time.Hour, "2026-03-16 09:00"},
		{"start at 07:00", "2026-03-10 07:00", 30 * time.Minute, "2026-03-10 09:00"},
		{"start at 12:30 (lunch)", "2026-03-10 12:30", 30 * time.Minute, "2026-03-10 14:30"},
		{"start at 23:59", "2026-03-10 23:59", time.Hour, "2026-03-11 09:30"},
		{"start at 18:00 (closing)", "2026-03-10 18:00", 10 * time.Minute, "2026-03-11 08:40"},
		{"start at 08:30 (opening)", "2026-03-10 08:30", 10 * time.Minute, "2026-03-10 08:40"},
		{"start on Saturday", "2026-03-14 10:00", 4 * time.Hour, "2026-03-16 14:30"},
		{"urgent 10 min", "2026-03-10 11:55", 10 * time.Minute, "2026-03-10 14:05"},
		{"one full working day", "2026-03-10 10:00", 7*time.Hour + 30*time.Minute, "2026-03-11 10:00"},
		{"National Day run", "2026-09-30 17:00", 2 * time.Hour, "2026-10-08 09:30"},
		{"start on a holiday (National Day)", "2026-10-03 10:00", time.Hour, "2026-10-08 09:30"},
		{"into the make-up Saturday 10/10", "2026-10-09 17:00", 2 * time.Hour, "2026-10-10 09:30"},
		{"within the make-up Saturday", "2026-10-10 11:00", 2 * time.Hour, "2026-10-10 15:00"},
		{"make-up Sunday 9/20", "2026-09-18 17:00", 2 * time.Hour, "2026-09-20 09:30"},
		{"Mid-Autumn Fri-Sun", "2026-09-24 17:00", 2 * time.Hour, "2026-09-28 09:30"},
		{"into the make-up Saturday 2/14", "2026-02-13 17:00", 2 * time.Hour, "2026-02-14 09:30"},
		{"across the Spring Festival", "2026-02-14 17:00", 2 * time.Hour, "2026-02-24 09:30"},
		{"Qingming Monday off", "2026-04-03 17:00", 2 * time.Hour, "2026-04-07 09:30"},
		{"New Year into make-up Sunday 1/4", "2025-12-31 17:00", 2 * time.Hour, "2026-01-04 09:30"},
		{"zero duration keeps the start", "2026-03-10 07:00", 0, "2026-03-10 07:00"},
		{"zero duration on a holiday", "2026-10-03 10:00", 0, "2026-10-03 10:00"},
		{"back across the night", "2026-03-11 09:30", -2 * time.Hour, "2026-03-10 17:00"},
		{"back exactly to the opening", "2026-03-10 15:00", -time.Hour, "2026-03-10 14:00"},
		{"back across lunch", "2026-03-10 15:00", -2 * time.Hour, "2026-03-10 11:00"},
		{"back across National Day", "2026-10-08 09:30", -2 * time.Hour, "2026-09-30 17:00"},
		{"back from a holiday", "2026-10-03 10:00", -30 * time.Minute, "2026-09-30 17:30"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start, want := at(t, loc, tc.start), at(t, loc, tc.want)
			got := c.Add(start, tc.d)
			if !got.Equal(want) {
				t.Fatalf("Add(%s, %v) = %s, want %s", tc.start, tc.d, got.Format(layout), tc.want)
			}
			if got.Location() != c.Location() {
				t.Errorf("result in %v, want %v", got.Location(), c.Location())
			}
			if b := c.Between(start, got); b != tc.d {
				t.Errorf("Between(%s, %s) = %v, want %v", tc.start, tc.want, b, tc.d)
			}
		})
	}
}

func TestAddDays(t *testing.T) {
	loc := shanghai(t)
	c := Default()
	if c.DayLength() != 7*time.Hour+30*time.Minute {
		t.Fatalf("DayLength = %v", c.DayLength())
	}
	cases := []struct {
		start string
		n     int
		want  string
	}{
		{"2026-03-10 10:00", 1, "2026-03-11 10:00"},
		{"2026-03-13 10:00", 1, "2026-03-16 10:00"},  // Friday -> Monday
		{"2026-03-10 20:00", 1, "2026-03-11 18:00"},  // outside: from the next opening
		{"2026-03-10 07:00", 1, "2026-03-10 18:00"},  // before opening: that day's end
		{"2026-03-10 12:30", 1, "2026-03-11 12:00"},  // at lunch: 4h from 14:00, 3h30 next morning
		{"2026-09-30 10:00", 1, "2026-10-08 10:00"},  // National Day
		{"2026-10-09 10:00", 1, "2026-10-10 10:00"},  // make-up Saturday
		{"2026-10-09 10:00", 2, "2026-10-12 10:00"},  // then Monday
		{"2026-03-10 10:00", 0, "2026-03-10 10:00"},  // zero
		{"2026-03-11 10:00", -1, "2026-03-10 10:00"}, // backwards
		{"2026-10-08 10:00", -1, "2026-09-30 10:00"},
		// 60 working days from Monday 2 March: 21 in March (3/3-3/31),
		// April 3/6 Qingming off: 21 (42), May 1-5 off, 5/9 make-up:
		// 5/6-5/8 (45), 5/9 (46), 5/11-15 (51), 5/18-22 (56), 5/25-28 (60).
		{"2026-03-02 09:00", 60, "2026-05-28 09:00"},
		// 20 working days (demolition) from National Day eve: 10/8-10/10 (3),
		// 10/12-16 (8), 10/19-23 (13), 10/26-30 (18), 11/2-3 (20).
		{"2026-09-30 16:00", 20, "2026-11-03 16:00"},
	}
	for _, tc := range cases {
		start, want := at(t, loc, tc.start), at(t, loc, tc.want)
		if got := c.AddDays(start, tc.n); !got.Equal(want) {
			t.Errorf("AddDays(%s, %d) = %s, want %s", tc.start, tc.n, got.Format(layout), tc.want)
		}
	}
}

func TestBetween(t *testing.T) {
	loc := shanghai(t)
	c := Default()
	cases := []struct {
		a, b string
		want time.Duration
	}{
		{"2026-03-10 09:00", "2026-03-10 09:00", 0},
		{"2026-03-10 09:00", "2026-03-10 11:00", 2 * time.Hour},
		{"2026-03-10 07:00", "2026-03-10 08:30", 0},
		{"2026-03-10 12:00", "2026-03-10 14:00", 0},
		{"2026-03-10 11:00", "2026-03-10 15:00", 2 * time.Hour},
		{"2026-03-10 09:00", "2026-03-11 09:00", 7*time.Hour + 30*time.Minute},
		{"2026-03-13 17:30", "2026-03-16 09:00", time.Hour},
		{"2026-03-14 00:00", "2026-03-16 00:00", 0},
		{"2026-09-30 17:00", "2026-10-08 09:30", 2 * time.Hour},
		{"2026-10-01 00:00", "2026-10-08 00:00", 0},
		{"2026-10-10 00:00", "2026-10-11 00:00", 7*time.Hour + 30*time.Minute},
		{"2026-03-02 00:00", "2026-03-09 00:00", 5 * (7*time.Hour + 30*time.Minute)},
		{"2026-03-10 11:00", "2026-03-10 09:00", -2 * time.Hour},
		{"2026-10-08 09:30", "2026-09-30 17:00", -2 * time.Hour},
	}
	for _, tc := range cases {
		if got := c.Between(at(t, loc, tc.a), at(t, loc, tc.b)); got != tc.want {
			t.Errorf("Between(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
	// Instants given in another zone are the same instants.
	a := at(t, loc, "2026-03-10 09:00").UTC()
	b := at(t, loc, "2026-03-10 11:00").In(newYork(t))
	if got := c.Between(a, b); got != 2*time.Hour {
		t.Errorf("Between across zones = %v", got)
	}
	// 2026 has 248 working days.
	if got := c.Between(at(t, loc, "2026-01-01 00:00"), at(t, loc, "2027-01-01 00:00")); got != 248*c.DayLength() {
		t.Errorf("working time in 2026 = %v, want %v", got, 248*c.DayLength())
	}
}

func TestIsWorkingAndNextWorking(t *testing.T) {
	loc := shanghai(t)
	c := Default()
	cases := []struct {
		t       string
		working bool
		next    string
	}{
		{"2026-03-10 07:00", false, "2026-03-10 08:30"},
		{"2026-03-10 08:30", true, "2026-03-10 08:30"},
		{"2026-03-10 10:00", true, "2026-03-10 10:00"},
		{"2026-03-10 12:00", false, "2026-03-10 14:00"},
		{"2026-03-10 12:30", false, "2026-03-10 14:00"},
		{"2026-03-10 17:59", true, "2026-03-10 17:59"},
		{"2026-03-10 18:00", false, "2026-03-11 08:30"},
		{"2026-03-10 23:59", false, "2026-03-11 08:30"},
		{"2026-03-13 18:00", false, "2026-03-16 08:30"},
		{"2026-03-14 10:00", false, "2026-03-16 08:30"},
		{"2026-10-03 10:00", false, "2026-10-08 08:30"},
		{"2026-10-10 10:00", true, "2026-10-10 10:00"},
		{"2026-09-19 10:00", false, "2026-09-20 08:30"},
	}
	for _, tc := range cases {
		v := at(t, loc, tc.t)
		if got := c.IsWorking(v); got != tc.working {
			t.Errorf("IsWorking(%s) = %v", tc.t, got)
		}
		if got := c.NextWorking(v); !got.Equal(at(t, loc, tc.next)) {
			t.Errorf("NextWorking(%s) = %s, want %s", tc.t, got.Format(layout), tc.next)
		}
	}
	// Half-open windows, to the nanosecond.
	open := at(t, loc, "2026-03-10 08:30")
	if c.IsWorking(open.Add(-time.Nanosecond)) || !c.IsWorking(open) {
		t.Error("08:30 opens the window")
	}
	end := at(t, loc, "2026-03-10 12:00")
	if !c.IsWorking(end.Add(-time.Nanosecond)) || c.IsWorking(end) {
		t.Error("12:00 closes the window")
	}
}

// A zone with daylight saving: windows are wall-clock times on both sides
// of a change, and working time is real elapsed time.
func TestDaylightSaving(t *testing.T) {
	ny := newYork(t)
	c := MustNew(Spec{TimeZone: "America/New_York", Windows: []Window{{"09:00", "17:00"}}})
	// DST starts Sunday 8 March 2026 (EST -> EDT) and ends Sunday 1 November.
	cases := []struct {
		start string
		d     time.Duration
		want  string
	}{
		{"2026-03-06 16:00", 2 * time.Hour, "2026-03-09 10:00"},
		{"2026-10-30 16:00", 2 * time.Hour, "2026-11-02 10:00"},
		{"2026-03-06 09:00", 8 * time.Hour, "2026-03-06 17:00"},
		{"2026-03-06 10:00", 8 * time.Hour, "2026-03-09 10:00"},
	}
	for _, tc := range cases {
		start, want := at(t, ny, tc.start), at(t, ny, tc.want)
		got := c.Add(start, tc.d)
		if !got.Equal(want) || got.Hour() != want.Hour() {
			t.Errorf("Add(%s, %v) = %s, want %s", tc.start, tc.d, got.Format(layout+" MST"), want.Format(layout+" MST"))
		}
		if b := c.Between(start, got); b != tc.d {
			t.Errorf("Between = %v, want %v", b, tc.d)
		}
	}
	// Wall-clock span Fri 16:00 EST -> Mon 10:00 EDT is 66h on the clock face
	// but 65h of real time; only 2h of it is working time.
	start := at(t, ny, "2026-03-06 16:00")
	end := at(t, ny, "2026-03-09 10:00")
	if end.Sub(start) != 65*time.Hour {
		t.Fatalf("real span %v", end.Sub(start))
	}

	// Windows spanning the change: 01:00-03:00 every day is 1h of real time
	// on the spring-forward day and 3h on the fall-back day.
	all := []time.Weekday{0, 1, 2, 3, 4, 5, 6}
	night := MustNew(Spec{TimeZone: "America/New_York", Windows: []Window{{"01:00", "03:00"}}, Workdays: all})
	dayOf := func(s string) time.Duration {
		a := at(t, ny, s+" 00:00")
		return night.Between(a, a.AddDate(0, 0, 1))
	}
	if got := dayOf("2026-03-07"); got != 2*time.Hour {
		t.Errorf("ordinary day: %v", got)
	}
	if got := dayOf("2026-03-08"); got != time.Hour {
		t.Errorf("spring forward: %v, want 1h", got)
	}
	if got := dayOf("2026-11-01"); got != 3*time.Hour {
		t.Errorf("fall back: %v, want 3h", got)
	}
	// A 24-hour calendar measures real time.
	always := MustNew(Spec{TimeZone: "America/New_York", Windows: []Window{{"00:00", "24:00"}}, Workdays: all})
	a := at(t, ny, "2026-03-07 12:00")
	b := at(t, ny, "2026-03-08 12:00")
	if got := always.Between(a, b); got != 23*time.Hour {
		t.Errorf("24h calendar across spring forward: %v, want 23h", got)
	}
	if got := always.Add(a, 23*time.Hour); !got.Equal(b) {
		t.Errorf("24h calendar Add = %v", got)
	}
	if !always.IsWorking(at(t, ny, "2026-03-08 00:00")) {
		t.Error("midnight in a 24h calendar")
	}
}

// The same arithmetic in a zone without daylight saving, using UTC: no
// surprise from the zone.
func TestUTC(t *testing.T) {
	c := MustNew(Spec{TimeZone: "UTC", Windows: []Window{{"09:00", "17:00"}}})
	a := time.Date(2026, 3, 6, 16, 0, 0, 0, time.UTC)
	if got, want := c.Add(a, 2*time.Hour), time.Date(2026, 3, 9, 10, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("Add = %v, want %v", got, want)
	}
	if c.DayLength() != 8*time.Hour {
		t.Errorf("DayLength %v", c.DayLength())
	}
}

// refCal decides working time from the spec by wall clock, minute by
// minute, independently of the interval code.
type refCal struct {
	loc      *time.Location
	windows  [][2]int
	workdays map[time.Weekday]bool
	holidays map[[3]int]bool
	makeup   map[[3]int]bool
}

func newRef(t testing.TB, s Spec) *refCal {
	t.Helper()
	r := &refCal{workdays: map[time.Weekday]bool{}, holidays: map[[3]int]bool{}, makeup: map[[3]int]bool{}}
	var err error
	if r.loc, err = time.LoadLocation(s.TimeZone); err != nil {
		t.Fatal(err)
	}
	clock := func(v string) int {
		h, m := int(v[0]-'0')*10+int(v[1]-'0'), int(v[3]-'0')*10+int(v[4]-'0')
		return h*60 + m
	}
	for _, w := range s.Windows {
		r.windows = append(r.windows, [2]int{clock(w.Start), clock(w.End)})
	}
	for _, wd := range s.Workdays {
		r.workdays[wd] = true
	}
	expand := func(list []string, into map[[3]int]bool) {
		for _, v := range list {
			from, to, ok := strings.Cut(v, "..")
			if !ok {
				to = from
			}
			a, _ := time.Parse(time.DateOnly, from)
			b, _ := time.Parse(time.DateOnly, to)
			for d := a; !d.After(b); d = d.AddDate(0, 0, 1) {
				into[[3]int{d.Year(), int(d.Month()), d.Day()}] = true
			}
		}
	}
	expand(s.Holidays, r.holidays)
	expand(s.MakeupDays, r.makeup)
	return r
}

func (r *refCal) working(t time.Time) bool {
	l := t.In(r.loc)
	y, mo, dd := l.Date()
	day := [3]int{y, int(mo), dd}
	if !r.makeup[day] && (!r.workdays[l.Weekday()] || r.holidays[day]) {
		return false
	}
	m := l.Hour()*60 + l.Minute()
	for _, w := range r.windows {
		if m >= w[0] && m < w[1] {
			return true
		}
	}
	return false
}

// between counts working minutes in [a, b) for minute-aligned a <= b.
func (r *refCal) between(a, b time.Time) time.Duration {
	var n time.Duration
	for v := a; v.Before(b); v = v.Add(time.Minute) {
		if r.working(v) {
			n += time.Minute
		}
	}
	return n
}

func TestProperties(t *testing.T) {
	nySpec := Spec{
		TimeZone: "America/New_York",
		Windows:  []Window{{"07:00", "11:30"}, {"12:15", "16:45"}, {"19:00", "21:00"}},
		Workdays: []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Saturday},
		Holidays: []string{"2026-07-01..2026-07-06", "2026-11-26", "2026-03-09"},
		// Sundays, two of them the days of the daylight-saving changes.
		MakeupDays: []string{"2026-03-08", "2026-11-01", "2026-12-27"},
	}
	specs := map[string]Spec{"default": DefaultSpec(), "new-york": nySpec}
	for name, spec := range specs {
		t.Run(name, func(t *testing.T) {
			c := MustNew(spec)
			ref := newRef(t, c.Spec())
			rng := rand.New(rand.NewPCG(5, uint64(len(name))))
			base := time.Date(2025, 12, 1, 0, 0, 0, 0, c.Location())
			span := int64(14 * 30 * 24 * time.Hour)
			randInstant := func() time.Time { return base.Add(time.Duration(rng.Int64N(span))) }
			for i := range 1500 {
				s := randInstant()
				var d time.Duration
				switch i % 3 {
				case 0:
					d = time.Duration(rng.Int64N(int64(8 * time.Hour)))
				case 1:
					d = time.Duration(rng.Int64N(int64(60 * c.DayLength())))
				default:
					d = time.Duration(rng.Int64N(600)) * time.Minute
				}
				got := c.Add(s, d)
				if b := c.Between(s, got); b != d {
					t.Fatalf("Between(s, Add(s, %v)) = %v (s=%v)", d, b, s)
				}
				if got.Before(s) {
					t.Fatalf("Add(%v, %v) = %v before start", s, d, got)
				}
				// Earliest: just before the result is working time.
				if d > 0 && !c.IsWorking(got.Add(-time.Nanosecond)) {
					t.Fatalf("Add(%v, %v) = %v is not the earliest", s, d, got)
				}
				back := c.Add(s, -d)
				if b := c.Between(back, s); b != d {
					t.Fatalf("Between(Add(s, -%v), s) = %v (s=%v)", d, b, s)
				}
				if d > 0 && !c.IsWorking(back) {
					t.Fatalf("Add(%v, -%v) = %v is not the latest", s, d, back)
				}
				// Additivity and antisymmetry.
				m := s.Add(time.Duration(rng.Int64N(int64(60*24*time.Hour))) - 30*24*time.Hour)
				if c.Between(s, got) != c.Between(s, m)+c.Between(m, got) {
					t.Fatalf("Between not additive at %v, %v, %v", s, m, got)
				}
				if c.Between(m, s) != -c.Between(s, m) {
					t.Fatalf("Between not antisymmetric at %v, %v", s, m)
				}
				// NextWorking agrees with Add of an epsilon.
				nw := c.NextWorking(s)
				if !c.IsWorking(nw) || c.Between(s, nw) != 0 {
					t.Fatalf("NextWorking(%v) = %v", s, nw)
				}
			}
			// Against the minute-by-minute reference.
			for range 60 {
				a := randInstant().Truncate(time.Minute)
				b := a.Add(time.Duration(rng.Int64N(int64(9*24*time.Hour))) / time.Minute * time.Minute)
				if got, want := c.Between(a, b), ref.between(a, b); got != want {
					t.Fatalf("Between(%v, %v) = %v, reference %v", a, b, got, want)
				}
				for range 20 {
					v := randInstant().Truncate(time.Minute)
					if c.IsWorking(v) != ref.working(v) {
						t.Fatalf("IsWorking(%v) = %v, reference %v", v, c.IsWorking(v), ref.working(v))
					}
				}
			}
		})
	}
}

func TestLongDurations(t *testing.T) {
	loc := shanghai(t)
	c := Default()
	s := at(t, loc, "2026-01-05 09:00")
	// Ten years of working days: terminates, inverse holds (years after 2026
	// have no holiday data: Monday to Friday).
	d := 2500 * c.DayLength()
	got := c.Add(s, d)
	if c.Between(s, got) != d {
		t.Fatal("inverse fails over ten years")
	}
	if got.Year() < 2035 || got.Year() > 2037 {
		t.Errorf("2500 working days from 2026 end in %d", got.Year())
	}
	if back := c.Add(got, -d); !back.Equal(s) {
		t.Errorf("back = %v, want %v", back, s)
	}
}

func TestSpecDefaults(t *testing.T) {
	c, err := New(Spec{Windows: []Window{{"09:00", "17:00"}}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Location().String() != "Asia/Shanghai" {
		t.Errorf("zone %v", c.Location())
	}
	sp := c.Spec()
	if sp.TimeZone != DefaultTimeZone || len(sp.Workdays) != 5 {
		t.Errorf("defaults not filled: %+v", sp)
	}
	sat := time.Date(2026, 3, 14, 10, 0, 0, 0, c.Location())
	if c.IsWorkday(sat) || !c.IsWorkday(sat.AddDate(0, 0, 2)) {
		t.Error("default workdays are Monday to Friday")
	}
	// Touching windows are allowed and behave as one.
	c2 := MustNew(Spec{Windows: []Window{{"09:00", "12:00"}, {"12:00", "13:00"}}})
	mon := time.Date(2026, 3, 16, 11, 0, 0, 0, c2.Location())
	if got := c2.Add(mon, 2*time.Hour); got.Hour() != 13 || got.Day() != 16 {
		t.Errorf("touching windows: %v", got)
	}
	// Spec returns a copy.
	sp.Windows[0].Start = "00:00"
	if c.Spec().Windows[0].Start != "09:00" {
		t.Error("Spec shares its slices")
	}
	if Default() != Default() {
		t.Error("Default is rebuilt")
	}
}

func TestInvalidSpecs(t *testing.T) {
	win := []Window{{"08:30", "12:00"}, {"14:00", "18:00"}}
	cases := []struct {
		name  string
		spec  Spec
		field string
		msg   string
	}{
		{"unknown zone", Spec{TimeZone: "Mars/Olympus", Windows: win}, "time_zone", "not a known"},
		{"Local zone", Spec{TimeZone: "Local", Windows: win}, "time_zone", "Local"},
		{"no windows", Spec{}, "windows", "at least one"},
		{"bad start", Spec{Windows: []Window{{"8:30", "12:00"}}}, "windows[0].start", "HH:MM"},
		{"bad end", Spec{Windows: []Window{{"08:30", "25:00"}}}, "windows[0].end", "HH:MM"},
		{"minutes 60", Spec{Windows: []Window{{"08:60", "12:00"}}}, "windows[0].start", "HH:MM"},
		{"start 24:00", Spec{Windows: []Window{{"24:00", "24:00"}}}, "windows[0].start", "HH:MM"},
		{"end 00:00", Spec{Windows: []Window{{"00:00", "00:00"}}}, "windows[0].end", "HH:MM"},
		{"empty window", Spec{Windows: []Window{{"09:00", "09:00"}}}, "windows[0]", "not after start"},
		{"reversed window", Spec{Windows: []Window{{"12:00", "08:30"}}}, "windows[0]", "not after start"},
		{"overlapping", Spec{Windows: []Window{{"08:30", "12:00"}, {"11:00", "18:00"}}}, "windows[1]", "overlaps"},
		{"unsorted", Spec{Windows: []Window{{"14:00", "18:00"}, {"08:30", "12:00"}}}, "windows[1]", "out of order"},
		{"bad weekday", Spec{Windows: win, Workdays: []time.Weekday{time.Monday, 7}}, "workdays[1]", "not a weekday"},
		{"bad date", Spec{Windows: win, Holidays: []string{"2026-10-01", "2026-02-30"}}, "holidays[1]", "YYYY-MM-DD"},
		{"short date", Spec{Windows: win, Holidays: []string{"2026-1-1"}}, "holidays[0]", "YYYY-MM-DD"},
		{"reversed range", Spec{Windows: win, Holidays: []string{"2026-10-07..2026-10-01"}}, "holidays[0]", "ends before"},
		{"huge range", Spec{Windows: win, Holidays: []string{"2026-01-01..2027-12-31"}}, "holidays[0]", "longer than"},
		{"bad make-up date", Spec{Windows: win, MakeupDays: []string{"10/10/2026"}}, "makeup_days[0]", "YYYY-MM-DD"},
		{"holiday and make-up", Spec{Windows: win, Holidays: []string{"2026-10-01..2026-10-07"}, MakeupDays: []string{"2026-10-10", "2026-10-04"}},
			"makeup_days[1]", "also a holiday (holidays[0])"},
		{"make-up on a workday", Spec{Windows: win, MakeupDays: []string{"2026-10-14"}}, "makeup_days[0]", "already a workday"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.spec)
			if err == nil {
				t.Fatalf("accepted: %+v", c.Spec())
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FieldError", err)
			}
			if fe.Field != tc.field || !strings.Contains(fe.Message, tc.msg) {
				t.Fatalf("error %q: field %q message %q, want field %q containing %q", err, fe.Field, fe.Message, tc.field, tc.msg)
			}
			if !strings.HasPrefix(err.Error(), "calendar: "+tc.field+": ") {
				t.Errorf("error text %q", err)
			}
		})
	}
	// Every problem is reported at once.
	_, err := New(Spec{TimeZone: "Nowhere/Atall", Windows: []Window{{"9", "12:00"}}, Holidays: []string{"x"}})
	for _, f := range []string{"time_zone", "windows[0].start", "holidays[0]"} {
		if err == nil || !strings.Contains(err.Error(), f+":") {
			t.Errorf("error %v does not name %s", err, f)
		}
	}
}

func TestZeroCalendarPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("zero Calendar did not panic")
		}
	}()
	var c Calendar
	c.Add(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Hour)
}

func BenchmarkAdd60WorkingDays(b *testing.B) {
	c := Default()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, c.Location())
	d := 60 * c.DayLength()
	for b.Loop() {
		_ = c.Add(start, d)
	}
}

func BenchmarkBetween60WorkingDays(b *testing.B) {
	c := Default()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, c.Location())
	end := c.AddDays(start, 60)
	for b.Loop() {
		_ = c.Between(start, end)
	}
}

func BenchmarkAdd4WorkingHours(b *testing.B) {
	c := Default()
	start := time.Date(2026, 3, 13, 16, 0, 0, 0, c.Location())
	for b.Loop() {
		_ = c.Add(start, 4*time.Hour)
	}
}

func TestHolidayYears(t *testing.T) {
	c := MustNew(Spec{Windows: []Window{{Start: "08:30", End: "12:00"}}, Holidays: []string{"2027-01-01", "2026-10-01..2026-10-07", "2026-12-31..2027-01-01"}})
	got := c.HolidayYears()
	if len(got) != 2 || got[0] != 2026 || got[1] != 2027 {
		t.Errorf("HolidayYears() = %v, want [2026 2027]", got)
	}
	if y := MustNew(Spec{Windows: []Window{{Start: "08:30", End: "12:00"}}}).HolidayYears(); len(y) != 0 {
		t.Errorf("no holidays: %v", y)
	}
}
