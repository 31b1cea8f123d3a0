package fsm_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
)

// FuzzApply feeds arbitrary bytes to Apply as a log entry's data. It must
// never panic (a panic stops every replica on the same entry), always
// answer with a *Result, advance the applied index, and store exactly the
// case it reports.
func FuzzApply(f *testing.F) {
	for _, cmd := range []*pb.Command{
		report("req-1", stamp, "seed"),
		report("", stamp, ""),
		act("req-2", stamp+minute, &pb.CaseAction{CaseId: caseID(1), Action: pb.Action_ACTION_FILE, Role: pb.Role_ROLE_SHIFT_LEADER}),
		act("req-3", stamp+2*minute, &pb.CaseAction{CaseId: caseID(1), Action: pb.Action_ACTION_DISPATCH, Role: pb.Role_ROLE_DISPATCHER, Unit: "roads", DeadlineUnixMs: stamp + 90*minute, TimeLimitMinutes: 88}),
		act("req-4", stamp+3*minute, &pb.CaseAction{CaseId: caseID(1), Action: pb.Action_ACTION_REQUEST_EXTENSION, Role: pb.Role_ROLE_HANDLING_UNIT, ExtensionMinutes: 5}),
		registerNode("node-1"),
		{},
	} {
		f.Add(encode(f, cmd))
	}
	// Key fields past badger's key size limit (refused, not a crash).
	f.Add(encode(f, report(strings.Repeat("9", 70_000), stamp, "huge request id")))
	f.Add(encode(f, registerNode(strings.Repeat("n", 70_000))))
	f.Add([]byte{0xff, 0xff})
	f.Add([]byte("\x52\x05\x0a\x03\x10\x01"))

	// One store per fuzzing process; entries get increasing indexes, so
	// inputs also meet the state earlier inputs left.
	s := openStore(f)
	m := newFSM(f, s)
	var index uint64
	// Report a case the seeds' actions can work on.
	index++
	if r, ok := m.Apply(entry(index, encode(f, report("setup", stamp, "setup")))).(*fsm.Result); !ok || r.Err != nil {
		f.Fatalf("setup report: %v", r)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		index++
		res := m.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data})
		r, ok := res.(*fsm.Result)
		if !ok || r == nil {
			t.Fatalf("apply returned %T %v", res, res)
		}
		if m.AppliedIndex() != index {
			t.Fatalf("applied index %d, want %d", m.AppliedIndex(), index)
		}
		if err := proto.Unmarshal(data, &pb.Command{}); err != nil && !errors.Is(r.Err, fsm.ErrBadCommand) {
			t.Fatalf("undecodable data: err %v, want ErrBadCommand", r.Err)
		}
		if r.Err != nil && (r.Case != nil || r.Replayed) {
			t.Fatalf("refused command returned case %v, replayed %v", r.Case, r.Replayed)
		}
		if r.Case != nil {
			stored, err := s.GetCase(r.Case.Id)
			if err != nil || !proto.Equal(stored, r.Case) {
				t.Fatalf("result case %v, stored %v, %v", r.Case, stored, err)
			}
		}
	})
}
