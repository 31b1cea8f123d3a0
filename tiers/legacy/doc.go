// Package legacy reads an old district system's export of cases (the
// backlog that piled up before cityhub) and turns its rows into cases.
//
// The export has the columns
//
//	legacy_id, reported_at, source, kind, major, minor, grid_code,
//	component_id, lat, lng, address, description, status,
//	dispatched_unit, deadline
//
// as a CSV file with a header line (columns by name, in any order, UTF-8
// with or without a byte order mark) or as JSON lines (one object per line
// with the same keys; blank lines are skipped). Parse reads either into
// LegacyRow messages numbered by their physical line in the file (the CSV
// header is line 1; a row whose quoted field spans lines has the number of
// its first line). A line that cannot be read (bad CSV quoting, a wrong
// number of fields, invalid JSON, text that is not UTF-8) becomes a RowError
// for that line; only a bad header (an unknown or missing column) fails the
// whole file.
//
// Validator.Validate is the one place where rows are checked and turned into
// cases; the API's ImportCases runs it on the server, with the node's class
// catalogue, jurisdiction, time zone and clock. Each bad row gets one
// RowError naming its line, legacy id, the field (a column name) and the
// reason. Duplicates finds legacy ids given twice (the later rows are bad).
//
// WriteQuarantine writes the bad rows as CSV: line, legacy_id, field,
// reason, then the row's other columns. Parse ignores the line, field and
// reason columns, so a quarantine file can be corrected and imported as it
// stands.
package legacy
