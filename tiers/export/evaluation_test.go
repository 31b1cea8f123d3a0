package export

import (
	"bytes"
	"encoding/csv"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/evaluation"
)

// monthReports are reports of a month as tiers/evaluation ranks them: a
// week by unit, the same week by community (12-digit grid prefixes, text
// with leading digits) and the month by inspector under another scheme.
func monthReports(t *testing.T) []*pb.EvaluationReport {
	t.Helper()
	// Rates and scores with two decimals, as Report rounds them.
	pct := func(a, b int64) float64 { return math.Round(10000*float64(a)/float64(b)) / 100 }
	rows := func(keys ...string) []*pb.EvaluationRow {
		out := make([]*pb.EvaluationRow, len(keys))
		for i, k := range keys {
			n := int64(len(keys) - i)
			due := 10*n + 3
			out[i] = &pb.EvaluationRow{
				Rank: int32(i + 1), Key: k,
				Filed: 12*n + 1, Dispatched: 11 * n, Due: due, Closed: 9 * n, ClosedOnTime: 8 * n, HandledOnTime: 7 * n,
				Rework: n, Overdue: n / 2, Extensions: n % 3, Recurrence: int64(i % 2),
				ClosureRate: pct(9*n, due), OnTimeClosureRate: pct(8*n, due), OnTimeHandlingRate: pct(7*n, due),
				ReworkRate: pct(n, due), ExtensionRate: pct(n%3, 11*n), Score: 97.83 - 7.25*float64(i),
			}
		}
		return out
	}
	return []*pb.EvaluationReport{
		{Period: evaluation.Week, PeriodKey: "2026-W47", Dimension: evaluation.Unit, Scheme: "default",
			Rows: rows("u-320505-sw", "u-320505-gl", "u-320505-hb", "u-320505-cg")},
		{Period: evaluation.Week, PeriodKey: "2026-W47", Dimension: evaluation.Region, Scheme: "default",
			Rows: rows("320505001001", "320505001002", "320505002001")},
		{Period: evaluation.Month, PeriodKey: "2026-11", Dimension: evaluation.Inspector, Scheme: "jinhua",
			Rows: rows("insp-001", "insp-002", "insp-003", "insp-004", "insp-005")},
	}
}

func TestCSVRoundTrip(t *testing.T) {
	reps := monthReports(t)
	// Keys that need quoting survive too.
	odd := proto.Clone(reps[0]).(*pb.EvaluationReport)
	odd.Rows[0].Key, odd.Rows[1].Key = `监督员 "张三", 东区`, "line\nbreak"
	odd.Rows[2].Score = 1.0 / 3
	for _, rep := range append(reps, odd, &pb.EvaluationReport{}) {
		var buf bytes.Buffer
		if err := WriteEvaluationCSV(&buf, rep); err != nil {
			t.Fatal(err)
		}
		back, err := ReadEvaluationCSV(bytes.NewReader(buf.Bytes()))
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
	if err := WriteEvaluationCSV(&buf, reps[0]); err != nil {
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
	for _, bad := range []string{"", "rank,key\n1,a\n", strings.Join(EvaluationCSVHeader(), ",") + "\nx" + strings.Repeat(",1", len(EvaluationCSVHeader())-1) + "\n"} {
		if _, err := ReadEvaluationCSV(strings.NewReader(bad)); err == nil {
			t.Errorf("ReadEvaluationCSV(%q) accepted", bad)
		}
	}
}

func TestXLSX(t *testing.T) {
	reps := monthReports(t)
	dup := proto.Clone(reps[0]).(*pb.EvaluationReport) // a second sheet of the same name
	var buf bytes.Buffer
	if err := WriteEvaluationXLSX(&buf, append(reps, dup)...); err != nil {
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
		zhKey := map[string]string{evaluation.Unit: "单位", evaluation.Region: "区域", evaluation.Inspector: "监督员"}[rep.Dimension]
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
		if rep.Dimension == evaluation.Region {
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
	if err := WriteEvaluationXLSX(&buf); err == nil {
		t.Error("a workbook of no report written")
	}
}
