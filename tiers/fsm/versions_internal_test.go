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
