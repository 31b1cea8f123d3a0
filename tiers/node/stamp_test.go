package node

import (
	"bytes"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
)

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

// The leader stamps a report's fingerprint, last, over whatever a
// forwarding replica put there: the one Apply would compute.
func TestStampSetsTheReportsFingerprint(t *testing.T) {
	n := &Node{cfg: Config{ID: "n1", Jurisdiction: "110105", Location: time.UTC, Clock: fixedClock{time.UnixMilli(1_765_000_000_000)}}}
	cmd := &pb.Command{RequestId: "r1", Fingerprint: []byte("from a forwarding replica"),
		Body: &pb.Command_Report{Report: &pb.ReportCase{Case: &pb.Case{Description: "暴露垃圾", GridCode: "110105001001001"}}}}
	n.stamp(cmd, nil)
	unstamped := proto.Clone(cmd).(*pb.Command)
	unstamped.Fingerprint = nil
	fsm.StampFingerprint(unstamped)
	if len(cmd.Fingerprint) != 32 || !bytes.Equal(cmd.Fingerprint, unstamped.Fingerprint) {
		t.Fatalf("stamped %x, want %x", cmd.Fingerprint, unstamped.Fingerprint)
	}
	if cmd.GetReport().IdPrefix != "110105" || cmd.GetReport().IdDate == "" {
		t.Fatalf("report not stamped: %v", cmd.GetReport())
	}
}
