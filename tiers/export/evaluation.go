package export

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/xuri/excelize/v2"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/evaluation"
)

// column is one column of the exports: its English (CSV, second header row
// of the workbook) and Chinese (first header row) names, how to read it from
// a row and how to set it.
type column struct {
	en, zh string
	kind   byte // 'i' integer, 'r' rate (percent), 's' score, 'k' key
	get    func(*pb.EvaluationRow) any
	set    func(*pb.EvaluationRow, string) error
}

func intCol(en, zh string, p func(*pb.EvaluationRow) *int64) column {
	return column{en: en, zh: zh, kind: 'i',
		get: func(r *pb.EvaluationRow) any { return *p(r) },
		set: func(r *pb.EvaluationRow, s string) (err error) { *p(r), err = strconv.ParseInt(s, 10, 64); return err }}
}

func floatCol(en, zh string, kind byte, p func(*pb.EvaluationRow) *float64) column {
	return column{en: en, zh: zh, kind: kind,
		get: func(r *pb.EvaluationRow) any { return *p(r) },
		set: func(r *pb.EvaluationRow, s string) (err error) { *p(r), err = strconv.ParseFloat(s, 64); return err }}
}

// columns are the row fields in export order.
var columns = []column{
	{en: "rank", zh: "排名", kind: 'i',
		get: func(r *pb.EvaluationRow) any { return int64(r.Rank) },
		set: func(r *pb.EvaluationRow, s string) error {
			n, err := strconv.ParseInt(s, 10, 32)
			r.Rank = int32(n)
			return err
		}},
	{en: "key", zh: "对象", kind: 'k',
		get: func(r *pb.EvaluationRow) any { return r.Key },
		set: func(r *pb.EvaluationRow, s string) error { r.Key = s; return nil }},
	intCol("filed", "立案数", func(r *pb.EvaluationRow) *int64 { return &r.Filed }),
	intCol("dispatched", "派遣数", func(r *pb.EvaluationRow) *int64 { return &r.Dispatched }),
	intCol("due", "应结案数", func(r *pb.EvaluationRow) *int64 { return &r.Due }),
	intCol("closed", "结案数", func(r *pb.EvaluationRow) *int64 { return &r.Closed }),
	intCol("closed_on_time", "按期结案数", func(r *pb.EvaluationRow) *int64 { return &r.ClosedOnTime }),
	intCol("handled_on_time", "按期处置数", func(r *pb.EvaluationRow) *int64 { return &r.HandledOnTime }),
	intCol("rework", "返工数", func(r *pb.EvaluationRow) *int64 { return &r.Rework }),
	intCol("overdue", "超期数", func(r *pb.EvaluationRow) *int64 { return &r.Overdue }),
	intCol("extensions", "延期数", func(r *pb.EvaluationRow) *int64 { return &r.Extensions }),
	intCol("recurrence", "反弹数", func(r *pb.EvaluationRow) *int64 { return &r.Recurrence }),
	floatCol("closure_rate", "结案率", 'r', func(r *pb.EvaluationRow) *float64 { return &r.ClosureRate }),
	floatCol("on_time_closure_rate", "按期结案率", 'r', func(r *pb.EvaluationRow) *float64 { return &r.OnTimeClosureRate }),
	floatCol("on_time_handling_rate", "按期处置率", 'r', func(r *pb.EvaluationRow) *float64 { return &r.OnTimeHandlingRate }),
	floatCol("rework_rate", "返工率", 'r', func(r *pb.EvaluationRow) *float64 { return &r.ReworkRate }),
	floatCol("extension_rate", "延期率", 'r', func(r *pb.EvaluationRow) *float64 { return &r.ExtensionRate }),
	floatCol("score", "综合得分", 's', func(r *pb.EvaluationRow) *float64 { return &r.Score }),
}

// reportColumns follow the row columns in the CSV: the report's own fields,
// repeated on every row so a file read back (or several concatenated) says
// what it is.
var reportColumns = []string{"period", "period_key", "dimension", "scheme"}

// EvaluationCSVHeader is the header line of WriteEvaluationCSV.
func EvaluationCSVHeader() []string {
	h := make([]string, 0, len(columns)+len(reportColumns))
	for _, c := range columns {
		h = append(h, c.en)
	}
	return append(h, reportColumns...)
}

// WriteEvaluationCSV writes the report as CSV (RFC 4180, UTF-8, no BOM): a header
// line of the English column names (EvaluationCSVHeader), then one line per row in
// rank order. Rates are percent; numbers are written exactly, so ReadEvaluationCSV
// gives the same report back (an empty report keeps only its header).
func WriteEvaluationCSV(w io.Writer, rep *pb.EvaluationReport) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(EvaluationCSVHeader()); err != nil {
		return err
	}
	for _, r := range rep.GetRows() {
		rec := make([]string, 0, len(columns)+len(reportColumns))
		for _, c := range columns {
			switch v := c.get(r).(type) {
			case int64:
				rec = append(rec, strconv.FormatInt(v, 10))
			case float64:
				rec = append(rec, strconv.FormatFloat(v, 'f', -1, 64))
			case string:
				rec = append(rec, v)
			}
		}
		rec = append(rec, rep.GetPeriod(), rep.GetPeriodKey(), rep.GetDimension(), rep.GetScheme())
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// ReadEvaluationCSV reads a report written by WriteEvaluationCSV.
func ReadEvaluationCSV(r io.Reader) (*pb.EvaluationReport, error) {
	cr := csv.NewReader(r)
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("evaluation csv: header: %w", err)
	}
	if want := EvaluationCSVHeader(); strings.Join(head, ",") != strings.Join(want, ",") {
		return nil, fmt.Errorf("evaluation csv: header %q, want %q", head, want)
	}
	rep := &pb.EvaluationReport{}
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return rep, nil
		}
		if err != nil {
			return nil, fmt.Errorf("evaluation csv: %w", err)
		}
		row := &pb.EvaluationRow{}
		for i, c := range columns {
			if err := c.set(row, rec[i]); err != nil {
				return nil, fmt.Errorf("evaluation csv: line %d, %s: %w", line, c.en, err)
			}
		}
		meta := rec[len(columns):]
		if line == 2 {
			rep.Period, rep.PeriodKey, rep.Dimension, rep.Scheme = meta[0], meta[1], meta[2], meta[3]
		} else if meta[0] != rep.Period || meta[1] != rep.PeriodKey || meta[2] != rep.Dimension || meta[3] != rep.Scheme {
			return nil, fmt.Errorf("evaluation csv: line %d belongs to another report (%s)", line, strings.Join(meta, " "))
		}
		rep.Rows = append(rep.Rows, row)
	}
}

var dimensionZH = map[string]string{evaluation.Unit: "单位", evaluation.Region: "区域", evaluation.Inspector: "监督员"}

var periodZH = map[string]string{evaluation.Day: "日", evaluation.Week: "周", evaluation.Month: "月", evaluation.Quarter: "季度"}

// XLSX layout: a title on row 1, Chinese column names on row 2, English on
// row 3, the rows from row 4 on, in rank order.
const (
	xlsxHeaderRows = 3
	xlsxFirstRow   = xlsxHeaderRows + 1
)

// WriteEvaluationXLSX writes the reports as one workbook (the weekly bulletin), one
// sheet per report named "<period key> <dimension>" (deduplicated), with a
// title row, Chinese and English header rows, frozen headers and number
// formats: counts as integers, rates as percent with two decimals, scores
// with two decimals. Keys (unit ids, grid prefixes, inspector ids) are text.
func WriteEvaluationXLSX(w io.Writer, reports ...*pb.EvaluationReport) error {
	if len(reports) == 0 {
		return errors.New("evaluation xlsx: no report to write")
	}
	f := excelize.NewFile()
	defer f.Close()
	styles, err := xlsxStyles(f)
	if err != nil {
		return err
	}
	used := map[string]bool{}
	for i, rep := range reports {
		name := sheetName(rep, used)
		if i == 0 {
			err = f.SetSheetName(f.GetSheetName(0), name)
		} else {
			_, err = f.NewSheet(name)
		}
		if err != nil {
			return fmt.Errorf("evaluation xlsx: sheet %q: %w", name, err)
		}
		if err := writeSheet(f, name, rep, styles); err != nil {
			return fmt.Errorf("evaluation xlsx: sheet %q: %w", name, err)
		}
	}
	f.SetActiveSheet(0)
	return f.Write(w)
}

type sheetStyles struct{ title, header, count, rate, score, text int }

func xlsxStyles(f *excelize.File) (sheetStyles, error) {
	var s sheetStyles
	rateFmt, scoreFmt := `0.00"%"`, "0.00"
	for _, st := range []struct {
		dst   *int
		style *excelize.Style
	}{
		{&s.title, &excelize.Style{Font: &excelize.Font{Bold: true, Size: 13}}},
		{&s.header, &excelize.Style{Font: &excelize.Font{Bold: true},
			Fill:      excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{"DDEBF7"}},
			Alignment: &excelize.Alignment{Horizontal: "center", WrapText: true}}},
		{&s.count, &excelize.Style{NumFmt: 1}}, // 0
		{&s.rate, &excelize.Style{CustomNumFmt: &rateFmt}},
		{&s.score, &excelize.Style{CustomNumFmt: &scoreFmt, Font: &excelize.Font{Bold: true}}},
		{&s.text, &excelize.Style{NumFmt: 49}}, // @
	} {
		id, err := f.NewStyle(st.style)
		if err != nil {
			return s, fmt.Errorf("evaluation xlsx: style: %w", err)
		}
		*st.dst = id
	}
	return s, nil
}

// sheetName names a report's sheet within Excel's rules (at most 31
// characters, none of []:*?/\), unique in the workbook.
func sheetName(rep *pb.EvaluationReport, used map[string]bool) string {
	base := strings.TrimSpace(rep.GetPeriodKey() + " " + rep.GetDimension())
	base = strings.Map(func(r rune) rune {
		if strings.ContainsRune(`[]:*?/\`, r) {
			return '-'
		}
		return r
	}, base)
	if base == "" {
		base = "report"
	}
	if r := []rune(base); len(r) > 26 {
		base = string(r[:26])
	}
	name := base
	for n := 2; used[strings.ToLower(name)]; n++ {
		name = fmt.Sprintf("%s (%d)", base, n)
	}
	used[strings.ToLower(name)] = true
	return name
}

func writeSheet(f *excelize.File, sheet string, rep *pb.EvaluationReport, st sheetStyles) error {
	title := fmt.Sprintf("综合评价 Evaluation · %s（%s %s）· %s %s · 方案 scheme: %s",
		rep.GetPeriodKey(), periodZH[rep.GetPeriod()], rep.GetPeriod(),
		dimensionZH[rep.GetDimension()], rep.GetDimension(), rep.GetScheme())
	if err := f.SetCellValue(sheet, "A1", title); err != nil {
		return err
	}
	if err := f.SetCellStyle(sheet, "A1", "A1", st.title); err != nil {
		return err
	}
	zh := make([]any, len(columns))
	en := make([]any, len(columns))
	for i, c := range columns {
		zh[i], en[i] = c.zh, c.en
		switch {
		case c.en == "key":
			if d := dimensionZH[rep.GetDimension()]; d != "" {
				zh[i], en[i] = d, rep.GetDimension()
			}
		case c.kind == 'r':
			zh[i] = c.zh + "(%)"
		}
	}
	if err := f.SetSheetRow(sheet, "A2", &zh); err != nil {
		return err
	}
	if err := f.SetSheetRow(sheet, "A3", &en); err != nil {
		return err
	}
	lastCol, _ := excelize.ColumnNumberToName(len(columns))
	if err := f.SetCellStyle(sheet, "A2", lastCol+"3", st.header); err != nil {
		return err
	}
	for i, r := range rep.GetRows() {
		vals := make([]any, len(columns))
		for j, c := range columns {
			vals[j] = c.get(r)
		}
		cell, _ := excelize.CoordinatesToCellName(1, xlsxFirstRow+i)
		if err := f.SetSheetRow(sheet, cell, &vals); err != nil {
			return err
		}
	}
	if n := len(rep.GetRows()); n > 0 {
		last := xlsxFirstRow + n - 1
		for j, c := range columns {
			col, _ := excelize.ColumnNumberToName(j + 1)
			style := map[byte]int{'i': st.count, 'r': st.rate, 's': st.score, 'k': st.text}[c.kind]
			if err := f.SetCellStyle(sheet, fmt.Sprintf("%s%d", col, xlsxFirstRow), fmt.Sprintf("%s%d", col, last), style); err != nil {
				return err
			}
		}
	}
	for j, c := range columns {
		col, _ := excelize.ColumnNumberToName(j + 1)
		width := 11.0
		switch c.kind {
		case 'k':
			width = 22
		case 'r':
			width = 13
		}
		if c.en == "rank" {
			width = 7
		}
		if err := f.SetColWidth(sheet, col, col, width); err != nil {
			return err
		}
	}
	return f.SetPanes(sheet, &excelize.Panes{Freeze: true, XSplit: 2, YSplit: xlsxHeaderRows, TopLeftCell: fmt.Sprintf("C%d", xlsxFirstRow), ActivePane: "bottomRight"})
}
