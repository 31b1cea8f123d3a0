// Package export writes the files city staff take away from cityhub: the
// evaluation reports (综合评价) as CSV and as the weekly bulletin workbook
// (XLSX), and a reconciliation run's counts as CSV. It only formats
// reports already built elsewhere (tiers/evaluation, federation/reconcile),
// so the state machine and the tools that only print reports do not link
// the spreadsheet library or the store.
package export
