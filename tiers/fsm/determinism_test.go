package fsm_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/hashicorp/raft"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/workflow"
)

// randomLog builds n seeded, plausible log entries: reports and workflow
// actions (many of them refused), retries, node registrations and
// configuration entries.
func randomLog(t *testing.T, seed uint64, n int) []*raft.Log {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	actions := []pb.Action{
		pb.Action_ACTION_VERIFY, pb.Action_ACTION_FILE, pb.Action_ACTION_REJECT, pb.Action_ACTION_SELF_HANDLE,
		pb.Action_ACTION_DISPATCH, pb.Action_ACTION_ACCEPT, pb.Action_ACTION_REQUEST_RETURN, pb.Action_ACTION_APPROVE_RETURN,
		pb.Action_ACTION_DENY_RETURN, pb.Action_ACTION_HANDLE, pb.Action_ACTION_CHECK_PASS, pb.Action_ACTION_CHECK_FAIL,
		pb.Action_ACTION_CLOSE, pb.Action_ACTION_REQUEST_EXTENSION, pb.Action_ACTION_APPROVE_EXTENSION,
		pb.Action_ACTION_DENY_EXTENSION, pb.Action_ACTION_REQUEST_SUSPEND, pb.Action_ACTION_APPROVE_SUSPEND,
		pb.Action_ACTION_DENY_SUSPEND, pb.Action_ACTION_RESUME, pb.Action_ACTION_VOID, pb.Action_ACTION_SUPERVISE,
	}
	units := []string{"roads", "parks", "water"}
	var (
		logs []*raft.Log
		cmds []*pb.Command
	)
	reports := 0
	for i := 1; i <= n; i++ {
		at := stamp + int64(i)*minute
		idx := uint64(i)
		var cmd *pb.Command
		switch p := rng.IntN(100); {
		case p < 3:
			logs = append(logs, &raft.Log{Index: idx, Term: entry(idx, nil).Term, Type: raft.LogConfiguration})
			continue
		case p < 5:
			cmd = registerNode(fmt.Sprintf("node-%d", rng.IntN(3)))
		case p < 10 && len(cmds) > 0:
			cmd = cmds[rng.IntN(len(cmds))] // a retry, possibly much later
		case p < 25 || reports == 0:
			reports++
			cmd = report(fmt.Sprintf("rep-%d", i), at, fmt.Sprintf("case %d", i))
			cmd.GetReport().Case.Source = pb.Source(1 + rng.IntN(7))
			cmd.GetReport().Case.GridCode = fmt.Sprintf("11010500100100%d", rng.IntN(10))
		default:
			a := actions[rng.IntN(len(actions))]
			roles := workflow.Roles(a)
			ca := &pb.CaseAction{
				CaseId:           caseID(1 + rng.IntN(reports)),
				Action:           a,
				Role:             roles[rng.IntN(len(roles))],
				Note:             "because",
				Unit:             units[rng.IntN(len(units))],
				ExtensionMinutes: int64(rng.IntN(600)),
			}
			if a == pb.Action_ACTION_DISPATCH || (a == pb.Action_ACTION_CHECK_FAIL && rng.IntN(2) == 0) {
				ca.TimeLimitMinutes = int64(60 + rng.IntN(600))
				ca.DeadlineUnixMs = at + ca.TimeLimitMinutes*minute
			}
			cmd = act(fmt.Sprintf("act-%d", i), at, ca)
		}
		cmds = append(cmds, cmd)
		logs = append(logs, entry(idx, encode(t, cmd)))
	}
	return logs
}

func TestDeterministicApply(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			logs := randomLog(t, seed, 600)
			s1, s2 := openStore(t), openStore(t)
			f1, f2 := newFSM(t, s1), newFSM(t, s2)
			// One replica gets the log in one batch, the other in batches
			// of random sizes and single entries.
			r1 := f1.ApplyBatch(logs)
			rng := rand.New(rand.NewPCG(seed, 99))
			var r2 []any
			for start := 0; start < len(logs); {
				end := min(start+1+rng.IntN(50), len(logs))
				if end-start == 1 {
					r2 = append(r2, f2.Apply(logs[start]))
				} else {
					r2 = append(r2, f2.ApplyBatch(logs[start:end])...)
				}
				start = end
			}
			snap1, snap2 := snapshotBytes(t, s1), snapshotBytes(t, s2)
			if !bytes.Equal(snap1, snap2) {
				sameRecords(t, "replicas", records(t, s1, false), records(t, s2, false))
				t.Fatal("snapshots differ")
			}
			// The fixture exercised both outcomes and moved cases around.
			applied, refused := 0, 0
			for i := range r1 {
				if r1[i] == nil {
					if r2[i] != nil {
						t.Fatalf("entry %d: %v vs nil", i+1, r2[i])
					}
					continue
				}
				a, b := result(t, r1[i]), result(t, r2[i])
				if fmt.Sprint(a.Err) != fmt.Sprint(b.Err) || a.Replayed != b.Replayed || a.Case.GetVersion() != b.Case.GetVersion() {
					t.Fatalf("entry %d: results differ: %+v vs %+v", i+1, a, b)
				}
				if a.Err == nil {
					applied++
				} else {
					refused++
				}
			}
			counts, err := s1.CountByState()
			if err != nil {
				t.Fatal(err)
			}
			states := 0
			for _, n := range counts {
				if n > 0 {
					states++
				}
			}
			if applied < 150 || refused < 100 || states < 5 {
				t.Fatalf("weak fixture: %d applied, %d refused, cases in %d states (%v)", applied, refused, states, counts)
			}
			checkApplied(t, f1, s1, uint64(len(logs)), logs[len(logs)-1].Term)
			checkApplied(t, f2, s2, uint64(len(logs)), logs[len(logs)-1].Term)
		})
	}
}
