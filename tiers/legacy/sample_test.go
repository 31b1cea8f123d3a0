package legacy_test

import (
	"os"
	"path/filepath"
	"testing"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/legacy"
)

// sampleDir holds the sample backlog of 虎丘区 (see its README.md).
var sampleDir = filepath.Join("..", "..", "testdata", "city", "legacy")

type badLine struct {
	line     int32
	legacyID string
	field    string
}

// The bad rows documented in testdata/city/legacy/README.md.
var (
	sampleCSVBad = []badLine{
		{39, "HQCG-2021-00165", "grid_code"},
		{91, "HQCG-2022-00713", "minor"},
		{145, "", "legacy_id"},
		{204, "HQCG-2024-01023", "reported_at"},
		{271, "HQCG-2025-00843", "status"},
		{315, "HQCG-2025-01769", "component_id"},
		{376, "HQCG-2025-01556", "legacy_id"},
	}
	sampleJSONLBad = []badLine{
		{19, "RX12319-000202", "lat"},
		{35, "", "row"},
	}
)

// checkSample parses and validates a sample file against the sample city
// and returns the good cases.
func checkSample(t *testing.T, name string, rows, parseBad int, want []badLine) []*pb.ImportedCase {
	t.Helper()
	fh, err := os.Open(filepath.Join(sampleDir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	format, err := legacy.FormatOf(name)
	if err != nil {
		t.Fatal(err)
	}
	f, err := legacy.Parse(fh, format)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Rows) != rows || len(f.Bad) != parseBad {
		t.Fatalf("%s: %d rows, %d unreadable lines (%v); want %d and %d", name, len(f.Rows), len(f.Bad), f.Bad, rows, parseBad)
	}
	cases, _, rejected := validator().Validate(f.Rows)
	var got []*pb.RowError
	for _, b := range f.Bad {
		got = append(got, b.Err)
	}
	got = append(got, rejected...)
	if len(got) != len(want) {
		t.Fatalf("%s: %d bad rows, want %d: %v", name, len(got), len(want), got)
	}
	byLine := map[int32]*pb.RowError{}
	for _, e := range got {
		byLine[e.Line] = e
	}
	for _, w := range want {
		e := byLine[w.line]
		if e == nil || e.Field != w.field || (w.legacyID != "" && e.LegacyId != w.legacyID) {
			t.Errorf("%s line %d: got %v, want %s naming %s", name, w.line, e, w.legacyID, w.field)
		}
	}
	if len(cases) != rows-len(rejected) {
		t.Fatalf("%s: %d cases", name, len(cases))
	}
	return cases
}

func TestSampleBacklog(t *testing.T) {
	cases := checkSample(t, "d-320505.csv", 407, 0, sampleCSVBad)
	if len(cases) != 400 {
		t.Fatalf("%d good rows, want 400", len(cases))
	}
	// It looks like the backlog the issue describes: mostly filed,
	// dispatched or in work, some closed; components and events; units of
	// the district, of the city, and some that no longer exist.
	states, classes, units := map[pb.State]int{}, map[string]int{}, map[string]int{}
	for _, ic := range cases {
		c := ic.Case
		states[c.State]++
		classes[c.Kind.String()+" "+c.MajorCode+c.MinorCode]++
		units[c.OwnerUnit]++
	}
	open := states[pb.State_STATE_FILED] + states[pb.State_STATE_DISPATCHED] + states[pb.State_STATE_ACCEPTED]
	if open < len(cases)/2 || states[pb.State_STATE_CLOSED] < 20 || states[pb.State_STATE_SUSPENDED] == 0 || len(states) < 8 {
		t.Errorf("states %v", states)
	}
	for _, cl := range []string{"KIND_COMPONENT 0101", "KIND_COMPONENT 0113", "KIND_COMPONENT 0118", "KIND_EVENT 0102", "KIND_EVENT 0401", "KIND_EVENT 0501"} {
		if classes[cl] < 10 {
			t.Errorf("class %s: %d cases (%v)", cl, classes[cl], classes)
		}
	}
	for _, u := range []string{"320505-roads", "320505-sanitation", "320505-enforcement", "city-water", "city-municipal", "320505-old-construction", "320505001-squad"} {
		if units[u] == 0 {
			t.Errorf("no case owned by %s (%v)", u, units)
		}
	}
}

func TestSampleJSONLines(t *testing.T) {
	if cases := checkSample(t, "d-320505.jsonl", 49, 1, sampleJSONLBad); len(cases) != 48 {
		t.Fatalf("%d good rows, want 48", len(cases))
	}
}
