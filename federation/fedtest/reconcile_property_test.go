package fedtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// guarantee is the reconciliation guarantee, word for word as README and
// federation/DESIGN.md state it (TestGuaranteeIsDocumented) and as
// TestReconcileGuarantee checks it.
const guarantee = "After a run, every open case the node held is at its owner's node dispatched " +
	"to its owning unit, or in the city's joint review queue with a reason, or in " +
	"the run's report with the reason it could not move; no case is moved twice, " +
	"and scanned = in place + moved + pending + disputed + rejected + failed, the " +
	"same cases the dry run counts."

// TestGuaranteeIsDocumented: the documents state the guarantee this file
// tests.
func TestGuaranteeIsDocumented(t *testing.T) {
	for _, doc := range []string{"../../README.md", "../DESIGN.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(strings.Fields(string(b)), " "), guarantee) {
			t.Errorf("%s does not state the reconciliation guarantee: %q", doc, guarantee)
		}
	}
}

// propertyCases and propertySeeds size TestReconcileGuarantee: about a
// minute under -race on two cores.
const propertyCases = 1500

var propertySeeds = []uint64{101, 102, 103}

// randomBacklog is Backlog with every open state, units anywhere (the
// owner's, another node's, one that no longer exists), returns once or
// twice before, and returns whose old system lost where they came from
// (broken: the workflow cannot deny them; they must be reported as failed).
func randomBacklog(t *testing.T, f *Federation, district string, n int, seed uint64) (cases []*pb.ImportedCase, broken map[string]bool) {
	t.Helper()
	cases = Backlog(t, district, n, seed)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	var units []string
	for _, node := range f.Topo.Nodes() {
		if node.Name == "city" || strings.Contains(node.Jurisdiction, district) {
			for _, u := range node.Units {
				units = append(units, u.ID)
			}
		}
	}
	owners := CatalogueOwners(t, f)
	open := []pb.State{pb.State_STATE_REPORTED, pb.State_STATE_VERIFIED, pb.State_STATE_FILED, pb.State_STATE_DISPATCHED,
		pb.State_STATE_ACCEPTED, pb.State_STATE_RETURN_REQUESTED, pb.State_STATE_HANDLED, pb.State_STATE_CHECKED, pb.State_STATE_SUSPENDED}
	broken = map[string]bool{}
	for i, ic := range cases {
		c := ic.Case
		c.LegacyId = fmt.Sprintf("%s-P%d-%06d", district, seed, i+1)
		c.State = open[rng.IntN(len(open))]
		o := owners(c)
		switch r := rng.IntN(10); {
		case r < 4 && !o.GetDisputed():
			c.OwnerUnit = o.GetUnit() // the old system got it right
		case r < 5:
			c.OwnerUnit = district + "-old-construction" // a unit that no longer exists
		default:
			c.OwnerUnit = units[rng.IntN(len(units))]
		}
		c.Pending, c.Ownership = nil, nil
		switch c.State {
		case pb.State_STATE_REPORTED, pb.State_STATE_VERIFIED, pb.State_STATE_FILED:
			c.OwnerUnit, c.DispatchedAt, c.Deadline, c.StageDeadline = "", nil, nil, nil
			if c.State != pb.State_STATE_FILED {
				c.FiledAt = nil
			}
		default:
			c.DispatchedAt = timestamppb.New(c.ReportedAt.AsTime().Add(40 * time.Minute))
			c.Deadline = timestamppb.New(c.ReportedAt.AsTime().Add(72 * time.Hour))
			c.StageDeadline = c.Deadline
		}
		if c.OwnerUnit != "" && rng.IntN(4) == 0 {
			// Sent back before: once or twice.
			c.Ownership = &pb.Ownership{Unit: c.OwnerUnit, Rejections: int32(1 + rng.IntN(2))}
		}
		switch c.State {
		case pb.State_STATE_RETURN_REQUESTED:
			c.Pending = &pb.Pending{Action: pb.Action_ACTION_REQUEST_RETURN, Actor: c.OwnerUnit, Reason: "not ours",
				FromState: pb.State_STATE_ACCEPTED, At: c.DispatchedAt}
			if rng.IntN(5) == 0 {
				c.Pending.FromState = pb.State_STATE_UNSPECIFIED // the old system lost it
				broken[c.LegacyId] = true
			}
		case pb.State_STATE_SUSPENDED:
			c.SuspendedFrom, c.SuspendedAt = pb.State_STATE_ACCEPTED, c.DispatchedAt
		}
		c.History[0].ToState, c.History[0].Unit = c.State, c.OwnerUnit
	}
	return cases, broken
}

// TestReconcileGuarantee is the property test of reconciliation: random
// backlogs of the sample city (every open state, every owner position,
// units that no longer exist, disputes, returns), reconciled at the
// district, end where the guarantee says, with a report that adds up and
// counts what the dry run counts.
func TestReconcileGuarantee(t *testing.T) {
	if testing.Short() {
		t.Skip("15 nodes and several backlogs (make test runs it)")
	}
	ctx := context.Background()
	f := sampleFederation(t, true)
	owners := CatalogueOwners(t, f)
	const district = "d-320505"
	brokenIDs := map[string]bool{}
	for _, seed := range propertySeeds {
		start := time.Now()
		backlog, broken := randomBacklog(t, f, "320505", propertyCases, seed)
		ids := f.Import(ctx, district, backlog, 500)
		if len(ids) != len(backlog) {
			t.Fatalf("seed %d: imported %d of %d", seed, len(ids), len(backlog))
		}
		f.WaitSettled(60 * time.Second)
		open := heldOpen(t, f, district)
		plan, err := runReconcile(ctx, t, f, district, &pb.ReconcileRequest{DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := runReconcile(ctx, t, f, district, &pb.ReconcileRequest{})
		if err != nil {
			t.Fatal(err)
		}
		sum := rep.InPlace + rep.Moved + rep.Pending + rep.Disputed + rep.Rejected + rep.Failed
		switch {
		case !rep.Finished || rep.Scanned != sum:
			t.Fatalf("seed %d: the report does not add up: %s", seed, summary(rep))
		case plan.Scanned != open || rep.Scanned != open:
			t.Fatalf("seed %d: %d open cases held; the dry run scanned %d, the run %d", seed, open, plan.Scanned, rep.Scanned)
		case plan.Moved != rep.Moved || plan.Disputed != rep.Disputed || plan.Pending != rep.Pending || plan.InPlace != rep.InPlace ||
			plan.Rejected != rep.Rejected+rep.Failed:
			t.Fatalf("seed %d: the run %s differs from its plan %s beyond the refused moves", seed, summary(rep), summary(plan))
		case rep.Incomplete != (rep.Failed > 0):
			t.Fatalf("seed %d: incomplete %v with %d failed", seed, rep.Incomplete, rep.Failed)
		}
		// A failed move is only one the state machine refused, for a case
		// (of this backlog or an earlier one) whose old system lost where
		// its return came from; it is recorded with the refusal.
		for l := range broken {
			brokenIDs[ids[l]] = true
		}
		var failed int64
		for id, r := range runRecords(t, f, district, rep.RunId) {
			if r.Outcome != pb.ReconcileOutcome_RECONCILE_OUTCOME_FAILED {
				continue
			}
			failed++
			if !strings.Contains(r.Reason, "refused") {
				t.Fatalf("seed %d: case %s failed without the refusal: %s", seed, id, r.Reason)
			}
			if !brokenIDs[id] {
				t.Fatalf("seed %d: case %s failed: %s", seed, id, r.Reason)
			}
		}
		if failed != rep.Failed {
			t.Fatalf("seed %d: %d failed records, the report says %d", seed, failed, rep.Failed)
		}
		deadline := time.Now().Add(10 * time.Minute)
		for {
			ok, _ := f.Settled()
			p := ""
			if ok {
				if p = GuaranteeProblem(t, f, district, rep.RunId, ids, broken, owners); p == "" {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("seed %d: the guarantee does not hold after %v: %s (settled %v)", seed, 10*time.Minute, p, ok)
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("seed %d: %d cases (%d with a lost return), %s, incomplete %v; %v",
			seed, len(backlog), len(broken), summary(rep), rep.Incomplete, time.Since(start).Round(time.Millisecond))
	}
}
