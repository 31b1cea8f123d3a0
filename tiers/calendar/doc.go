// Package calendar is a city's working calendar (DOMAIN.md section 6):
// deadlines count working time, not wall-clock time.
//
// A Spec names the time zone (Asia/Shanghai by default), the workdays
// (Monday to Friday by default), the holidays, the make-up workdays (调休:
// weekend dates worked instead of a holiday) and the daily working windows
// (e.g. 08:30-12:00 and 14:00-18:00). New validates it and refuses, naming
// the field, anything malformed or contradictory: a bad zone or date, an
// empty, reversed, overlapping or unsorted window, a date that is both a
// holiday and a make-up day, a make-up day that is already a workday. A
// calendar always has working time in every week (at least one workday and
// one non-empty window), so no computation can loop forever.
//
// The rules:
//
//   - Working time is the set of instants inside a window, start included,
//     end excluded, on a working day. A working day is a make-up day, or a
//     workday that is not a holiday. Windows are local wall-clock times in
//     the calendar's zone, so 08:30 stays 08:30 across a daylight-saving
//     change; a window spanning the change is an hour shorter or longer in
//     real (working) time on that day.
//   - Add(start, d) is the earliest instant t >= start such that the working
//     time in [start, t) is d. Time before the first window, at lunch, at
//     night, on weekends and holidays does not count: a start outside
//     working time counts from the next opening. A deadline that uses a
//     window up exactly is the window's end (11:00 + 1h = 12:00, not 14:00).
//     Add(start, 0) is start itself (not rolled forward: a zero limit is
//     due at once). A negative d counts backwards (for a reminder some
//     working time before a deadline).
//   - Between(a, b) is the working time in [a, b), negative when b < a, and
//     the exact inverse of Add: Between(s, Add(s, d)) == d for every s and d.
//     The converse Add(a, Between(a, b)) is never after b, and is b when b
//     is inside working time or at a window's end.
//   - AddDays(start, n) is Add(start, n × DayLength()), DayLength being the
//     configured working time of one day (7h30m by default). This is the
//     working-time clock (工作时计时) of digital city management platforms:
//     1 working day = one day's working hours, so limits in working minutes,
//     hours and days are all durations of working time, convert exactly into
//     one another, and suspensions and extensions are simple sums. From a
//     start inside working time it is the same time of day on the n-th
//     working day after; from a start outside working time the count begins
//     at the next opening (Tuesday 20:00 + 1 working day = Wednesday 18:00).
//     The administrative-law reading ("within n working days" = by the end
//     of the n-th working day after the day of receipt) is not this rule.
//   - IsWorking(t) says whether t is inside working time; NextWorking(t) is
//     t when it is, otherwise the next window opening.
//
// Every method costs O(days spanned) (a few time.Date calls per working
// day), never O(minutes): 60 working days is about 90 calendar days.
//
// The package never reads the clock, randomness or the environment
// (cityhublint checks it), so it may be called inside the state machine's
// Apply with leader-stamped instants. Results are returned in the calendar's
// zone. The zone database is embedded (time/tzdata) so that Asia/Shanghai
// loads on any host; note that time.LoadLocation prefers the host's own
// database, so replicas should run with the same tzdata (Asia/Shanghai has
// had no rule change since 1991, so this matters only for zones with
// daylight saving whose rules change).
//
// Holidays are data: DefaultSpec carries China's 2026 public holidays and
// make-up days as published by the State Council; a city must add each
// year's list when it is published.
package calendar
