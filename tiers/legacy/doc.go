// Package legacy reads an old district system's export of cases (the
// backlog that piled up before cityhub) and turns its rows into cases.
//
// The export has the columns
//
//	legacy_id, reported_at, source, kind, major, minor, grid_code,
//	component_id, lat, lng, address, description, status,
//	dispatched_unit, deadline
//
// as a CSV file with a header line (columns by name, in any order) or as
// JSON lines (one object per line with the same keys; blank lines are
// skipped). Real exports have more: a header name (or key) that is not a
// column is ignored and listed in File.Ignored; a Mapping reads columns
// under other names (案件编号=legacy_id), and the common Chinese headers in
// Aliases are read without one.
//
// The encoding is UTF-8 (with or without a byte order mark) or GB18030, the
// superset of GBK that Excel on Chinese Windows writes: given, or detected
// (DetectEncoding: a file that is not valid UTF-8 is GB18030 unless most of
// its non-ASCII lines are UTF-8). Rows are split on the raw bytes (GBK's
// bytes never look like a comma, a quote or a line end) and each row is
// decoded with golang.org/x/text, so a row that cannot be decoded is one bad
// row naming the encoding, not a failed file.
//
// ParseWith reads either format into LegacyRow messages numbered by their
// physical line in the file (the CSV header is line 1; a row whose quoted
// field spans lines has the number of its first line). A line that cannot
// be read (bad CSV quoting, a wrong number of fields, invalid JSON, text
// not valid in the encoding) becomes a RowError for that line; only a bad
// header (a missing required column, a column given twice) fails the whole
// file.
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
