package legacy_test

import (
	"errors"
	"strings"
	"testing"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/legacy"
)

const header = "legacy_id,reported_at,source,kind,major,minor,grid_code,component_id,lat,lng,address,description,status,dispatched_unit,deadline\n"

func parse(t *testing.T, f legacy.Format, text string) *legacy.File {
	t.Helper()
	out, err := legacy.Parse(strings.NewReader(text), f)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return out
}

func lines(rows []*pb.LegacyRow) []int32 {
	var out []int32
	for _, r := range rows {
		out = append(out, r.Line)
	}
	return out
}

func badLines(bad []legacy.Bad) map[int32]string {
	out := map[int32]string{}
	for _, b := range bad {
		out[b.Err.Line] = b.Err.Field
	}
	return out
}

func TestParseCSV(t *testing.T) {
	text := "\ufeff" + header +
		"A1,2021-03-04 12:00:00,监督员,部件,01,01,320505001001012,3205050101000031,31.3,120.55,狮山路 88 号,井盖破损,已派遣,city-water,\r\n" +
		// A quoted field over three lines: the row is numbered by its first.
		`A2,2021-03-05 12:00:00,app,event,01,02,320505001001003,,,,"塔园路, 北侧","垃圾 ""很多""` + "\n第二行\n第三行\",filed,,\n" +
		"A3,2021-03-05 12:00:00,app,event,01,02\n" + // short row
		",,,,,,,,,,,,,,\n" + // a row of empty cells: skipped
		"\n" + // a blank line: skipped
		`A4,2021-03-05 12:00:00,app,event,01,02,3205050010010x"3,,,,,x,filed,,` + "\n" + // bare quote
		"A5,2021-03-05 12:00:00,app,event,01,02,320505001001003,,,,,\xff\xfe,filed,,\n" + // not UTF-8
		"A6,2021-03-06 12:00:00,app,event,01,02,320505001001003,,,,,y,filed,,\n"
	f := parse(t, legacy.FormatCSV, text)
	if got := lines(f.Rows); len(got) != 3 || got[0] != 2 || got[1] != 3 || got[2] != 11 {
		t.Fatalf("rows on lines %v, want 2 3 11", got)
	}
	if r := f.Rows[1]; r.LegacyId != "A2" || r.Address != "塔园路, 北侧" || r.Description != "垃圾 \"很多\"\n第二行\n第三行" || r.Status != "filed" {
		t.Errorf("quoted row: %v", r)
	}
	if r := f.Rows[0]; r.LegacyId != "A1" || r.DispatchedUnit != "city-water" || r.Deadline != "" || r.Lat != "31.3" {
		t.Errorf("first row (after a BOM): %v", r)
	}
	want := map[int32]string{6: "row", 9: "row", 10: "description"}
	got := badLines(f.Bad)
	if len(got) != len(want) {
		t.Fatalf("bad lines %v, want %v", got, want)
	}
	for line, field := range want {
		if got[line] != field {
			t.Errorf("line %d: field %q, want %q (%v)", line, got[line], field, f.Bad)
		}
	}
	for _, b := range f.Bad {
		if b.Row == nil || b.Err.Reason == "" {
			t.Errorf("bad line %d without row or reason: %v", b.Err.Line, b)
		}
		if b.Err.Line == 6 && (b.Row.LegacyId != "A3" || b.Err.LegacyId != "A3" || !strings.Contains(b.Err.Reason, "6 fields, the header has 15")) {
			t.Errorf("short row: %v", b)
		}
	}
}

func TestParseCSVHeader(t *testing.T) {
	// Columns by name in any order, optional ones left out, quarantine
	// columns ignored, names trimmed and case-insensitive.
	f := parse(t, legacy.FormatCSV, "Status, legacy_id,line,reason,field,reported_at,source,kind,major,minor,grid_code,description\n"+
		"filed,B1,7,bad,status,2021-03-05 12:00:00,app,event,01,02,320505001001003,x\n")
	if len(f.Rows) != 1 || f.Rows[0].LegacyId != "B1" || f.Rows[0].Status != "filed" || f.Rows[0].Line != 2 || f.Rows[0].Description != "x" {
		t.Fatalf("rows %v bad %v", f.Rows, f.Bad)
	}
	// A column that is not one is ignored and listed; so is an unnamed one.
	f = parse(t, legacy.FormatCSV, strings.Replace(header, "deadline", "due_date, 备注 ,", 1)+
		"A1,2021-03-04 12:00:00,app,event,01,02,320505001001003,,,,,x,filed,,2021-03-05,留言,\n")
	if len(f.Rows) != 1 || f.Rows[0].Deadline != "" || strings.Join(f.Ignored, "|") != "due_date|备注|(column 17)" || len(f.Bad) != 0 {
		t.Fatalf("ignored %q rows %v bad %v", f.Ignored, f.Rows, f.Bad)
	}
	for _, tc := range []struct{ text, column string }{
		{strings.Replace(header, "status,", "", 1), "status"},
		{strings.Replace(header, "lat,", "lat,lat,", 1), "lat"},
		{"", ""},
	} {
		_, err := legacy.Parse(strings.NewReader(tc.text+"A,b\n"), legacy.FormatCSV)
		if tc.text == "" {
			_, err = legacy.Parse(strings.NewReader(""), legacy.FormatCSV)
		}
		var he *legacy.HeaderError
		if !errors.As(err, &he) || he.Column != tc.column {
			t.Errorf("header %q: err %v, want a HeaderError naming %q", tc.text, err, tc.column)
		}
	}
}

func TestParseJSONL(t *testing.T) {
	text := "\ufeff" + `{"legacy_id":"J1","reported_at":"2021-03-05 12:00:00","lat":31.3,"lng":120.55,"deadline":null,"status":"filed"}` + "\n" +
		"\n   \n" + // blank lines
		`{"legacy_id":"J2","description":"cut off` + "\n" +
		`{"legacy_id":"J3","colour":"red"}` + "\r\n" +
		`{"legacy_id":"J4","major":["01"]}` + "\n" +
		`["J5"]` + "\n" +
		`{"legacy_id":"J6"} {"legacy_id":"J7"}` + "\n" +
		`{"legacy_id":"J8","line":3,"field":"lat","reason":"x","status":"closed"}` // last line without newline
	f := parse(t, legacy.FormatJSONL, text)
	if got := lines(f.Rows); len(got) != 3 || got[0] != 1 || got[1] != 5 || got[2] != 9 {
		t.Fatalf("rows on lines %v, want 1 5 9 (bad: %v)", got, f.Bad)
	}
	if r := f.Rows[0]; r.LegacyId != "J1" || r.Lat != "31.3" || r.Lng != "120.55" || r.Deadline != "" || r.Status != "filed" {
		t.Errorf("row: %v", r)
	}
	if r := f.Rows[1]; r.LegacyId != "J3" || strings.Join(f.Ignored, ",") != "colour" {
		t.Errorf("row with an unknown key: %v, ignored %q", r, f.Ignored)
	}
	if r := f.Rows[2]; r.LegacyId != "J8" || r.Status != "closed" {
		t.Errorf("row with quarantine keys: %v", r)
	}
	want := map[int32]string{4: "row", 6: "major", 7: "row", 8: "row"}
	got := badLines(f.Bad)
	if len(got) != len(want) {
		t.Fatalf("bad lines %v, want %v", got, want)
	}
	for line, field := range want {
		if got[line] != field {
			t.Errorf("line %d: field %q, want %q", line, got[line], field)
		}
	}
}

func TestFormat(t *testing.T) {
	for path, want := range map[string]legacy.Format{"a/b.csv": legacy.FormatCSV, "x.CSV": legacy.FormatCSV, "x.jsonl": legacy.FormatJSONL, "x.ndjson": legacy.FormatJSONL} {
		if got, err := legacy.FormatOf(path); err != nil || got != want {
			t.Errorf("%s: %v %v", path, got, err)
		}
	}
	if _, err := legacy.FormatOf("export.xlsx"); err == nil {
		t.Error("xlsx accepted")
	}
	if _, err := legacy.ParseFormat("xml"); err == nil {
		t.Error("xml accepted")
	}
}
