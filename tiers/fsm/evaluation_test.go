package fsm_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/evaluation"
)

// TestEvaluationThroughTheStateMachineMatchesARecount generates a month of
// cases (November 2026) through the state machine itself — reports by
// several inspectors in several grids, dispatches to several units, reworks,
// extensions, overdue marks, closures on time and late — and checks that
// the counters the state machine kept answer every report exactly as a
// direct recount from the stored case histories.
func TestEvaluationThroughTheStateMachineMatchesARecount(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	const offset = 8 * 3600
	cst := time.FixedZone("CST", offset)
	rng := rand.New(rand.NewPCG(7, 11))
	idx := uint64(0)
	apply := func(cmd *pb.Command) *pb.Case {
		t.Helper()
		idx++
		cmd.LocalOffsetS = offset
		r := result(t, f.Apply(entry(idx, encode(t, cmd))))
		if r.Err != nil {
			t.Fatalf("apply %d: %v", idx, r.Err)
		}
		return r.Case
	}
	units := []string{"sanitation", "parks", "roads", "water"}
	grids := []string{"110105001001001", "110105001002003", "110105002001004", "110105003001002"}
	start := time.Date(2026, 11, 1, 8, 0, 0, 0, cst).UnixMilli()
	const hour = int64(time.Hour / time.Millisecond)
	for i := 0; i < 400; i++ {
		at := start + rng.Int64N(29*24*hour)
		rep := report(fmt.Sprintf("ev-%d", i), at, "x")
		rep.GetReport().Actor = fmt.Sprintf("insp-%d", rng.IntN(5))
		rep.GetReport().Case.GridCode = grids[rng.IntN(len(grids))]
		rep.GetReport().IdDate = time.UnixMilli(at).In(cst).Format("20060102")
		c := apply(rep)
		id := c.Id
		step := func(a pb.Action, role pb.Role, mod func(*pb.CaseAction)) *pb.Case {
			at += rng.Int64N(6*hour) + 1
			ca := &pb.CaseAction{CaseId: id, Action: a, Role: role, Note: "n"}
			if mod != nil {
				mod(ca)
			}
			return apply(act(fmt.Sprintf("ev-%d-%d", i, idx), at, ca))
		}
		if rng.IntN(10) == 0 {
			step(pb.Action_ACTION_SELF_HANDLE, pb.Role_ROLE_INSPECTOR, nil)
			continue
		}
		step(pb.Action_ACTION_FILE, pb.Role_ROLE_SHIFT_LEADER, nil)
		limit := (4 + rng.Int64N(20)) * hour
		unit := units[rng.IntN(len(units))]
		c = step(pb.Action_ACTION_DISPATCH, pb.Role_ROLE_DISPATCHER, func(a *pb.CaseAction) { a.Unit, a.DeadlineUnixMs = unit, at+limit })
		step(pb.Action_ACTION_ACCEPT, pb.Role_ROLE_HANDLING_UNIT, nil)
		if rng.IntN(4) == 0 {
			step(pb.Action_ACTION_REQUEST_EXTENSION, pb.Role_ROLE_HANDLING_UNIT, func(a *pb.CaseAction) { a.ExtensionMinutes = 120 })
			c = step(pb.Action_ACTION_APPROVE_EXTENSION, pb.Role_ROLE_DISPATCHER, nil)
		}
		if rng.IntN(3) == 0 {
			// Past the deadline: the sweeper's mark.
			dl := c.StageDeadline.AsTime().UnixMilli()
			at = max(at, dl) + hour
			idx++
			mark := markCmd(id, dl, at)
			mark.LocalOffsetS = offset
			if r := result(t, f.Apply(entry(idx, encode(t, mark)))); r.Err != nil {
				t.Fatalf("mark: %v", r.Err)
			}
		}
		step(pb.Action_ACTION_HANDLE, pb.Role_ROLE_HANDLING_UNIT, nil)
		if rng.IntN(5) == 0 {
			step(pb.Action_ACTION_CHECK_FAIL, pb.Role_ROLE_INSPECTOR, nil)
			step(pb.Action_ACTION_ACCEPT, pb.Role_ROLE_HANDLING_UNIT, nil)
			step(pb.Action_ACTION_HANDLE, pb.Role_ROLE_HANDLING_UNIT, nil)
		}
		if rng.IntN(6) != 0 {
			step(pb.Action_ACTION_CHECK_PASS, pb.Role_ROLE_INSPECTOR, nil)
			step(pb.Action_ACTION_CLOSE, pb.Role_ROLE_SHIFT_LEADER, nil)
		}
	}
	cases := allCases(t, s)
	if len(cases) != 400 {
		t.Fatalf("%d cases", len(cases))
	}
	checked := 0
	for _, period := range []string{"day", "week", "month", "quarter"} {
		for _, at := range []string{"2026-11-03", "2026-11-16", "2026-11-27"} {
			for _, dim := range []string{"unit", "region", "inspector"} {
				for _, scheme := range []string{"department", "jinhua"} {
					q := evaluation.Query{Period: period, At: at, Dimension: dim, Scheme: scheme}
					got, err := evaluation.Report(s, q)
					if err != nil {
						t.Fatal(err)
					}
					want := evaluation.Recount(cases, q, offset)
					if !proto.Equal(got, want) {
						t.Fatalf("%+v:\n counters %v\n recount  %v", q, got, want)
					}
					if period == "month" && len(got.Rows) == 0 {
						t.Fatalf("%+v: an empty month report", q)
					}
					checked++
				}
			}
		}
	}
	t.Logf("%d reports equal to their recount", checked)
}
