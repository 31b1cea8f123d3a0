package evaluation

import (
	"bytes"
	"encoding/csv"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// monthReports are real reports of a generated month.
func monthReports(t *testing.T) []*pb.EvaluationReport {
	t.Helper()
	g := newGenerator(t, 47)
	g.month(300)
	var out []*pb.EvaluationReport
	for _, q := range []Query{
		{Period: Week, At: "2026-11-18", Dimension: Unit},
		{Period: Week, At: "2026-11-18", Dimension: Region, RegionDigits: 12},
		{Period: Month, At: "2026-11-18", Dimension: Inspector, Scheme: "jinhua"},
	} {
		rep, err := Report(g.w, q)
		if err != nil || len(rep.Rows) < 3 {
			t.Fatalf("%+v: %v, %v", q, rep, err)
		}
		out = append(out, rep)
	}
	return out
}

func TestCSVRoundTrip(t *testing.T) {
	reps := monthReports(t)
	// Keys that need quoting survive too.
	odd := proto.Clone(reps[0]).(*pb.EvaluationReport)
	odd.Rows[0].Key, odd.Rows[1].Key = `监督员 "张三", 东区`, "line\nbreak"
	odd.Rows[2].Score = 1.0 / 3
	for _, rep := range append(reps, odd, &pb.EvaluationReport{}) {
		var buf bytes.Buffer
		if err := WriteCSV(&buf, rep); err != nil {
			t.Fatal(err)
		}
		back, err := ReadCSV(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("read back: %v\n%s", err, buf.String())
		}
		want := rep
		if len(rep.Rows) == 0 {
			want = &pb.EvaluationReport{} // an empty report keeps only its header
		}
		if !proto.Equal(back, want) {
			t.Fatalf("round trip:\n got  %v\n want %v", back, want)
		}
	}
	// The file as a spreadsheet sees it.
	var buf bytes.Buffer
	if err := WriteCSV(&buf, reps[0]); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(recs[0][:5], []string{"rank", "key", "filed", "dispatched", "due"}) || len(recs) != len(reps[0].Rows)+1 {
		t.Fatalf("header %q, %d lines", recs[0], len(recs))
	}
	r := reps[0].Rows[0]
	if recs[1][0] != "1" || recs[1][1] != r.Key || recs[1][17] != strconv.FormatFloat(r.Score, 'f', -1, 64) || recs[1][19] != "2026-W47" {
		t.Fatalf("first row %q for %v", recs[1], r)
	}
	for _, bad := range []string{"", "rank,key\n1,a\n", strings.Join(CSVHeader(), ",") + "\nx" + strings.Repeat(",1", len(CSVHeader())-1) + "\n"} {
		if _, err := ReadCSV(strings.NewReader(bad)); err == nil {
			t.Errorf("ReadCSV(%q) accepted", bad)
		}
	}
}

func TestXLSX(t *testing.T) {
	reps := monthReports(t)
	dup := proto.Clone(reps[0]).(*pb.EvaluationReport) // a second sheet of the same name
	var buf bytes.Buffer
	if err := WriteXLSX(&buf, append(reps, dup)...); err != nil {
		t.Fatal(err)
	}
	f, err := excelize.OpenReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("excelize cannot open the workbook: %v", err)
	}
	defer f.Close()
	if got, want := f.GetSheetList(), []string{"2026-W47 unit", "2026-W47 region", "2026-11 inspector", "2026-W47 unit (2)"}; !slices.Equal(got, want) {
		t.Fatalf("sheets %q, want %q", got, want)
	}
	cell := func(sheet, ref string, raw bool) string {
		t.Helper()
		var v string
		var err error
		if raw {
			v, err = f.GetCellValue(sheet, ref, excelize.Options{RawCellValue: true})
		} else {
			v, err = f.GetCellValue(sheet, ref)
		}
		if err != nil {
			t.Fatalf("%s!%s: %v", sheet, ref, err)
		}
		return v
	}
	for i, rep := range reps {
		sheet := f.GetSheetList()[i]
		if title := cell(sheet, "A1", false); !strings.Contains(title, "综合评价") || !strings.Contains(title, rep.PeriodKey) || !strings.Contains(title, rep.Scheme) {
			t.Errorf("%s title %q", sheet, title)
		}
		zhKey := map[string]string{Unit: "单位", Region: "区域", Inspector: "监督员"}[rep.Dimension]
		for ref, want := range map[string]string{"A2": "排名", "B2": zhKey, "C2": "立案数", "E2": "应结案数", "M2": "结案率(%)", "R2": "综合得分",
			"A3": "rank", "B3": rep.Dimension, "C3": "filed", "M3": "closure_rate", "R3": "score"} {
			if got := cell(sheet, ref, false); got != want {
				t.Errorf("%s!%s = %q, want %q", sheet, ref, got, want)
			}
		}
		rows, err := f.GetRows(sheet)
		if err != nil || len(rows) != 3+len(rep.Rows) {
			t.Fatalf("%s: %d rows (%v), want %d", sheet, len(rows), err, 3+len(rep.Rows))
		}
		for j, r := range rep.Rows {
			n := strconv.Itoa(4 + j)
			if cell(sheet, "A"+n, true) != strconv.Itoa(int(r.Rank)) || cell(sheet, "B"+n, true) != r.Key ||
				cell(sheet, "E"+n, true) != strconv.FormatInt(r.Due, 10) || cell(sheet, "I"+n, true) != strconv.FormatInt(r.Rework, 10) {
				t.Fatalf("%s row %s: %q, want %v", sheet, n, rows[3+j], r)
			}
			if got, _ := strconv.ParseFloat(cell(sheet, "M"+n, true), 64); got != r.ClosureRate {
				t.Fatalf("%s!M%s = %v, want %v", sheet, n, got, r.ClosureRate)
			}
			if got, _ := strconv.ParseFloat(cell(sheet, "R"+n, true), 64); got != r.Score {
				t.Fatalf("%s!R%s = %v, want %v", sheet, n, got, r.Score)
			}
			// Formatted as a spreadsheet shows them: rates with a % sign and
			// two decimals, scores with two decimals.
			if got, want := cell(sheet, "M"+n, false), strconv.FormatFloat(r.ClosureRate, 'f', 2, 64)+"%"; got != want {
				t.Fatalf("%s!M%s shows %q, want %q", sheet, n, got, want)
			}
			if got, want := cell(sheet, "R"+n, false), strconv.FormatFloat(r.Score, 'f', 2, 64); got != want {
				t.Fatalf("%s!R%s shows %q, want %q", sheet, n, got, want)
			}
		}
		// Region keys stay text: leading zeros and all.
		if rep.Dimension == Region {
			typ, err := f.GetCellType(sheet, "B4")
			if err != nil || typ == excelize.CellTypeNumber {
				t.Errorf("%s!B4 stored as %v (%v)", sheet, typ, err)
			}
		}
		panes, err := f.GetPanes(sheet)
		if err != nil || !panes.Freeze || panes.YSplit != 3 {
			t.Errorf("%s panes %+v %v", sheet, panes, err)
		}
	}
	if err := WriteXLSX(&buf); err == nil {
		t.Error("a workbook of no report written")
	}
}
