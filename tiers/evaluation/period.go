package evaluation

import (
	"fmt"
	"time"
)

// Period names (EvaluationRequest.period).
const (
	Day     = "day"
	Week    = "week"
	Month   = "month"
	Quarter = "quarter"
)

// periodCodes are the kinds of period every counter is kept for, each with
// the byte that starts its part of a counter key: days and months. A week
// is read as the sum of its seven days and a quarter as that of its three
// months (parts), so a write of a case touches two periods, not four.
// Releases before 2026-12 also kept 'w' and 'q' counters; nothing reads
// those keys any more.
var periodCodes = [2]byte{'d', 'm'}

func periodCode(name string) (byte, bool) {
	switch name {
	case Day:
		return 'd', true
	case Week:
		return 'w', true
	case Month:
		return 'm', true
	case Quarter:
		return 'q', true
	}
	return 0, false
}

// period is one day, ISO week, month or quarter of the local calendar.
type period struct {
	code byte
	year int
	// n: day: month*100 + day of month; week: ISO week 1-53; month: 1-12;
	// quarter: 1-4.
	n int
}

// localTime turns leader-stamped Unix milliseconds into the local wall
// clock (UTC shifted by offsetS), read through a UTC time so no zone table
// is involved.
func localTime(ms int64, offsetS int32) time.Time {
	return time.UnixMilli(ms + int64(offsetS)*1000).UTC()
}

// periodOf returns the period of kind code that local time t falls in.
func periodOf(code byte, t time.Time) period {
	switch code {
	case 'd':
		return period{code, t.Year(), int(t.Month())*100 + t.Day()}
	case 'w':
		y, w := t.ISOWeek()
		return period{code, y, w}
	case 'm':
		return period{code, t.Year(), int(t.Month())}
	default:
		return period{code, t.Year(), (int(t.Month())-1)/3 + 1}
	}
}

// parts returns the stored periods whose counters sum to p: p itself for
// a day or a month, the seven days of a week, the three months of a
// quarter.
func (p period) parts() []period {
	switch p.code {
	case 'w':
		// ISO week p.n of ISO year p.year: its Monday is 7(n-1) days after
		// the Monday of the week holding 4 January.
		jan4 := time.Date(p.year, time.January, 4, 0, 0, 0, 0, time.UTC)
		monday := jan4.AddDate(0, 0, -((int(jan4.Weekday())+6)%7)+7*(p.n-1))
		days := make([]period, 7)
		for i := range days {
			days[i] = periodOf('d', monday.AddDate(0, 0, i))
		}
		return days
	case 'q':
		return []period{{'m', p.year, 3*p.n - 2}, {'m', p.year, 3*p.n - 1}, {'m', p.year, 3 * p.n}}
	}
	return []period{p}
}

// appendKey appends the 5-byte key part of p: its code, year and number
// (both 2 bytes big-endian), so the periods of a kind sort in time order.
func (p period) appendKey(b []byte) []byte {
	return append(b, p.code, byte(p.year>>8), byte(p.year), byte(p.n>>8), byte(p.n))
}

// String is the period's name in reports: 2026-11-22, 2026-W47, 2026-11,
// 2026-Q4.
func (p period) String() string {
	switch p.code {
	case 'd':
		return fmt.Sprintf("%04d-%02d-%02d", p.year, p.n/100, p.n%100)
	case 'w':
		return fmt.Sprintf("%04d-W%02d", p.year, p.n)
	case 'm':
		return fmt.Sprintf("%04d-%02d", p.year, p.n)
	default:
		return fmt.Sprintf("%04d-Q%d", p.year, p.n)
	}
}

// FieldError is a query error naming the request field at fault.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// DateLayout is the layout of EvaluationRequest.at.
const DateLayout = "2006-01-02"

func parsePeriod(name, at string) (period, error) {
	code, ok := periodCode(name)
	if !ok {
		return period{}, fieldErr("period", "%q is not day, week, month or quarter", name)
	}
	if at == "" {
		return period{}, fieldErr("at", "required: a date (YYYY-MM-DD) inside the period")
	}
	d, err := time.Parse(DateLayout, at)
	if err != nil {
		return period{}, fieldErr("at", "%q is not a date (YYYY-MM-DD)", at)
	}
	if d.Year() < 1 || d.Year() > 9998 {
		return period{}, fieldErr("at", "%q is out of range", at)
	}
	return periodOf(code, d), nil
}

// ParsePeriod returns the name of the period of kind period (day, week,
// month or quarter) that the date at (YYYY-MM-DD) falls in: 2026-11-22,
// 2026-W47 (ISO 8601 week: Monday to Sunday, week 1 holds the year's first
// Thursday), 2026-11 or 2026-Q4. Errors are *FieldError naming "period" or
// "at".
func ParsePeriod(period, at string) (string, error) {
	p, err := parsePeriod(period, at)
	if err != nil {
		return "", err
	}
	return p.String(), nil
}
