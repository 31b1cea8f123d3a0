package fsm

import (
	"testing"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// A new Command body without a log version would be proposed to replicas
// that cannot apply it.
func TestEveryCommandHasAVersion(t *testing.T) {
	fields := bodyOneof.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		v, ok := commandVersions[fd.Number()]
		if !ok {
			t.Errorf("command body %s (%d) has no log version in commandVersions", fd.Name(), fd.Number())
			continue
		}
		if v < 1 || v > LogVersion {
			t.Errorf("command body %s has log version %d, outside 1..LogVersion (%d)", fd.Name(), v, LogVersion)
		}
	}
	if len(commandVersions) != fields.Len() {
		t.Errorf("commandVersions has %d entries for %d bodies", len(commandVersions), fields.Len())
	}
	if got := RequiredVersion(&pb.Command{Body: &pb.Command_Report{Report: &pb.ReportCase{}}}); got != 1 {
		t.Errorf("RequiredVersion(report) = %d", got)
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
