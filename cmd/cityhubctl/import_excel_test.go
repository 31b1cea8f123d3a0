package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/cityhub/cityhub/tiers/store"
)

// The export of an old system as Excel on Chinese Windows saves it (GBK,
// CRLF, Chinese headers, 18 columns of which 备注, 处理意见 and 联系人 are not
// cityhub's, the legacy id under 任务号) and its UTF-8 twin with a BOM.
var (
	excelGBK  = filepath.Join(sampleDir, "excel", "d-320505-gbk.csv")
	excelUTF8 = filepath.Join(sampleDir, "excel", "d-320505-utf8.csv")
)

func copyTo(t *testing.T, src, dst string, edit func([]byte) []byte) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		b = edit(b)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestImportExcelExportGBK(t *testing.T) {
	addr, st := districtNode(t)
	in := t.TempDir()
	path := copyTo(t, excelGBK, filepath.Join(in, "案件导出.csv"), nil)
	twin := copyTo(t, excelUTF8, filepath.Join(in, "案件导出-utf8.csv"), nil)
	// One row with bytes that are not GB18030 (a byte 0xFF in the middle
	// of the description of line 10, XQ-2019-000139).
	lamp, _ := simplifiedchinese.GBK.NewEncoder().String("路灯检修口")
	broken := copyTo(t, excelGBK, filepath.Join(in, "broken.csv"), func(b []byte) []byte {
		if !bytes.Contains(b, []byte(lamp)) {
			t.Fatal("fixture changed")
		}
		return bytes.Replace(b, []byte(lamp), []byte(lamp[:4]+"\xff"+lamp[4:]), 1)
	})
	mapFile := filepath.Join(in, "old-system.map")
	if err := os.WriteFile(mapFile, []byte("# 老系统的列名\n任务号 = legacy_id\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	t.Chdir(work)

	// Its legacy id is under a name cityhub does not know: refused.
	code, out, errOut := runCLI(t, "--addr", addr, "import", path)
	if code != 1 || !strings.Contains(errOut, `column "legacy_id": required column missing`) {
		t.Fatalf("without --map: exit %d\n%s%s", code, out, errOut)
	}
	// --strict refuses the columns that are not cityhub's, naming them,
	// before anything is sent.
	code, out, errOut = runCLI(t, "--addr", addr, "import", path, "--map", "任务号=legacy_id", "--strict")
	if code != 1 || !strings.Contains(errOut, `3 columns that are not cityhub's (--strict): "备注", "处理意见", "联系人"`) {
		t.Fatalf("--strict: exit %d\n%s%s", code, out, errOut)
	}
	if n := countCases(t, st); n != 0 {
		t.Fatalf("--strict refused the file but %d cases are stored", n)
	}

	// The broken copy: the bad row is quarantined naming the encoding, the
	// other 11 imported; the quarantine file is in the current directory.
	code, out, errOut = runCLI(t, "--addr", addr, "import", broken, "--map", "任务号=legacy_id", "--progress")
	if code != 0 {
		t.Fatalf("broken: exit %d\n%s%s", code, out, errOut)
	}
	qpath := filepath.Join(work, "broken.csv.quarantine.csv")
	for name, want := range map[string]string{"rows": "12", "encoding": "gb18030 (detected)", "ignored columns": "备注, 处理意见, 联系人",
		"imported": "11", "already imported": "0", "quarantined": "1 → " + qpath} {
		if got := summaryLine(t, out, name); got != want {
			t.Errorf("broken: %s: %q, want %q\n%s", name, got, want, out)
		}
	}
	if !strings.Contains(summaryLine(t, out, "renamed columns"), "任务号 → legacy_id, 上报时间 → reported_at") ||
		!strings.Contains(out, "line 10 XQ-2019-000139: description: not valid GB18030 text") {
		t.Errorf("broken: summary\n%s", out)
	}
	// Progress on stderr (not a terminal: with --progress), stdout as ever.
	if !strings.Contains(errOut, "import: 11 of 11 rows (100%)") || strings.Contains(out, "of 11 rows") {
		t.Errorf("progress: stderr %q", errOut)
	}
	got, recs := quarantined(t, qpath)
	if len(got) != 1 || got["10"] != "description" || !strings.Contains(recs[1][3], "not valid GB18030") {
		t.Errorf("quarantine %v", recs)
	}
	if _, err := os.Stat(broken + ".quarantine.csv"); !os.IsNotExist(err) {
		t.Errorf("a quarantine file next to the input: %v", err)
	}
	if n := countCases(t, st); n != 11 {
		t.Fatalf("%d cases stored, want 11", n)
	}

	// The export as it is, with the mapping in a file: the 12th row.
	code, out, errOut = runCLI(t, "--addr", addr, "import", path, "--map-file", mapFile)
	if code != 0 || summaryLine(t, out, "imported") != "1" || summaryLine(t, out, "already imported") != "11" || summaryLine(t, out, "quarantined") != "0" {
		t.Fatalf("gbk: exit %d\n%s%s", code, out, errOut)
	}
	if strings.Contains(errOut, "rows (") {
		t.Errorf("progress without --progress and without a terminal: %q", errOut)
	}

	// Every row's text is the export's, byte for byte: the twin read with
	// encoding/csv alone says what the export means.
	b, _ := os.ReadFile(twin)
	recs, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(b, []byte("\ufeff")))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 13 || recs[0][0] != "任务号" {
		t.Fatalf("twin: %d records", len(recs))
	}
	for _, r := range recs[1:] {
		cs, _, err := st.List(store.Query{LegacyID: r[0]})
		if err != nil || len(cs) != 1 {
			t.Fatalf("%s: %v %v", r[0], cs, err)
		}
		if c := cs[0]; c.Description != r[11] || c.GetLocation().GetAddress() != r[10] {
			t.Errorf("%s: description %q address %q, want %q %q", r[0], c.Description, c.GetLocation().GetAddress(), r[11], r[10])
		}
	}
	if n := countCases(t, st); n != 12 {
		t.Fatalf("%d cases stored, want 12", n)
	}

	// The UTF-8 twin with its BOM: the same rows (all already imported).
	code, out, errOut = runCLI(t, "--addr", addr, "-o", "json", "import", twin, "--map", "任务号=legacy_id")
	if code != 0 {
		t.Fatalf("utf-8: exit %d\n%s%s", code, out, errOut)
	}
	var sum struct {
		Encoding                string
		Detected                bool     `json:"encoding_detected"`
		Ignored                 []string `json:"ignored_columns"`
		Rows, Imported, Already int
		Quarantined             int
		Renamed                 []struct{ From, To string } `json:"renamed_columns"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if sum.Encoding != "utf-8" || sum.Detected || strings.Join(sum.Ignored, ",") != "备注,处理意见,联系人" || sum.Rows != 12 || sum.Already != 12 ||
		sum.Imported != 0 || sum.Quarantined != 0 || len(sum.Renamed) != 15 || sum.Renamed[0].From != "任务号" {
		t.Errorf("utf-8 summary %+v", sum)
	}

	// --encoding overrides the detection: the GBK header is not UTF-8.
	code, out, errOut = runCLI(t, "--addr", addr, "import", path, "--map", "任务号=legacy_id", "--encoding", "utf-8")
	if code != 1 || !strings.Contains(errOut, "not valid UTF-8 text (the encoding given)") {
		t.Errorf("--encoding utf-8: exit %d\n%s%s", code, out, errOut)
	}
}
