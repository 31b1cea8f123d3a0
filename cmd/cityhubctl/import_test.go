package main

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/cityhub/cityhub/config"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
	"github.com/cityhub/cityhub/tiers/store"
)

// sampleDir holds the sample backlog of 虎丘区 (see its README.md).
var sampleDir = filepath.Join("..", "..", "testdata", "city", "legacy")

// districtNode starts a one-replica 虎丘区 (d-320505) node and returns its
// gRPC address and store.
func districtNode(t *testing.T) (string, *store.Store) {
	t.Helper()
	c := testcluster.New(t, 1, func(c *config.Config) {
		c.Node.Tier = config.TierDistrict
		c.Node.Jurisdiction = "320505"
	})
	return c.Members[0].Cfg.GRPC.Addr, c.Replica(0).Node.Store()
}

// copySample copies a sample file into a fresh directory, so its
// quarantine file lands there.
func copySample(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sampleDir, name))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func countCases(t *testing.T, s *store.Store) int {
	t.Helper()
	n := 0
	q := store.Query{PageSize: 500}
	for {
		page, next, err := s.List(q)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page)
		if next == "" {
			return n
		}
		q.PageToken = next
	}
}

// summaryLine finds "name  value" in the table output.
func summaryLine(t *testing.T, out, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\s+(.+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("output lacks %q:\n%s", name, out)
	}
	return strings.TrimSpace(m[1])
}

// quarantined reads a quarantine file: line → field, with each reason.
func quarantined(t *testing.T, path string) (map[string]string, [][]string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(b), "\ufeff"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(recs[0][:4], ",") != "line,legacy_id,field,reason" || recs[0][4] != "reported_at" {
		t.Fatalf("quarantine header %v", recs[0])
	}
	out := map[string]string{}
	for _, r := range recs[1:] {
		if r[3] == "" {
			t.Errorf("line %s without a reason", r[0])
		}
		out[r[0]] = r[2]
	}
	return out, recs
}

// The documented bad rows of the sample files (testdata/city/legacy/README.md).
var (
	sampleCSVQuarantine = map[string]string{"39": "grid_code", "91": "minor", "145": "legacy_id", "204": "reported_at",
		"271": "status", "315": "component_id", "376": "legacy_id"}
	sampleJSONLQuarantine = map[string]string{"19": "lat", "35": "row"}
)

func TestImportSampleEndToEnd(t *testing.T) {
	addr, st := districtNode(t)
	path := copySample(t, "d-320505.csv")
	jpath := copySample(t, "d-320505.jsonl")
	// The quarantine file goes to the current directory, not next to the
	// file imported.
	work := t.TempDir()
	t.Chdir(work)
	qpath := filepath.Join(work, "d-320505.csv.quarantine.csv")

	code, out, errOut := runCLI(t, "--addr", addr, "import", path, "--batch", "150")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for name, want := range map[string]string{"rows": "407", "imported": "400", "already imported": "0", "quarantined": "7 → " + qpath} {
		if got := summaryLine(t, out, name); got != want {
			t.Errorf("%s: %q, want %q\n%s", name, got, want, out)
		}
	}
	if !strings.Contains(out, "line 376 HQCG-2025-01556: legacy_id: duplicate") {
		t.Errorf("output does not list the duplicate:\n%s", out)
	}
	if n := countCases(t, st); n != 400 {
		t.Fatalf("%d cases stored, want 400", n)
	}
	got, recs := quarantined(t, qpath)
	if len(got) != len(sampleCSVQuarantine) || len(recs) != 8 {
		t.Fatalf("quarantine %v, want %v", got, sampleCSVQuarantine)
	}
	for line, field := range sampleCSVQuarantine {
		if got[line] != field {
			t.Errorf("quarantine line %s: field %q, want %q", line, got[line], field)
		}
	}
	// The quarantine file keeps the row: the status row's status is there.
	for _, r := range recs {
		if r[0] == "271" && (r[1] != "HQCG-2025-00843" || !strings.Contains(strings.Join(r, ","), "已转办")) {
			t.Errorf("quarantined row 271: %v", r)
		}
	}
	first, _ := os.ReadFile(qpath)

	// Again, in other batches (new request ids: the legacy ids decide) and
	// in the same ones (a replay): nothing more, the same quarantine.
	for _, args := range [][]string{{"--batch", "500"}, {"--batch", "150"}} {
		code, out, errOut = runCLI(t, append([]string{"--addr", addr, "import", path}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
		if summaryLine(t, out, "imported") != "0" || summaryLine(t, out, "already imported") != "400" || !strings.HasPrefix(summaryLine(t, out, "quarantined"), "7 ") {
			t.Errorf("%v: again:\n%s", args, out)
		}
		if again, _ := os.ReadFile(qpath); string(again) != string(first) {
			t.Errorf("%v: the quarantine file changed", args)
		}
		if n := countCases(t, st); n != 400 {
			t.Fatalf("%v: %d cases stored after importing again", args, n)
		}
	}

	// --strict: the same summary, exit 1.
	code, out, errOut = runCLI(t, "--addr", addr, "import", path, "--strict")
	if code != 1 || summaryLine(t, out, "already imported") != "400" || !strings.Contains(errOut, "7 of 407 rows quarantined (--strict)") {
		t.Errorf("--strict: exit %d\n%s%s", code, out, errOut)
	}

	// The JSON-lines export, with JSON output.
	code, out, errOut = runCLI(t, "--addr", addr, "-o", "json", "import", jpath, "--actor", "数据迁移组")
	if code != 0 {
		t.Fatalf("jsonl: exit %d\n%s%s", code, out, errOut)
	}
	var sum struct {
		Rows, Imported, Already, Quarantined int
		Rejected                             []struct {
			Line  int32
			Field string
		} `json:"quarantined_rows"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("json output: %v\n%s", err, out)
	}
	if sum.Rows != 50 || sum.Imported != 48 || sum.Already != 0 || sum.Quarantined != 2 || len(sum.Rejected) != 2 {
		t.Fatalf("jsonl summary %+v", sum)
	}
	if _, err := os.Stat(jpath + ".quarantine.csv"); !os.IsNotExist(err) {
		t.Errorf("a quarantine file next to the input: %v", err)
	}
	got, _ = quarantined(t, filepath.Join(work, "d-320505.jsonl.quarantine.csv"))
	if len(got) != 2 || got["19"] != "lat" || got["35"] != "row" {
		t.Fatalf("jsonl quarantine %v, want %v", got, sampleJSONLQuarantine)
	}
	cs, _, err := st.List(store.Query{LegacyID: "RX12319-000108", WithHistory: true})
	if err != nil || len(cs) != 1 || cs[0].History[0].Actor != "数据迁移组" || cs[0].State != pb.State_STATE_CLOSED {
		t.Fatalf("imported jsonl case: %v %v", cs, err)
	}
}

func TestImportDryRunAndQuarantineFile(t *testing.T) {
	addr, st := districtNode(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "old.txt")
	text := "legacy_id,reported_at,source,kind,major,minor,grid_code,description,status\n" +
		"Q1,2021-03-05 12:00:00,app,事件,01,02,320505001001003,垃圾,待派遣\n" +
		"Q2,2021-03-05 12:00:00,app,事件,01,02,320505001001003,垃圾,已转办\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	qpath := filepath.Join(dir, "bad.csv")
	code, out, errOut := runCLI(t, "--addr", addr, "import", path, "--format", "csv", "--quarantine", qpath, "--dry-run")
	if code != 0 || !strings.Contains(out, "dry run") || summaryLine(t, out, "imported") != "0" || !strings.HasPrefix(summaryLine(t, out, "quarantined"), "1 ") {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, errOut)
	}
	if n := countCases(t, st); n != 0 {
		t.Fatalf("a dry run wrote %d cases", n)
	}
	if got, _ := quarantined(t, qpath); got["3"] != "status" {
		t.Fatalf("dry-run quarantine %v", got)
	}

	// Corrected, the file imports cleanly, and the stale quarantine file
	// goes; a file that is not a quarantine file is never removed.
	if err := os.WriteFile(path, []byte(strings.Replace(text, "已转办", "已立案", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI(t, "--addr", addr, "import", path, "--format", "csv", "--quarantine", qpath)
	if code != 0 || summaryLine(t, out, "imported") != "2" || summaryLine(t, out, "quarantined") != "0" {
		t.Fatalf("corrected: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(qpath); !os.IsNotExist(err) {
		t.Errorf("stale quarantine file left: %v", err)
	}
	other := filepath.Join(dir, "notes.csv")
	if err := os.WriteFile(other, []byte("a,b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut = runCLI(t, "--addr", addr, "import", path, "--format", "csv", "--quarantine", other); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("a file that is not a quarantine file was removed: %v", err)
	}
}

func TestImportErrors(t *testing.T) {
	dir := t.TempDir()
	unknownCol := filepath.Join(dir, "x.csv")
	if err := os.WriteFile(unknownCol, []byte("legacy_id,reported_at,colour\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"import"}, 2, "exactly one FILE"},
		{[]string{"import", unknownCol, "--batch", "0"}, 2, "--batch 0"},
		{[]string{"import", unknownCol, "--batch", "1001"}, 2, "--batch 1001"},
		{[]string{"import", unknownCol, "--format", "xml"}, 2, "--format"},
		{[]string{"import", filepath.Join(dir, "x.xlsx")}, 2, "--format csv|jsonl"},
		{[]string{"import", filepath.Join(dir, "missing.csv")}, 1, "no such file"},
		{[]string{"import", unknownCol}, 1, `column "source": required column missing`},
		{[]string{"import", unknownCol, "--encoding", "latin1"}, 2, `--encoding: unknown encoding "latin1"`},
		{[]string{"import", unknownCol, "--map", "colour=color"}, 2, `--map: mapping colour=color: "color" is not a column`},
		{[]string{"import", unknownCol, "--map", "colour"}, 2, `want OLD=column`},
		{[]string{"import", unknownCol, "--map-file", filepath.Join(dir, "none.yaml")}, 2, `--map-file: open`},
		{[]string{"import", unknownCol, "--quarantine", unknownCol}, 2, `is the file to import`},
	} {
		code, _, errOut := runCLI(t, append([]string{"--addr", "127.0.0.1:1"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
}

func TestImportBatches(t *testing.T) {
	var rows []*pb.LegacyRow
	for i := 0; i < 10; i++ {
		rows = append(rows, &pb.LegacyRow{Line: int32(i + 2), LegacyId: "R" + strings.Repeat("x", i), Description: "d"})
	}
	rows[6].Description = strings.Repeat("长", 400) // 1,200 bytes
	sizes := func(bs [][]*pb.LegacyRow) []int {
		var out []int
		for _, b := range bs {
			out = append(out, len(b))
		}
		return out
	}
	// By count: 4, 4, 2.
	if got := sizes(splitBatches(rows, 4, 1<<20)); len(got) != 3 || got[0] != 4 || got[1] != 4 || got[2] != 2 {
		t.Errorf("by count: %v", got)
	}
	// By size: the long row goes alone, the rest by count.
	if got := sizes(splitBatches(rows, 4, 1000)); len(got) != 4 || got[0] != 4 || got[1] != 2 || got[2] != 1 || got[3] != 3 {
		t.Errorf("by size: %v", got)
	}
	// Request ids name the content: the same rows (at other lines) give the
	// same id, another actor or other values another.
	moved := make([]*pb.LegacyRow, 3)
	for i, r := range rows[:3] {
		c := proto.Clone(r).(*pb.LegacyRow)
		c.Line += 100
		moved[i] = c
	}
	id := importRequestID("a", rows[:3])
	if !regexp.MustCompile(`^import/[0-9a-f]{64}$`).MatchString(id) || importRequestID("a", moved) != id ||
		importRequestID("b", rows[:3]) == id || importRequestID("a", rows[1:4]) == id {
		t.Errorf("request ids: %s", id)
	}
}
