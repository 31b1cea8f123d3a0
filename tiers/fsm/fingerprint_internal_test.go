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
