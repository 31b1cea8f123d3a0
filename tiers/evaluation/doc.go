// Package evaluation is the 综合评价 of DOMAIN.md section 7: indicators per
// unit, region and inspector, per day, ISO week, month and quarter, kept
// incrementally as counters by the state machine (Observe, called after
// every write of a case: per day and per month only) and read back as
// ranked, scored reports (Report: a week sums its seven days, a quarter its
// three months);
// package tiers/export writes them as CSV and as the weekly bulletin
// workbook. Recount computes the same report from the cases themselves;
// tests hold the two equal.
//
// Observe, Report and Recount are pure and deterministic: no clock, no
// randomness, no environment (make lint runs cityhublint on this package).
// Times come from the history entries the leader stamped; periods are cut
// in local time, UTC plus the offset the leader stamped into the command
// (Command.local_offset_s).
//
// # Indicators
//
// Event indicators count history entries, in the period of the entry's
// time, each once (Observe adds the entries with a version above the
// stored copy's):
//
//   - dispatched (派遣数): DISPATCH entries.
//   - rework (返工数): CHECK_FAIL entries.
//   - overdue (超期数): the overdue marks, SUPERVISE entries by ROLE_SYSTEM
//     whose note starts with "overdue:" (one per missed stage deadline).
//   - extensions (延期数): APPROVE_EXTENSION entries.
//
// State indicators are a function of the case as it stands now; when a
// write changes them, the case leaves its old place and counts in the new
// one. A VOIDED case counts for none of them.
//
//   - filed (立案数): the case was filed (FILE, or SELF_HANDLE for a problem
//     fixed on the spot), in the period of its first filing.
//   - due (应结案数): the case has a handling deadline (it was dispatched and
//     not since returned or handed up) and is not SUSPENDED; counted in the
//     period of its current deadline. An approved extension, a rework with
//     a new deadline, or a resume after suspension moves the deadline and
//     so moves the case to the deadline's period; a suspended case leaves
//     "due" until it resumes (suspended time does not count).
//   - closed (结案数): due and CLOSED, in the same period as due: the
//     closure rate of a period is that of the cases due in it (a cohort),
//     so it never exceeds 100%, and a late closure still raises the rate
//     of the period the case was due in (but not its on-time rates).
//   - closed on time (按期结案数): closed, and the CLOSE entry is at or
//     before the deadline.
//   - handled on time (按期处置数): due, in HANDLED, CHECKED or CLOSED, and
//     the last HANDLE entry is at or before the deadline (a rework reopens
//     the question until the case is handled again).
//   - recurrence (反弹数): the case has recurrence_of set, in the period of
//     its report; regions and inspectors only (the unit to blame is the
//     earlier case's, not known from this one).
//
// Rates, in percent, 0 when the denominator is 0: closure rate = closed /
// due; on-time closure rate = closed on time / due; on-time handling rate
// = handled on time / due; rework rate = rework / due; extension rate =
// extensions / dispatched.
//
// # Dimensions
//
//   - unit: the owner unit, for events the one at the moment of the entry
//     (the unit of the last DISPATCH before it, none after an approved
//     return or a transfer up; for a DISPATCH, its target), for state
//     indicators the current one. Nothing is counted for "no unit".
//   - region: the grid code's prefix of 6 (district), 9 (street) and 12
//     (community) digits; every indicator.
//   - inspector: the case's inspector, that is the reporting inspector (the
//     REPORT entry's actor) of an inspector-sourced case, otherwise the
//     first inspector who verified it on site (VERIFY) or fixed it on the
//     spot (SELF_HANDLE); for events, the one known at the entry. Besides,
//     a rework is also counted for the inspector whose check failed the
//     case (CHECK_FAIL by ROLE_INSPECTOR), when that is someone else.
//
// Every indicator is also counted over the cases from leaders and the
// media (SOURCE_LEADER, SOURCE_MEDIA) alone, so a Scheme can weight them
// (Jinhua counts them double).
//
// # Why state indicators, and the one assumption
//
// A node receives the versions of a case it mirrors in batches of several
// entries and never sees the deadline each entry had: only the final case.
// Counting deadline-based indicators from the case as it stands makes every
// replica and every node that holds the case count it the same, however the
// versions arrived, and lets Recount check the counters from the cases
// alone. The counters hold exactly sum(state indicators of each stored case)
// + sum(event indicators of each entry) only if the state machine calls
// Observe with the stored copy as old on every write of a case, and with
// the same offset every time (China has no daylight saving time; a changed
// offset would subtract a case's old state indicators from other periods).
package evaluation
