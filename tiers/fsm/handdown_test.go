package fsm_test

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/workflow"
)

// importDispatched imports, at the district, a case the old system
// dispatched (and the unit accepted) to unit.
func importDispatched(l *fedLog, legacyID, unit string) string {
	l.tb.Helper()
	at := timestamppb.New(time.UnixMilli(stamp).Add(-24 * time.Hour))
	c := &pb.Case{LegacyId: legacyID, Source: pb.Source_SOURCE_INSPECTOR, Kind: pb.Kind_KIND_EVENT, MajorCode: "05", MinorCode: "01",
		GridCode: "110105001001005", Description: "游商", ReportedAt: at, Version: 1, State: pb.State_STATE_ACCEPTED,
		OwnerUnit: unit, DispatchedAt: at, Deadline: timestamppb.New(at.AsTime().Add(72 * time.Hour)),
		History: []*pb.HistoryEntry{{Action: pb.Action_ACTION_REPORT, Actor: "legacy-import", At: at, ToState: pb.State_STATE_ACCEPTED, Version: 1, Unit: unit}}}
	c.StageDeadline = c.Deadline
	r := l.ok(&pb.Command{RequestId: "imp-" + legacyID, StampedUnixMs: stamp, StampedBy: "node-1",
		Body: &pb.Command_ImportCases{ImportCases: &pb.ImportCases{IdPrefix: "110105", Cases: []*pb.ImportedCase{{Case: c, IdDate: at.AsTime().Format("20060102")}}}}})
	if r.Imported != 1 {
		l.tb.Fatalf("import %s: %+v", legacyID, r)
	}
	return r.CaseIDs[0]
}

// HAND_DOWN (下派) moves a case already with a unit hosted below down to
// that unit's node, as it is; it refuses a unit no node below hosts.
func TestHandDown(t *testing.T) {
	l := newFedLog(t, "d-110105")
	id := importDispatched(l, "OLD-1", "s-squad")
	before := l.get(id)
	down := len(outbox(t, l.s, "s-110105001"))
	l.ok(ownAct("hd-1", id, pb.Action_ACTION_HAND_DOWN, pb.Role_ROLE_DISPATCHER, "its squad is the street's", "", nil))
	c := l.get(id)
	if c.Holder != "s-110105001" || c.HolderEpoch != before.HolderEpoch+1 || c.State != pb.State_STATE_ACCEPTED ||
		c.OwnerUnit != "s-squad" || c.Version != before.Version+1 || !c.Deadline.AsTime().Equal(before.Deadline.AsTime()) {
		t.Fatalf("handed down: holder %s epoch %d state %s unit %s version %d deadline %v", c.Holder, c.HolderEpoch, c.State, c.OwnerUnit, c.Version, c.Deadline.AsTime())
	}
	if h := c.History[len(c.History)-1]; h.Action != pb.Action_ACTION_HAND_DOWN || h.Unit != "s-squad" || h.FromState != h.ToState {
		t.Fatalf("history entry %v", h)
	}
	if got := len(outbox(t, l.s, "s-110105001")); got != down+1 {
		t.Fatalf("%d entries queued down, want 1", got-down)
	}

	// The district's own unit, and a unit nobody hosts: nothing to hand down to.
	for _, unit := range []string{"d-roads", "gone-unit"} {
		id := importDispatched(l, "OLD-"+unit, unit)
		res := l.refuse(ownAct("hd-"+unit, id, pb.Action_ACTION_HAND_DOWN, pb.Role_ROLE_DISPATCHER, "down", "", nil), fsm.ErrNothingBelow)
		if !errors.Is(res.Err, workflow.ErrForbidden) {
			t.Fatalf("%s: %v is not a workflow refusal", unit, res.Err)
		}
	}
}
