package legacy

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

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

	Encoding Encoding // the encoding the file was read in
	Detected bool     // Encoding was detected, not given
	BOM      bool     // the file started with a UTF-8 byte order mark
	// Ignored are the header's columns (JSON lines' keys) that are not
	// columns of an export, as the file names them, in file order; an
	// unnamed CSV column is "(column N)".
	Ignored []string
	// Renamed are the columns read under another name (a mapping or one of
	// the Aliases), in file order.
	Renamed []Rename
}

// Options say how to read an export.
type Options struct {
	Format   Format
	Encoding Encoding // EncodingAuto detects it
	Mapping  Mapping  // export names → columns, beside the Aliases
}

// HeaderError refuses a whole CSV file: its header names a column twice,
// lacks a required one, or cannot be read.
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

// Parse reads an export in the format f, detecting its encoding.
func Parse(r io.Reader, f Format) (*File, error) {
	return ParseWith(r, Options{Format: f})
}

// ParseWith reads an export. Only a bad CSV header or a read failure is an
// error; a line that cannot be read (or decoded) is reported in File.Bad.
func ParseWith(r io.Reader, o Options) (*File, error) {
	if o.Format != FormatCSV && o.Format != FormatJSONL {
		return nil, fmt.Errorf("unknown format %q: want csv or jsonl", o.Format)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	out := &File{Encoding: o.Encoding}
	if bytes.HasPrefix(data, utf8BOM) {
		data, out.BOM = data[len(utf8BOM):], true // Excel's "CSV UTF-8", Windows exports
		if out.Encoding == EncodingAuto {
			out.Encoding = EncodingUTF8
		}
	}
	if out.Encoding == EncodingAuto {
		out.Encoding, out.Detected = DetectEncoding(data), true
	}
	if o.Mapping == nil {
		o.Mapping = Mapping{}
	}
	p := &parser{File: out, opts: o}
	if o.Format == FormatCSV {
		return out, p.csv(data)
	}
	return out, p.jsonl(data)
}

type parser struct {
	*File
	opts    Options
	ignored map[string]bool
}

// ignore lists a name of the file that is not a column (once).
func (p *parser) ignore(name string) {
	if p.ignored == nil {
		p.ignored = map[string]bool{}
	}
	if !p.ignored[name] {
		p.ignored[name] = true
		p.Ignored = append(p.Ignored, name)
	}
}

func (p *parser) csv(data []byte) error {
	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1 // counted here, per row, so a short row is one bad line
	header, err := cr.Read()
	switch {
	case errors.Is(err, io.EOF):
		return &HeaderError{Reason: "empty file: the first line must name the columns (" + strings.Join(Columns, ", ") + ")"}
	case err != nil:
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return &HeaderError{Reason: "line 1 cannot be read: " + pe.Err.Error()}
		}
		return err
	}
	for i, h := range header {
		d, ok := p.Encoding.decode(h)
		if !ok {
			return &HeaderError{Column: d, Reason: p.Encoding.notValid(p.Detected)}
		}
		header[i] = d
	}
	cols, err := p.headerColumns(header)
	if err != nil {
		return err
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return err
			}
			row, _ := p.csvRow(cols, rec, int32(pe.StartLine))
			p.Bad = append(p.Bad, Bad{Row: row, Err: &pb.RowError{Line: int32(pe.StartLine), LegacyId: row.LegacyId, Field: FieldRow,
				Reason: fmt.Sprintf("cannot be read as CSV (line %d, column %d): %v", pe.Line, pe.Column, pe.Err)}})
			continue
		}
		line, _ := cr.FieldPos(0)
		if blank(rec) {
			continue // a row of empty cells, as spreadsheets leave at the end
		}
		row, undecoded := p.csvRow(cols, rec, int32(line))
		if len(rec) != len(cols) {
			p.Bad = append(p.Bad, Bad{Row: row, Err: &pb.RowError{Line: int32(line), LegacyId: row.LegacyId, Field: FieldRow,
				Reason: fmt.Sprintf("has %d fields, the header has %d", len(rec), len(cols))}})
			continue
		}
		if undecoded != "" {
			p.Bad = append(p.Bad, Bad{Row: row, Err: &pb.RowError{Line: row.Line, LegacyId: row.LegacyId, Field: undecoded,
				Reason: p.Encoding.notValid(p.Detected)}})
			continue
		}
		p.Rows = append(p.Rows, row)
	}
}

// headerColumns reads a CSV header and returns the column of each field
// ("" for a field that is ignored).
func (p *parser) headerColumns(header []string) ([]string, error) {
	m := p.opts.Mapping
	direct := map[string]bool{}
	for _, h := range header {
		if c, ok := m.direct(h); ok {
			direct[c] = true
		}
	}
	cols := make([]string, len(header))
	seen := map[string]string{}
	for i, h := range header {
		name, renamed, quiet := m.columnOf(h, func(c string) bool { return direct[c] })
		switch {
		case name == "" && quiet:
		case name == "" && strings.TrimSpace(h) == "":
			p.ignore(fmt.Sprintf("(column %d)", i+1))
		case name == "":
			p.ignore(strings.TrimSpace(h))
		case seen[name] != "":
			return nil, &HeaderError{Column: strings.TrimSpace(h), Reason: fmt.Sprintf("gives the column %s, which %q gives too", name, seen[name])}
		default:
			seen[name] = strings.TrimSpace(h)
			if renamed {
				p.Renamed = append(p.Renamed, Rename{From: strings.TrimSpace(h), To: name})
			}
		}
		cols[i] = name
	}
	for _, c := range requiredColumns {
		if seen[c] == "" {
			return nil, &HeaderError{Column: c, Reason: "required column missing (map a column of the export to it); required: " + strings.Join(requiredColumns, ", ")}
		}
	}
	return cols, nil
}

// csvRow builds a row from the fields that are there (a short or broken
// record keeps what it has, for the quarantine file), decoding each;
// undecoded names the first column that is not valid text.
func (p *parser) csvRow(cols, rec []string, line int32) (row *pb.LegacyRow, undecoded string) {
	row = &pb.LegacyRow{Line: line}
	for i, v := range rec {
		if i < len(cols) && cols[i] != "" {
			d, ok := p.Encoding.decode(v)
			if !ok && undecoded == "" {
				undecoded = cols[i]
			}
			*column(row, cols[i]) = d
		}
	}
	return row, undecoded
}

func blank(rec []string) bool {
	for _, v := range rec {
		if strings.TrimSpace(v) != "" {
			return false
		}
	}
	return true
}

func (p *parser) jsonl(data []byte) error {
	for line := int32(1); len(data) > 0; line++ {
		raw := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			raw, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		text := bytes.TrimSpace(raw)
		if len(text) == 0 {
			continue
		}
		row, bad := p.jsonRow(text, line)
		switch {
		case bad != nil:
			p.Bad = append(p.Bad, *bad)
		default:
			p.Rows = append(p.Rows, row)
		}
	}
	return nil
}

// jsonRow reads one JSON object; values are strings, numbers or null. A
// key that is not a column is ignored (and listed).
func (p *parser) jsonRow(raw []byte, line int32) (*pb.LegacyRow, *Bad) {
	rowErr := func(field, format string, args ...any) *Bad {
		return &Bad{Err: &pb.RowError{Line: line, Field: field, Reason: fmt.Sprintf(format, args...)}}
	}
	decoded, ok := p.Encoding.decode(string(raw))
	if !ok {
		return nil, rowErr(FieldRow, "%s", p.Encoding.notValid(p.Detected))
	}
	text := []byte(decoded)
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
	direct := map[string]bool{}
	for k := range obj {
		keys = append(keys, k)
		if c, ok := p.opts.Mapping.direct(k); ok {
			direct[c] = true
		}
	}
	slices.Sort(keys) // the first bad key is the same on every run
	var bad *Bad
	seen := map[string]string{}
	for _, k := range keys {
		name, renamed, quiet := p.opts.Mapping.columnOf(k, func(c string) bool { return direct[c] })
		switch {
		case name == "" && quiet:
			continue
		case name == "":
			p.ignore(strings.TrimSpace(k))
			continue
		case seen[name] != "":
			if bad == nil {
				bad = rowErr(k, "gives the column %s, which the key %q gives too", name, seen[name])
			}
			continue
		}
		seen[name] = k
		if renamed {
			p.renamed(Rename{From: strings.TrimSpace(k), To: name})
		}
		p := column(row, name)
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

// renamed lists a rename (once).
func (p *parser) renamed(r Rename) {
	if !slices.Contains(p.Renamed, r) {
		p.Renamed = append(p.Renamed, r)
	}
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
