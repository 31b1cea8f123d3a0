package calendar

import "time"

// China2026Holidays are the days off of China's 2026 public holidays, from
// the State Council General Office notice on the 2026 holiday arrangements
// (国务院办公厅关于2026年部分节假日安排的通知, 4 November 2025). Each run
// is listed whole, weekends included, as the notice states it.
var China2026Holidays = []string{
	"2026-01-01..2026-01-03", // 元旦 New Year's Day, Thu-Sat
	"2026-02-15..2026-02-23", // 春节 Spring Festival, Sun-Mon (9 days)
	"2026-04-04..2026-04-06", // 清明节 Qingming, Sat-Mon
	"2026-05-01..2026-05-05", // 劳动节 Labour Day, Fri-Tue
	"2026-06-19..2026-06-21", // 端午节 Dragon Boat Festival, Fri-Sun
	"2026-09-25..2026-09-27", // 中秋节 Mid-Autumn Festival, Fri-Sun
	"2026-10-01..2026-10-07", // 国庆节 National Day, Thu-Wed
}

// China2026MakeupDays are the weekend days worked instead (调休上班) in 2026,
// from the same notice.
var China2026MakeupDays = []string{
	"2026-01-04", // Sun, for New Year's Day
	"2026-02-14", // Sat, for the Spring Festival
	"2026-02-28", // Sat, for the Spring Festival
	"2026-05-09", // Sat, for Labour Day
	"2026-09-20", // Sun, for National Day
	"2026-10-10", // Sat, for National Day
}

// DefaultSpec is the spec of Default: Asia/Shanghai, Monday to Friday,
// 08:30-12:00 and 14:00-18:00 (7h30m a day), China's 2026 holidays and
// make-up days. A city replaces it with its own spec, and must add each new
// year's holidays as the State Council publishes them (usually in November):
// a year without them counts every Monday to Friday as a working day.
func DefaultSpec() Spec {
	return Spec{
		TimeZone:   DefaultTimeZone,
		Windows:    []Window{{Start: "08:30", End: "12:00"}, {Start: "14:00", End: "18:00"}},
		Workdays:   append([]time.Weekday(nil), DefaultWorkdays...),
		Holidays:   append([]string(nil), China2026Holidays...),
		MakeupDays: append([]string(nil), China2026MakeupDays...),
	}
}
