package calendar

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	// The IANA time zone database, embedded: a node on a host without
	// /usr/share/zoneinfo (a minimal container) still loads Asia/Shanghai.
	_ "time/tzdata"
)

// DefaultTimeZone is the time zone of a Spec that names none.
const DefaultTimeZone = "Asia/Shanghai"

// DefaultWorkdays are the workdays of a Spec that names none: Monday to
// Friday.
var DefaultWorkdays = []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}

// maxRangeDays bounds a "YYYY-MM-DD..YYYY-MM-DD" range in Holidays or
// MakeupDays, to catch a mistyped year.
const maxRangeDays = 366

// Window is one daily working window in local wall-clock time, "HH:MM" from
// Start (included) to End (excluded). Start is 00:00 to 23:59, End 00:01 to
// 24:00 (the end of the day).
type Window struct {
	Start string
	End   string
}

// Spec is a city's working calendar as configured. New validates it.
type Spec struct {
	// TimeZone is an IANA name ("Asia/Shanghai" when empty). "Local" is
	// refused: it differs between hosts.
	TimeZone string
	// Windows are the daily working windows, in order, not overlapping
	// (touching is allowed), at least one.
	Windows []Window
	// Workdays are the weekdays that are working days unless a holiday
	// (Monday to Friday when empty).
	Workdays []time.Weekday
	// Holidays are dates that are not working days, "YYYY-MM-DD" or an
	// inclusive range "YYYY-MM-DD..YYYY-MM-DD" (a holiday may fall on a
	// weekend: official holiday runs usually do).
	Holidays []string
	// MakeupDays (调休上班日) are dates outside Workdays that are working
	// days, in the same formats. A date may not be both a holiday and a
	// make-up day, and a make-up day must not already be a workday.
	MakeupDays []string
}

// FieldError is one problem of a Spec, naming the field as it would be
// written in configuration: time_zone, windows[1].start, workdays[0],
// holidays[3], makeup_days[0].
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Calendar is a validated working calendar. It is immutable and safe for
// concurrent use. Its methods never read the clock.
type Calendar struct {
	spec     Spec
	loc      *time.Location
	windows  []minuteSpan
	workdays [7]bool
	holidays map[date]struct{}
	makeup   map[date]struct{}
	dayLen   time.Duration
}

// minuteSpan is a window in minutes since local midnight, [start, end).
type minuteSpan struct{ start, end int }

// New validates spec and builds its calendar. The error lists every problem
// found (errors.Join of *FieldError, wrapped; errors.As finds the first).
func New(spec Spec) (*Calendar, error) {
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	c := &Calendar{
		holidays: map[date]struct{}{},
		makeup:   map[date]struct{}{},
	}

	// Time zone.
	tz := spec.TimeZone
	if tz == "" {
		tz = DefaultTimeZone
	}
	switch {
	case tz == "Local":
		fail("time_zone", `"Local" is the host's zone and differs between replicas; name an IANA zone such as %q`, DefaultTimeZone)
	default:
		loc, err := time.LoadLocation(tz)
		if err != nil {
			fail("time_zone", "%q is not a known IANA time zone", tz)
		} else {
			c.loc = loc
		}
	}

	// Windows.
	if len(spec.Windows) == 0 {
		fail("windows", "at least one daily working window is required (e.g. 08:30-12:00)")
	}
	for i, w := range spec.Windows {
		field := fmt.Sprintf("windows[%d]", i)
		s, errS := parseClock(w.Start, false)
		if errS != nil {
			fail(field+".start", "%v", errS)
		}
		e, errE := parseClock(w.End, true)
		if errE != nil {
			fail(field+".end", "%v", errE)
		}
		if errS != nil || errE != nil {
			continue
		}
		if e <= s {
			fail(field, "end %s is not after start %s", w.End, w.Start)
			continue
		}
		if n := len(c.windows); n > 0 {
			prev := c.windows[n-1]
			switch {
			case s < prev.start:
				fail(field, "%s-%s is out of order: windows must be listed from the earliest (after %s)", w.Start, w.End, spanString(prev))
				continue
			case s < prev.end:
				fail(field, "%s-%s overlaps the window before it (%s)", w.Start, w.End, spanString(prev))
				continue
			}
		}
		c.windows = append(c.windows, minuteSpan{s, e})
		c.dayLen += time.Duration(e-s) * time.Minute
	}

	// Workdays.
	workdays := spec.Workdays
	if len(workdays) == 0 {
		workdays = DefaultWorkdays
	}
	for i, wd := range workdays {
		if wd < time.Sunday || wd > time.Saturday {
			fail(fmt.Sprintf("workdays[%d]", i), "%d is not a weekday (0 = Sunday … 6 = Saturday)", int(wd))
			continue
		}
		c.workdays[wd] = true
	}

	// Holidays, then make-up days.
	holidayField := map[date]string{}
	for i, s := range spec.Holidays {
		field := fmt.Sprintf("holidays[%d]", i)
		days, err := parseDates(s)
		if err != nil {
			fail(field, "%v", err)
			continue
		}
		for _, d := range days {
			c.holidays[d] = struct{}{}
			if _, ok := holidayField[d]; !ok {
				holidayField[d] = field
			}
		}
	}
	for i, s := range spec.MakeupDays {
		field := fmt.Sprintf("makeup_days[%d]", i)
		days, err := parseDates(s)
		if err != nil {
			fail(field, "%v", err)
			continue
		}
		for _, d := range days {
			if hf, ok := holidayField[d]; ok {
				fail(field, "%s is also a holiday (%s)", d, hf)
				continue
			}
			if c.workdays[d.weekday()] {
				fail(field, "%s is a %s, already a workday; a make-up day is a non-workday worked instead of a holiday", d, d.weekday())
				continue
			}
			c.makeup[d] = struct{}{}
		}
	}

	if len(errs) > 0 {
		return nil, fmt.Errorf("calendar: %w", errors.Join(errs...))
	}
	c.spec = Spec{
		TimeZone:   tz,
		Windows:    append([]Window(nil), spec.Windows...),
		Workdays:   append([]time.Weekday(nil), workdays...),
		Holidays:   append([]string(nil), spec.Holidays...),
		MakeupDays: append([]string(nil), spec.MakeupDays...),
	}
	return c, nil
}

// MustNew is New for specs known to be valid (tests, built-in data); it
// panics on an invalid spec.
func MustNew(spec Spec) *Calendar {
	c, err := New(spec)
	if err != nil {
		panic(err)
	}
	return c
}

var defaultCalendar = sync.OnceValue(func() *Calendar { return MustNew(DefaultSpec()) })

// Default is the calendar of DefaultSpec: Asia/Shanghai, Monday to Friday,
// 08:30-12:00 and 14:00-18:00, with China's 2026 public holidays and make-up
// days. The same *Calendar is returned every time.
func Default() *Calendar { return defaultCalendar() }

// Spec returns the spec the calendar was built from, with the defaults
// filled in (TimeZone and Workdays).
func (c *Calendar) Spec() Spec {
	s := c.spec
	s.Windows = append([]Window(nil), s.Windows...)
	s.Workdays = append([]time.Weekday(nil), s.Workdays...)
	s.Holidays = append([]string(nil), s.Holidays...)
	s.MakeupDays = append([]string(nil), s.MakeupDays...)
	return s
}

// HolidayYears are the years for which the calendar lists at least one
// holiday, ascending. China's official holidays (and their make-up days)
// are published each year for the next: a year missing here is a year
// whose deadlines run over its holidays as if they were working days.
func (c *Calendar) HolidayYears() []int {
	seen := map[int]bool{}
	for d := range c.holidays {
		seen[d.y] = true
	}
	years := make([]int, 0, len(seen))
	for y := range seen {
		years = append(years, y)
	}
	sort.Ints(years)
	return years
}

// Location is the calendar's time zone. Every time.Time the calendar
// returns is in it.
func (c *Calendar) Location() *time.Location { return c.loc }

// DayLength is the working time of one working day as configured: the sum
// of the windows' wall-clock lengths (7h30m for the default). AddDays counts
// working days in units of it. (On the day of a daylight-saving change a
// window spanning the change has one hour more or less of real time.)
func (c *Calendar) DayLength() time.Duration { return c.dayLen }

// parseClock parses "HH:MM" into minutes since midnight; "24:00" only when
// end is true.
func parseClock(s string, end bool) (int, error) {
	bad := func() (int, error) {
		if end {
			return 0, fmt.Errorf("%q is not a time HH:MM from 00:01 to 24:00", s)
		}
		return 0, fmt.Errorf("%q is not a time HH:MM from 00:00 to 23:59", s)
	}
	if len(s) != 5 || s[2] != ':' {
		return bad()
	}
	for _, i := range []int{0, 1, 3, 4} {
		if s[i] < '0' || s[i] > '9' {
			return bad()
		}
	}
	h := int(s[0]-'0')*10 + int(s[1]-'0')
	m := int(s[3]-'0')*10 + int(s[4]-'0')
	if m > 59 {
		return bad()
	}
	v := h*60 + m
	if v > 24*60 || (v == 24*60 && !end) || (v == 0 && end) {
		return bad()
	}
	return v, nil
}

func spanString(s minuteSpan) string {
	return fmt.Sprintf("%02d:%02d-%02d:%02d", s.start/60, s.start%60, s.end/60, s.end%60)
}

// parseDates parses "YYYY-MM-DD" or "YYYY-MM-DD..YYYY-MM-DD" (inclusive).
func parseDates(s string) ([]date, error) {
	from, to, isRange := strings.Cut(s, "..")
	a, err := parseDate(from)
	if err != nil {
		return nil, err
	}
	if !isRange {
		return []date{a}, nil
	}
	b, err := parseDate(to)
	if err != nil {
		return nil, err
	}
	if b.before(a) {
		return nil, fmt.Errorf("range %q ends before it starts", s)
	}
	var days []date
	for d := a; !b.before(d); d = d.next() {
		if len(days) == maxRangeDays {
			return nil, fmt.Errorf("range %q is longer than %d days", s, maxRangeDays)
		}
		days = append(days, d)
	}
	return days, nil
}

func parseDate(s string) (date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil || len(s) != len(time.DateOnly) {
		return date{}, fmt.Errorf("%q is not a date YYYY-MM-DD (or a range YYYY-MM-DD..YYYY-MM-DD)", s)
	}
	return date{t.Year(), t.Month(), t.Day()}, nil
}

// date is a civil date, a map key.
type date struct {
	y int
	m time.Month
	d int
}

func dateOf(t time.Time) date {
	y, m, d := t.Date()
	return date{y, m, d}
}

func (d date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.y, int(d.m), d.d) }

func (d date) utc() time.Time { return time.Date(d.y, d.m, d.d, 0, 0, 0, 0, time.UTC) }

func (d date) weekday() time.Weekday { return d.utc().Weekday() }

func (d date) next() date { return dateOf(time.Date(d.y, d.m, d.d+1, 0, 0, 0, 0, time.UTC)) }

func (d date) prev() date { return dateOf(time.Date(d.y, d.m, d.d-1, 0, 0, 0, 0, time.UTC)) }

func (d date) before(o date) bool {
	if d.y != o.y {
		return d.y < o.y
	}
	if d.m != o.m {
		return d.m < o.m
	}
	return d.d < o.d
}
