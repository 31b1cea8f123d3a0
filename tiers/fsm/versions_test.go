package fsm_test

import (
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
)

// An entry whose body this binary does not know was written by a newer
// release: the replica stops rather than refuse it (the newer replicas
// apply it) — and a command with no body at all is still refused.
func TestEntryFromNewerReleaseStopsTheReplica(t *testing.T) {
	f := newFSM(t, openStore(t))
	empty, err := proto.Marshal(&pb.Command{RequestId: "no-body"})
	if err != nil {
		t.Fatal(err)
	}
	res := f.Apply(&raft.Log{Index: 1, Term: 1, Type: raft.LogCommand, Data: empty}).(*fsm.Result)
	if res.Err == nil || !strings.Contains(res.Err.Error(), "has no body") {
		t.Fatalf("a command without a body: %v", res.Err)
	}
	// Field 999 stands for a body type a later release adds.
	newer := protowire.AppendTag(append([]byte(nil), empty...), 999, protowire.BytesType)
	newer = protowire.AppendBytes(newer, []byte{0x0a, 0x01, 'x'})
	defer func() {
		r := recover()
		if r == nil {
			t.Fatal("an entry from a newer release was applied or refused; the replica must stop")
		}
		if msg, _ := r.(string); !strings.Contains(msg, "upgrade this replica") || !strings.Contains(msg, "index 2") {
			t.Fatalf("panic %v does not say which entry and what to do", r)
		}
		if got := f.AppliedIndex(); got != 1 {
			t.Fatalf("applied index %d after the stop, want 1", got)
		}
	}()
	f.Apply(&raft.Log{Index: 2, Term: 1, Type: raft.LogCommand, Data: newer})
}
