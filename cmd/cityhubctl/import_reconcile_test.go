package main

import (
	"bytes"
	"encoding/csv"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cityhub/cityhub/federation/fedtest"
	"github.com/cityhub/cityhub/tiers/store"
	"github.com/cityhub/cityhub/tiers/workflow"
)

// TestImportExcelExportGBKAndReconcile is the last acceptance
// point: the old system's GBK export with extra columns, imported through
// `cityhubctl import` into 虎丘区 (d-320505) of the sample city's
// federation and reconciled there with `cityhubctl reconcile`: every row
// imported with its text intact, the ignored columns named, and every open
// case at its owner (README, Concepts: Reconciliation, the guarantee).
func TestImportExcelExportGBKAndReconcile(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 15-node federation")
	}
	start := time.Now()
	f := startSampleCity(t)
	district := grpcAddr(f, "d-320505")
	st := f.Groups["d-320505"].Replica(0).Node.Store()

	in := t.TempDir()
	path := copyTo(t, excelGBK, filepath.Join(in, "案件导出.csv"), nil)
	twin, err := os.ReadFile(excelUTF8)
	if err != nil {
		t.Fatal(err)
	}
	mapFile := filepath.Join(in, "old-system.map")
	if err := os.WriteFile(mapFile, []byte("# 老系统的列名\n任务号 = legacy_id\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir()) // where a quarantine file would land

	// The import: all 12 rows, the encoding detected, the columns that are
	// not cityhub's named.
	code, out, errOut := runCLI(t, "--addr", district, "import", path, "--map-file", mapFile)
	if code != 0 {
		t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("import:\n%s", out)
	for name, want := range map[string]string{"rows": "12", "encoding": "gb18030 (detected)", "ignored columns": "备注, 处理意见, 联系人",
		"imported": "12", "already imported": "0", "quarantined": "0"} {
		if got := summaryLine(t, out, name); got != want {
			t.Errorf("import summary: %s: %q, want %q", name, got, want)
		}
	}
	if n := countCases(t, st); n != 12 {
		t.Fatalf("%d cases stored at d-320505, want 12", n)
	}

	// Every row's text is the export's, byte for byte (the UTF-8 twin read
	// with encoding/csv alone says what the export means); the open ones
	// are the cases the reconciliation must settle.
	recs, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(twin, []byte("\ufeff")))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 13 || recs[0][0] != "任务号" || recs[0][10] != "发生地址" || recs[0][11] != "问题描述" {
		t.Fatalf("twin: %d records, header %q", len(recs), recs[0])
	}
	open := map[string]string{} // legacy id → case id
	for _, r := range recs[1:] {
		cs, _, err := st.List(store.Query{LegacyID: r[0]})
		if err != nil || len(cs) != 1 {
			t.Fatalf("%s: %d cases, %v", r[0], len(cs), err)
		}
		c := cs[0]
		if c.Description != r[11] || c.GetLocation().GetAddress() != r[10] {
			t.Errorf("%s: description %q address %q, want %q %q", r[0], c.Description, c.GetLocation().GetAddress(), r[11], r[10])
		}
		if workflow.IsOpen(c.State) {
			open[r[0]] = c.Id
		}
	}
	if len(open) < 8 {
		t.Fatalf("only %d of the export's cases are open: %v", len(open), open)
	}
	f.WaitSettled(30 * time.Second)
	owners := fedtest.CatalogueOwners(t, f)
	// The export is a backlog: before the run the guarantee does not hold.
	if p := fedtest.GuaranteeProblem(t, f, "d-320505", "", open, nil, owners); p == "" {
		t.Fatal("every case of the export is already at its owner: nothing to reconcile")
	}

	// The run at the district, through the CLI: it scans every open case.
	code, out, errOut = runCLI(t, "--addr", district, "reconcile")
	if code != 0 {
		t.Fatalf("reconcile: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("reconcile:\n%s", out)
	sum := parseSummary(t, out)
	if sum.runID == "" || sum.node != "d-320505" || sum.scanned != int64(len(open)) || sum.moved == 0 {
		t.Fatalf("run summary %+v, %d open cases", sum, len(open))
	}

	// The moves travel (the city's follow loop hands cases on down): wait
	// until the links are drained and the guarantee holds.
	const bound = 2 * time.Minute
	deadline := time.Now().Add(bound)
	for {
		ok, why := f.Settled()
		p := why
		if ok {
			if p = fedtest.GuaranteeProblem(t, f, "d-320505", sum.runID, open, nil, owners); p == "" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the guarantee does not hold %v after the run: %s (settled %v)", bound, p, ok)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d of 12 cases open, run %+v; the guarantee holds, %v in all", len(open), sum, time.Since(start).Round(time.Millisecond))
}
