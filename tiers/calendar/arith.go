package calendar

import (
	"math"
	"time"
)

// interval is one window of one working day as instants, [start, end).
type interval struct{ start, end time.Time }

// IsWorkday reports whether t's date, in the calendar's time zone, is a
// working day: a make-up day, or a workday that is not a holiday.
func (c *Calendar) IsWorkday(t time.Time) bool {
	c.check()
	return c.isWorkday(dateOf(t.In(c.loc)))
}

func (c *Calendar) isWorkday(d date) bool {
	if _, ok := c.makeup[d]; ok {
		return true
	}
	if !c.workdays[d.weekday()] {
		return false
	}
	_, holiday := c.holidays[d]
	return !holiday
}

// day appends the working intervals of date d to buf, in order: none on a
// day off. Each window's ends are its local wall-clock times on d (24:00 is
// the next midnight); on a daylight-saving change a window is clamped so the
// intervals stay ordered and never overlap.
func (c *Calendar) day(d date, buf []interval) []interval {
	if !c.isWorkday(d) {
		return buf
	}
	var prevEnd time.Time
	for i, w := range c.windows {
		s := time.Date(d.y, d.m, d.d, w.start/60, w.start%60, 0, 0, c.loc)
		e := time.Date(d.y, d.m, d.d, w.end/60, w.end%60, 0, 0, c.loc)
		if i > 0 && s.Before(prevEnd) {
			s = prevEnd
		}
		if e.Before(s) {
			e = s
		}
		prevEnd = e
		if e.After(s) {
			buf = append(buf, interval{s, e})
		}
	}
	return buf
}

// IsWorking reports whether t is inside working time: in a window (start
// included, end excluded) on a working day.
func (c *Calendar) IsWorking(t time.Time) bool {
	c.check()
	t = t.In(c.loc)
	var buf [8]interval
	d := dateOf(t)
	for _, day := range [...]date{d.prev(), d} {
		for _, iv := range c.day(day, buf[:0]) {
			if !t.Before(iv.start) && t.Before(iv.end) {
				return true
			}
		}
	}
	return false
}

// NextWorking is the earliest instant at or after t inside working time: t
// itself when IsWorking(t), otherwise the next window opening.
func (c *Calendar) NextWorking(t time.Time) time.Time {
	c.check()
	t = t.In(c.loc)
	var buf [8]interval
	for d := dateOf(t).prev(); ; d = d.next() {
		for _, iv := range c.day(d, buf[:0]) {
			if iv.end.After(t) {
				if iv.start.After(t) {
					return iv.start
				}
				return t
			}
		}
	}
}

// Add is the instant at which d of working time has elapsed since start:
// the earliest t >= start with Between(start, t) == d. Time outside the
// windows, on weekends and on holidays does not count, so a start outside
// working time counts from the next window opening, and a deadline that
// uses up a window exactly is that window's end (12:00, not 14:00).
// Add(start, 0) is start. A negative d counts backwards: the latest
// t <= start with Between(t, start) == -d (a window's opening, not the
// previous window's end, when it uses a window up exactly).
// The result is in the calendar's time zone. Cost: O(days spanned).
func (c *Calendar) Add(start time.Time, d time.Duration) time.Time {
	c.check()
	start = start.In(c.loc)
	switch {
	case d == 0:
		return start
	case d < 0:
		if d == math.MinInt64 {
			d++
		}
		return c.sub(start, -d)
	}
	var buf [8]interval
	for day := dateOf(start).prev(); ; day = day.next() {
		for _, iv := range c.day(day, buf[:0]) {
			if !iv.end.After(start) {
				continue
			}
			s := iv.start
			if s.Before(start) {
				s = start
			}
			avail := iv.end.Sub(s)
			if d <= avail {
				return s.Add(d)
			}
			d -= avail
		}
	}
}

// sub walks back d > 0 of working time from start.
func (c *Calendar) sub(start time.Time, d time.Duration) time.Time {
	var buf [8]interval
	for day := dateOf(start).next(); ; day = day.prev() {
		ivs := c.day(day, buf[:0])
		for i := len(ivs) - 1; i >= 0; i-- {
			iv := ivs[i]
			if !iv.start.Before(start) {
				continue
			}
			e := iv.end
			if e.After(start) {
				e = start
			}
			avail := e.Sub(iv.start)
			if d <= avail {
				return e.Add(-d)
			}
			d -= avail
		}
	}
}

// AddDays adds n working days: Add(start, n × DayLength()). From a start
// inside working time that is the same time of day on the n-th working day
// after (Tuesday 10:00 + 1 = Wednesday 10:00; Friday 10:00 + 1 = the next
// working day, Monday, 10:00); from a start outside working time the count
// begins at the next opening (Tuesday 20:00 + 1 = Wednesday 18:00, the end
// of the next working day). This is the working-time clock (工作时计时) of
// digital city management platforms, where 1 working day is the working
// hours of one day, so day and hour limits mix and Between measures both.
// A negative n counts backwards.
func (c *Calendar) AddDays(start time.Time, n int) time.Time {
	c.check()
	return c.Add(start, time.Duration(n)*c.dayLen)
}

// Between is the working time from a to b: the total length of the working
// windows inside [a, b), negative when b is before a. It is the inverse of
// Add: Between(s, Add(s, d)) == d for every s and d. Cost: O(days spanned).
func (c *Calendar) Between(a, b time.Time) time.Duration {
	c.check()
	if a.After(b) {
		return -c.Between(b, a)
	}
	a, b = a.In(c.loc), b.In(c.loc)
	var total time.Duration
	var buf [8]interval
	last := dateOf(b).next()
	for day := dateOf(a).prev(); !last.before(day); day = day.next() {
		for _, iv := range c.day(day, buf[:0]) {
			s, e := iv.start, iv.end
			if s.Before(a) {
				s = a
			}
			if e.After(b) {
				e = b
			}
			if e.After(s) {
				total += e.Sub(s)
			}
		}
	}
	return total
}

// check refuses the zero Calendar, which has no working time and would make
// Add loop forever.
func (c *Calendar) check() {
	if c == nil || c.dayLen <= 0 || c.loc == nil {
		panic("calendar: Calendar not built by New")
	}
}
