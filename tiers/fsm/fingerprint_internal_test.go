package fsm

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// TestReportFingerprintLeavesTheCommandAlone: a report's fingerprint
// leaves out what the leader stamped, sees what the client asked for, and
// leaves the command as it found it (it blanks the stamped fields in place
// while it hashes).
func TestReportFingerprintLeavesTheCommandAlone(t *testing.T) {
	mk := func() *pb.Command {
		return &pb.Command{RequestId: "r1", Body: &pb.Command_Report{Report: &pb.ReportCase{
			IdPrefix: "320582", IdDate: "20261203", StageDeadlineUnixMs: 42, Ownership: &pb.Ownership{Unit: "u"},
			Case: &pb.Case{Description: "暴露垃圾", GridCode: "320582110152102", RecurrenceOf: "320582-20261101-000001"},
		}}}
	}
	cmd := mk()
	fp := fingerprint(cmd)
	if !proto.Equal(cmd, mk()) {
		t.Fatalf("fingerprint changed the command: %v", cmd)
	}
	restamped := mk()
	r := restamped.GetReport()
	r.IdPrefix, r.IdDate, r.StageDeadlineUnixMs, r.Ownership, r.Case.RecurrenceOf = "320583", "20261204", 7, nil, ""
	if !bytes.Equal(fingerprint(restamped), fp) {
		t.Fatal("what the leader stamps changed the fingerprint")
	}
	other := mk()
	other.GetReport().Case.Description = "道路破损"
	if bytes.Equal(fingerprint(other), fp) {
		t.Fatal("another description has the same fingerprint")
	}
}

// TestStampedFingerprintIsWhatApplyComputes: the leader stamps a report's
// fingerprint (and each report's of a batch) as Apply would compute it;
// Apply takes a stamped one of the right length for a report only.
func TestStampedFingerprintIsWhatApplyComputes(t *testing.T) {
	rep := func(desc string) *pb.ReportCase {
		return &pb.ReportCase{IdPrefix: "320582", IdDate: "20261203", StageDeadlineUnixMs: 42,
			Case: &pb.Case{Description: desc, GridCode: "320582110152102"}}
	}
	cmd := &pb.Command{RequestId: "r1", StampedUnixMs: 5, Body: &pb.Command_Report{Report: rep("暴露垃圾")}}
	want := fingerprint(proto.Clone(cmd).(*pb.Command))
	StampFingerprint(cmd)
	if !bytes.Equal(cmd.Fingerprint, want) {
		t.Fatalf("stamped %x, Apply computes %x", cmd.Fingerprint, want)
	}
	if got := byKind[kindReport].fingerprintOf(cmd); !bytes.Equal(got, want) {
		t.Fatalf("fingerprintOf a stamped report: %x", got)
	}

	batch := &pb.Command{StampedUnixMs: 5, Body: &pb.Command_ReportBatch{ReportBatch: &pb.ReportBatch{Items: []*pb.ReportBatchItem{
		{RequestId: "b1", Report: rep("道路破损")}, {RequestId: "b2", Report: rep("井盖缺失")}, {RequestId: "b3", Fingerprint: []byte("forged")},
	}}}}
	StampFingerprint(batch)
	items := batch.GetReportBatch().Items
	for _, it := range items[:2] {
		alone := &pb.Command{RequestId: it.RequestId, StampedUnixMs: 5, Body: &pb.Command_Report{Report: it.Report}}
		if w := fingerprint(alone); !bytes.Equal(it.Fingerprint, w) {
			t.Errorf("%s: stamped %x, alone %x", it.RequestId, it.Fingerprint, w)
		}
	}
	if bytes.Equal(items[0].Fingerprint, items[1].Fingerprint) {
		t.Error("two reports, one fingerprint")
	}
	if items[2].Fingerprint != nil {
		t.Errorf("an item without a report keeps a fingerprint: %q", items[2].Fingerprint)
	}

	// Not a report's, or not a whole hash: computed.
	odd := proto.Clone(cmd).(*pb.Command)
	odd.Fingerprint = []byte("short")
	if got := byKind[kindReport].fingerprintOf(odd); !bytes.Equal(got, want) {
		t.Errorf("a malformed stamped fingerprint was taken: %x", got)
	}
	act := &pb.Command{RequestId: "a1", Fingerprint: want, Body: &pb.Command_Act{Act: &pb.CaseAction{CaseId: "c1", Note: "n"}}}
	if got := byKind[Kind(11)].fingerprintOf(act); bytes.Equal(got, want) {
		t.Error("an action took a stamped fingerprint")
	}
}
