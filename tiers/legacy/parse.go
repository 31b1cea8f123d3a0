package legacy

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Columns are the columns of an export, in their usual order.
var Columns = []string{
	"legacy_id", "reported_at", "source", "kind", "major", "minor", "grid_code",
	"component_id", "lat", "lng", "address", "description", "status",
	"dispatched_unit", "deadline",
}

// requiredColumns must be in a CSV header; the other columns may be left out
// (their values are then empty).
var requiredColumns = []string{
	"legacy_id", "reported_at", "source", "kind", "major", "minor", "grid_code", "description", "status",
}

// QuarantineColumns are the columns WriteQuarantine puts before a row's own;
// Parse ignores them, so a corrected quarantine file can be imported.
var QuarantineColumns = []string{"line", "field", "reason"}

// FieldRow names a RowError about a line that could not be read as a row
// (bad quoting, a wrong number of fields, invalid JSON).
const FieldRow = "row"

// column returns the LegacyRow field that holds a column, nil for an
// unknown column.
func column(r *pb.LegacyRow, name string) *string {
	switch name {
	case "legacy_id":
		return &r.LegacyId
	case "reported_at":
		return &r.ReportedAt
	case "source":
		return &r.Source
	case "kind":
		return &r.Kind
	case "major":
		return &r.Major
	case "minor":
		return &r.Minor
	case "grid_code":
		return &r.GridCode
	case "component_id":
		return &r.ComponentId
	case "lat":
		return &r.Lat
	case "lng":
		return &r.Lng
	case "address":
		return &r.Address
	case "description":
		return &r.Description
	case "status":
		return &r.Status
	case "dispatched_unit":
		return &r.DispatchedUnit
	case "deadline":
		return &r.Deadline
	}
	return nil
}

// Values returns a row's values in the order of Columns.
func Values(r *pb.LegacyRow) []string {
	out := make([]string, len(Columns))
	if r == nil {
		return out
	}
	for i, c := range Columns {
		out[i] = *column(r, c)
	}
	return out
}

// Format is the format of an export file.
type Format string

// The formats Parse reads.
const (
	FormatCSV   Format = "csv"
	FormatJSONL Format = "jsonl"
)

// ParseFormat reads a format name (csv, jsonl; json and ndjson mean jsonl).
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "csv":
		return FormatCSV, nil
	case "jsonl", "json", "ndjson":
		return FormatJSONL, nil
	}
	return "", fmt.Errorf("unknown format %q: want csv or jsonl", s)
}

// FormatOf guesses the format of a file from its extension.
func FormatOf(path string) (Format, error) {
	ext := strings.TrimPrefix(filepath.Ext(path), ".")
	f, err := ParseFormat(ext)
	if err != nil {
		return "", fmt.Errorf("cannot tell the format of %s from its extension (.csv, .jsonl): give it", filepath.Base(path))
	}
	return f, nil
}

// Bad is a row that will not be imported: why, and what could be read of it
// (Row is nil when nothing could).
type Bad struct {
	Err *pb.RowError
	Row *pb.LegacyRow
}

// File is a parsed export.
type File struct {
	Rows []*pb.LegacyRow // rows that were read, in file order
	Bad  []Bad           // lines that could not be read, in file order
}

// HeaderError refuses a whole CSV file: its header names an unknown column,
// names one twice, or lacks a required one.
type HeaderError struct {
	Column string // the column at fault ("" when there is no header at all)
	Reason string
}

func (e *HeaderError) Error() string {
	if e.Column == "" {
		return "header: " + e.Reason
	}
	return fmt.Sprintf("header: column %q: %s", e.Column, e.Reason)
}

// Parse reads an export. Only a bad CSV header or a read failure is an
// error; a line that cannot be read is reported in File.Bad.
func Parse(r io.Reader, f Format) (*File, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3) // UTF-8 byte order mark (Excel, Windows exports)
	}
	switch f {
	case FormatCSV:
		return parseCSV(br)
	case FormatJSONL:
		return parseJSONL(br)
	}
	return nil, fmt.Errorf("unknown format %q: want csv or jsonl", f)
}

func parseCSV(r io.Reader) (*File, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // counted here, per row, so a short row is one bad line
	header, err := cr.Read()
	switch {
	case errors.Is(err, io.EOF):
		return nil, &HeaderError{Reason: "empty file: the first line must name the columns (" + strings.Join(Columns, ", ") + ")"}
	case err != nil:
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, &HeaderError{Reason: "line 1 cannot be read: " + pe.Err.Error()}
		}
		return nil, err
	}
	cols, err := headerColumns(header)
	if err != nil {
		return nil, err
	}
	out := &File{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return nil, err
			}
			row := csvRow(cols, rec, int32(pe.StartLine))
			out.Bad = append(out.Bad, Bad{Row: row, Err: &pb.RowError{Line: int32(pe.StartLine), LegacyId: row.LegacyId, Field: FieldRow,
				Reason: fmt.Sprintf("cannot be read as CSV (line %d, column %d): %v", pe.Line, pe.Column, pe.Err)}})
			continue
		}
		line, _ := cr.FieldPos(0)
		if blank(rec) {
			continue // a row of empty cells, as spreadsheets leave at the end
		}
		row := csvRow(cols, rec, int32(line))
		if len(rec) != len(cols) {
			out.Bad = append(out.Bad, Bad{Row: row, Err: &pb.RowError{Line: int32(line), LegacyId: row.LegacyId, Field: FieldRow,
				Reason: fmt.Sprintf("has %d fields, the header has %d", len(rec), len(cols))}})
			continue
		}
		if bad := checkUTF8(row); bad != nil {
			out.Bad = append(out.Bad, *bad)
			continue
		}
		out.Rows = append(out.Rows, row)
	}
}

// headerColumns checks a CSV header and returns the column of each field
// ("" for a quarantine column, which is ignored).
func headerColumns(header []string) ([]string, error) {
	cols := make([]string, len(header))
	seen := map[string]bool{}
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(h))
		switch {
		case slices.Contains(QuarantineColumns, name):
			name = ""
		case name == "":
			return nil, &HeaderError{Column: h, Reason: fmt.Sprintf("field %d of the header is empty; every column needs a name (%s)", i+1, strings.Join(Columns, ", "))}
		case !slices.Contains(Columns, name):
			return nil, &HeaderError{Column: h, Reason: "unknown column; the columns are " + strings.Join(Columns, ", ")}
		case seen[name]:
			return nil, &HeaderError{Column: h, Reason: "named twice"}
		}
		if name != "" {
			seen[name] = true
		}
		cols[i] = name
	}
	for _, c := range requiredColumns {
		if !seen[c] {
			return nil, &HeaderError{Column: c, Reason: "required column missing; required: " + strings.Join(requiredColumns, ", ")}
		}
	}
	return cols, nil
}

// csvRow builds a row from the fields that are there (a short or broken
// record keeps what it has, for the quarantine file).
func csvRow(cols, rec []string, line int32) *pb.LegacyRow {
	row := &pb.LegacyRow{Line: line}
	for i, v := range rec {
		if i < len(cols) && cols[i] != "" {
			*column(row, cols[i]) = v
		}
	}
	return row
}

func blank(rec []string) bool {
	for _, v := range rec {
		if strings.TrimSpace(v) != "" {
			return false
		}
	}
	return true
}

// checkUTF8 refuses a row with text that is not UTF-8 (an export saved as
// GBK, say): it could not even travel in a request.
func checkUTF8(row *pb.LegacyRow) *Bad {
	for _, c := range Columns {
		p := column(row, c)
		if utf8.ValidString(*p) {
			continue
		}
		for _, c := range Columns {
			p := column(row, c)
			*p = strings.ToValidUTF8(*p, "\uFFFD")
		}
		return &Bad{Row: row, Err: &pb.RowError{Line: row.Line, LegacyId: row.LegacyId, Field: c,
			Reason: "not valid UTF-8 text (save the export as UTF-8)"}}
	}
	return nil
}

func parseJSONL(br *bufio.Reader) (*File, error) {
	out := &File{}
	for line := int32(1); ; line++ {
		raw, err := br.ReadBytes('\n')
		if len(raw) == 0 && errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		text := bytes.TrimSpace(raw)
		if len(text) > 0 {
			row, bad := jsonRow(text, line)
			switch {
			case bad != nil:
				out.Bad = append(out.Bad, *bad)
			default:
				out.Rows = append(out.Rows, row)
			}
		}
		if err != nil {
			return out, nil
		}
	}
}

// jsonRow reads one JSON object; values are strings, numbers or null.
func jsonRow(text []byte, line int32) (*pb.LegacyRow, *Bad) {
	rowErr := func(field, format string, args ...any) *Bad {
		return &Bad{Err: &pb.RowError{Line: line, Field: field, Reason: fmt.Sprintf(format, args...)}}
	}
	if !utf8.Valid(text) {
		return nil, rowErr(FieldRow, "not valid UTF-8 text (save the export as UTF-8)")
	}
	if text[0] != '{' {
		return nil, rowErr(FieldRow, "want a JSON object with the keys %s", strings.Join(Columns, ", "))
	}
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, rowErr(FieldRow, "invalid JSON: %v", err)
	}
	if dec.More() {
		return nil, rowErr(FieldRow, "invalid JSON: more than one value on the line")
	}
	row := &pb.LegacyRow{Line: line}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys) // the first bad key is the same on every run
	var bad *Bad
	for _, k := range keys {
		name := strings.ToLower(strings.TrimSpace(k))
		if slices.Contains(QuarantineColumns, name) {
			continue
		}
		p := column(row, name)
		if p == nil {
			if bad == nil {
				bad = rowErr(k, "unknown key; the keys are %s", strings.Join(Columns, ", "))
			}
			continue
		}
		switch v := obj[k].(type) {
		case string:
			*p = v
		case json.Number:
			*p = v.String()
		case nil:
		default:
			if bad == nil {
				bad = rowErr(name, "must be a string or a number, not %s", jsonKind(v))
			}
		}
	}
	if bad != nil {
		bad.Row, bad.Err.LegacyId = row, row.LegacyId
		return nil, bad
	}
	return row, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case bool:
		return "true or false"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
