package api

import (
	"errors"
	"testing"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/workflow"
)

func TestActToCommandTransferUp(t *testing.T) {
	const now = int64(1_780_000_000_000)
	req := func(note string) *pb.ActRequest {
		return &pb.ActRequest{CaseId: "320582-20261122-000001", RequestId: "up-1", Action: pb.Action_ACTION_TRANSFER_UP,
			Actor: "lead-1", Role: pb.Role_ROLE_SHIFT_LEADER, Note: note, Attachments: []string{"map.png"}, ExpectedVersion: 4,
			// Dispatch and extension fields mean nothing to a transfer up.
			Unit: "u", UnitTier: pb.Tier_TIER_CITY, TimeLimitMinutes: 60, ExtensionMinutes: 30}
	}
	a, err := actToCommand(req("city trunk road"), now)
	if err != nil {
		t.Fatal(err)
	}
	if a.Action != pb.Action_ACTION_TRANSFER_UP || a.Note != "city trunk road" || a.Actor != "lead-1" ||
		a.Role != pb.Role_ROLE_SHIFT_LEADER || a.ExpectedVersion != 4 || len(a.Attachments) != 1 ||
		a.Unit != "" || a.UnitTier != 0 || a.TimeLimitMinutes != 0 || a.DeadlineUnixMs != 0 || a.ExtensionMinutes != 0 {
		t.Errorf("command %v", a)
	}
	for _, note := range []string{"", "   ", "\n\t"} {
		_, err := actToCommand(req(note), now)
		var fe *workflow.FieldError
		if !errors.As(err, &fe) || fe.Field != "note" || !errors.Is(err, ErrInvalid) {
			t.Errorf("note %q: got %v, want an invalid note", note, err)
		}
	}
}
