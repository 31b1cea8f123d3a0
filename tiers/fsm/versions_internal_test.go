package fsm

import (
	"testing"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// A new Command body without a registry row (and so a log version) would
// be proposed to replicas that cannot apply it.
func TestEveryCommandHasAVersion(t *testing.T) {
	fields := bodyOneof.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		ct := byKind[Kind(fd.Number())]
		if ct == nil {
			t.Errorf("command body %s (%d) has no registry row", fd.Name(), fd.Number())
			continue
		}
		if ct.since < 1 || ct.since > LogVersion {
			t.Errorf("command body %s has log version %d, outside 1..LogVersion (%d)", fd.Name(), ct.since, LogVersion)
		}
		if got := RequiredVersion(sampleCommand(fd)); got != ct.since {
			t.Errorf("RequiredVersion(%s) = %d, want %d", fd.Name(), got, ct.since)
		}
	}
	if got := RequiredVersion(&pb.Command{Body: &pb.Command_Report{Report: &pb.ReportCase{}}}); got != 1 {
		t.Errorf("RequiredVersion(report) = %d", got)
	}
	if got := RequiredVersion(&pb.Command{}); got != 1 {
		t.Errorf("RequiredVersion(no body) = %d", got)
	}
}

// Fields added to deliveries and repairs for restores need version 2
// when set: a version 1 replica would apply the entry without them.
func TestRestoreFieldsNeedVersion2(t *testing.T) {
	for _, tc := range []struct {
		name string
		cmd  *pb.Command
		want uint32
	}{
		{"plain delivery", &pb.Command{Body: &pb.Command_Deliver{Deliver: &pb.DeliverEntries{From: "city", Floor: 3}}}, 1},
		{"delivery of a restored sender", &pb.Command{Body: &pb.Command_Deliver{Deliver: &pb.DeliverEntries{From: "city", Incarnation: 9}}}, 2},
		{"advance", &pb.Command{Body: &pb.Command_Deliver{Deliver: &pb.DeliverEntries{From: "city", Floor: 3, Advance: true}}}, 2},
		{"plain repair", &pb.Command{Body: &pb.Command_Repair{Repair: &pb.RepairCases{From: "city"}}}, 1},
		{"caught up", &pb.Command{Body: &pb.Command_Repair{Repair: &pb.RepairCases{From: "city", CaughtUp: true}}}, 2},
	} {
		if got := RequiredVersion(tc.cmd); got != tc.want {
			t.Errorf("%s: RequiredVersion = %d, want %d", tc.name, got, tc.want)
		}
	}
}
