package api

import (
	"errors"
	"regexp"
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

// The request id's character check is a loop now: it must accept and
// refuse exactly what the pattern it replaced did, every byte value in
// every position.
func TestRequestIDCharsMatchesItsPattern(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z0-9._:/-]+$`)
	for b := 0; b < 256; b++ {
		for _, id := range []string{string(rune(b)), "a" + string([]byte{byte(b)}), string([]byte{byte(b)}) + "-1", "x" + string([]byte{byte(b)}) + "y"} {
			if got, want := requestIDChars(id), re.MatchString(id); got != want {
				t.Errorf("%q: %v, the pattern says %v", id, got, want)
			}
		}
	}
	for _, id := range []string{"550e8400-e29b-41d4-a716-446655440000", "app:ios/1.2_3", "请求", "a b", "a\x00"} {
		if got, want := requestIDChars(id), re.MatchString(id); got != want {
			t.Errorf("%q: %v, the pattern says %v", id, got, want)
		}
	}
	if err := checkRequestID(""); err == nil {
		t.Error("an empty request id passed")
	}
}
