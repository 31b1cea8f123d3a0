package node

import (
	"errors"
	"testing"

	"github.com/hashicorp/raft"
)

func TestVersionGate(t *testing.T) {
	members := []raft.Server{
		{ID: "a", Suffrage: raft.Voter},
		{ID: "b", Suffrage: raft.Voter},
		{ID: "c", Suffrage: raft.Nonvoter},
	}
	for _, tc := range []struct {
		name     string
		need     uint32
		versions map[string]uint32
		refused  string // the member named in the refusal; "" passes
	}{
		{"base version passes unregistered members", 1, map[string]uint32{}, ""},
		{"every member new enough", 2, map[string]uint32{"a": 2, "b": 3, "c": 2}, ""},
		{"an older voter refuses", 2, map[string]uint32{"a": 2, "b": 1, "c": 2}, "b"},
		{"an older release without a version is version 1", 2, map[string]uint32{"a": 2, "b": 2, "c": 0}, "c"},
		{"an unregistered member refuses", 2, map[string]uint32{"a": 2, "b": 2}, "c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := gate(tc.need, members, tc.versions)
			if tc.refused == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrUpgradeInProgress) {
				t.Fatalf("err = %v, want ErrUpgradeInProgress", err)
			}
			if want := tc.refused + " applies"; !contains(err.Error(), want) {
				t.Fatalf("err %q does not name %s", err, tc.refused)
			}
		})
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
