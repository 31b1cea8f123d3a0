package legacy_test

import (
	"bytes"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/legacy"
)

func TestQuarantineRoundTrip(t *testing.T) {
	a := goodRow()
	a.Line, a.Description = 9, "多行\n描述, 带\"引号\""
	b := goodRow()
	b.Line, b.LegacyId = 4, ""
	bad := []legacy.Bad{
		{Row: a, Err: &pb.RowError{Line: 9, LegacyId: a.LegacyId, Field: "status", Reason: "unknown status"}},
		{Row: b, Err: &pb.RowError{Line: 4, Field: "legacy_id", Reason: "required"}},
		{Err: &pb.RowError{Line: 6, Field: "row", Reason: "invalid JSON"}}, // nothing could be read
	}
	var buf bytes.Buffer
	if err := legacy.WriteQuarantine(&buf, bad); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	if !strings.HasPrefix(text, "\ufeffline,legacy_id,field,reason,reported_at,source,") || !legacy.IsQuarantine(strings.NewReader(text)) {
		t.Fatalf("header: %q", text[:80])
	}
	// Sorted by line; the original values follow the reason.
	recs := strings.Split(text, "\n")
	if !strings.HasPrefix(recs[1], "4,,legacy_id,required,2021-03-04 09:30:00,监督员,部件,01,01,") ||
		!strings.HasPrefix(recs[2], "6,,row,invalid JSON,,,") || !strings.HasPrefix(recs[3], "9,HQCG-2021-00012,status,unknown status,") {
		t.Fatalf("quarantine file:\n%s", text)
	}
	// It reads back as an export (the line, field and reason are ignored):
	// corrected, it can be imported as it stands.
	f, err := legacy.Parse(strings.NewReader(text), legacy.FormatCSV)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Rows) != 3 || len(f.Bad) != 0 {
		t.Fatalf("read back: %v %v", f.Rows, f.Bad)
	}
	a.Line, b.Line = f.Rows[2].Line, f.Rows[0].Line
	if !proto.Equal(f.Rows[0], b) || !proto.Equal(f.Rows[2], a) || f.Rows[1].LegacyId != "" || f.Rows[1].Status != "" {
		t.Fatalf("read back:\n%v\n%v", f.Rows, []*pb.LegacyRow{b, a})
	}
	for _, other := range []string{"", "legacy_id,reported_at\n", "line,legacy_id,field\n"} {
		if legacy.IsQuarantine(strings.NewReader(other)) {
			t.Errorf("%q taken for a quarantine file", other)
		}
	}
}
