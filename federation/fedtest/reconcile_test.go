package fedtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/cityhub/cityhub/config"
	"github.com/cityhub/cityhub/federation/ownership"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

// expect is where a backlog case must end: held by node, dispatched to
// unit, or waiting in the city's joint review queue.
type expect struct {
	node, unit string
	review     bool
	state      pb.State // required state; UNSPECIFIED: DISPATCHED or ACCEPTED
}

// expectations asks the responsibility catalogue, independently of the
// reconciler's planner, where each imported case belongs.
func expectations(t *testing.T, f *Federation, backlog []*pb.ImportedCase, ids map[string]string) (map[string]expect, map[string]int) {
	t.Helper()
	cat, err := ownership.Sample(f.Topo)
	if err != nil {
		t.Fatal(err)
	}
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]expect{}
	mix := map[string]int{}
	for _, ic := range backlog {
		c := ic.Case
		o := cat.Resolve(ownership.Query{Kind: c.Kind, Major: c.MajorCode, Minor: c.MinorCode, Grid: c.GridCode, ComponentID: c.ComponentId, At: c.ReportedAt.AsTime().In(loc)})
		id := ids[c.LegacyId]
		if o.Disputed {
			mix["disputed"]++
		} else {
			mix[pb.Tier_name[int32(o.Tier)]]++
		}
		switch {
		case c.State == pb.State_STATE_HANDLED:
			// Work done: it waits for its check where it is.
			want[id] = expect{node: "d-320505", unit: c.OwnerUnit, state: pb.State_STATE_HANDLED}
			mix["handled"]++
		case o.Disputed:
			want[id] = expect{node: "city", review: true, state: pb.State_STATE_FILED}
			mix["to review"]++
		default:
			want[id] = expect{node: o.Node, unit: o.Unit}
			if o.Node == "d-320505" && c.OwnerUnit != "" && c.OwnerUnit != o.Unit {
				mix["reassigned in the district"]++
			}
		}
		if cl := c.MajorCode + c.MinorCode; c.Kind == pb.Kind_KIND_COMPONENT && (cl == "0113" || cl == "0114") {
			mix["rotated ownerless"]++
		}
	}
	return want, mix
}

// endStateProblem returns "" when every case is where want says, held by
// exactly one node, with every copy equal to the holder's; else the first
// problem found.
func endStateProblem(t testing.TB, f *Federation, want map[string]expect) string {
	t.Helper()
	copies := map[string]map[string]*pb.Case{} // case → node → copy
	for _, s := range f.Specs {
		st := f.leaderStore(t, s.Name)
		err := st.View(func(tx *store.Tx) error {
			for id := range want {
				c, err := tx.GetCase(id)
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if copies[id] == nil {
					copies[id] = map[string]*pb.Case{}
				}
				copies[id][s.Name] = c
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		w := want[id]
		var holders []string
		for node, c := range copies[id] {
			if c.Holder == node {
				holders = append(holders, node)
			}
		}
		if len(holders) != 1 {
			return fmt.Sprintf("case %s is held by %v, want exactly one holder (%s)", id, holders, w.node)
		}
		h := copies[id][holders[0]]
		switch {
		case holders[0] != w.node:
			return fmt.Sprintf("case %s held by %s, want %s (unit %s, review %v)", id, holders[0], w.node, w.unit, w.review)
		case h.GetOwnership().GetInReview() != w.review:
			return fmt.Sprintf("case %s: in review %v, want %v", id, h.GetOwnership().GetInReview(), w.review)
		case w.state != pb.State_STATE_UNSPECIFIED && h.State != w.state:
			return fmt.Sprintf("case %s: state %v, want %v", id, h.State, w.state)
		case w.state == pb.State_STATE_UNSPECIFIED && h.State != pb.State_STATE_DISPATCHED && h.State != pb.State_STATE_ACCEPTED:
			return fmt.Sprintf("case %s: state %v, want dispatched or accepted", id, h.State)
		case !w.review && h.OwnerUnit != w.unit:
			return fmt.Sprintf("case %s: dispatched to %q, want %q", id, h.OwnerUnit, w.unit)
		case !w.review && w.state != pb.State_STATE_HANDLED && h.GetOwnership().GetUnit() != w.unit:
			return fmt.Sprintf("case %s: owner recorded %q, want %q", id, h.GetOwnership().GetUnit(), w.unit)
		}
		for node, c := range copies[id] {
			if !proto.Equal(c, h) {
				return fmt.Sprintf("case %s: the copy at %s (v%d.%d) differs from the holder's (v%d.%d)", id, node, c.HolderEpoch, c.Version, h.HolderEpoch, h.Version)
			}
		}
	}
	return ""
}

func waitEndState(t *testing.T, f *Federation, want map[string]expect, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, _ := f.Settled()
		if ok {
			p := endStateProblem(t, f, want)
			if p == "" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("end state not reached after %v: %s", timeout, p)
			}
		} else if time.Now().After(deadline) {
			f.WaitSettled(time.Second)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func runReconcile(ctx context.Context, t testing.TB, f *Federation, node string, req *pb.ReconcileRequest) (*pb.ReconcileReport, error) {
	t.Helper()
	g := f.Groups[node]
	cl := pb.NewOwnershipServiceClient(g.Conn(g.WaitLeader(10 * time.Second)))
	// A run answers when it has moved everything: 10,000 cases take about
	// 35 s under -race on an idle 2-core machine and more than 2 minutes
	// on a loaded one. The bound only keeps a hung run from hanging the
	// package.
	cctx, cancel := context.WithTimeout(ctx, 12*time.Minute)
	defer cancel()
	return cl.Reconcile(cctx, req)
}

// versions records (epoch, version) of every copy of every case on every node.
func versions(t *testing.T, f *Federation) map[string][2]uint64 {
	t.Helper()
	out := map[string][2]uint64{}
	for _, s := range f.Specs {
		err := f.leaderStore(t, s.Name).Digests(func(id string, d store.Digest) error {
			out[s.Name+"/"+id] = [2]uint64{d.Epoch, d.Version}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// sampleFederation starts the sample city, one replica per node. With
// still, the overdue sweepers stay idle: the backlog's deadlines passed
// years ago, and marking them would change versions while a test checks
// that a run changes nothing.
func sampleFederation(t *testing.T, still bool) *Federation {
	return New(t, SampleSpecs(t), 1, SampleCity(t), func(c *config.Config) {
		c.Reconcile.FollowInterval = 200 * time.Millisecond
		if still {
			c.Deadlines.SweepInterval = time.Hour
		}
	})
}

// TestReconcileDistrictBacklog is the acceptance: a district
// system's backlog of 10,000 cases (about 30% city-owned, with ownerless
// and disputed ones) is reconciled through the federation so that each
// case ends held by the node of its one owner, dispatched to it, or in the
// city's joint review queue; a second run at every node changes nothing.
func TestReconcileDistrictBacklog(t *testing.T) {
	if testing.Short() {
		t.Skip("15 nodes and 10,000 cases (make test runs it)")
	}
	ctx := context.Background()
	f := sampleFederation(t, true)
	backlog := Backlog(t, "320505", 10_000, 1)
	ids := f.Import(ctx, "d-320505", backlog, 1000)
	if len(ids) != len(backlog) {
		t.Fatalf("imported %d of %d", len(ids), len(backlog))
	}
	want, mix := expectations(t, f, backlog, ids)
	t.Logf("backlog by owner: %v", mix)
	if city := mix["TIER_CITY"]; city < 2500 || city > 3500 {
		t.Fatalf("%d city-owned cases, want about 30%%", city)
	}
	for _, k := range []string{"disputed", "rotated ownerless", "TIER_DISTRICT", "TIER_STREET", "TIER_COMMUNITY", "handled", "reassigned in the district"} {
		if mix[k] == 0 {
			t.Fatalf("the backlog has no %s case: %v", k, mix)
		}
	}
	f.WaitSettled(60 * time.Second)

	plan, err := runReconcile(ctx, t, f, "d-320505", &pb.ReconcileRequest{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if before := versions(t, f); plan.Moved == 0 || len(plan.Plan) == 0 || plan.RunId != "" {
		t.Fatalf("dry run planned nothing: %+v", plan)
	} else if after := versions(t, f); !equalVersions(before, after) {
		t.Fatal("the dry run changed cases")
	}

	start := time.Now()
	rep, err := runReconcile(ctx, t, f, "d-320505", &pb.ReconcileRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Finished || rep.Incomplete || rep.Failed != 0 || rep.Scanned != int64(len(backlog)) ||
		rep.Moved+rep.Pending+rep.Disputed+rep.Rejected+rep.Failed+rep.InPlace != rep.Scanned {
		t.Fatalf("report does not add up: %+v", summary(rep))
	}
	if rep.Moved != plan.Moved || rep.Disputed != plan.Disputed || rep.Disputed != int64(mix["to review"]) {
		t.Fatalf("run %s differs from its plan %s (disputed in the backlog: %d)", summary(rep), summary(plan), mix["to review"])
	}
	waitEndState(t, f, want, 10*time.Minute)
	t.Logf("district run: %s; end state reached %v after the run started", summary(rep), time.Since(start).Round(time.Millisecond))

	// The report is kept: it reads the same later, by run id.
	again, err := pb.NewOwnershipServiceClient(f.Groups["d-320505"].Conn(0)).GetReconcileReport(ctx, &pb.ReconcileReportRequest{RunId: rep.RunId})
	if err != nil || !proto.Equal(again, rep) {
		t.Fatalf("stored report differs: %v\n%v\n%v", err, summary(again), summary(rep))
	}
	// The joint review queue at the city lists exactly the disputes.
	reviews := 0
	for tok := ""; ; {
		resp, err := f.Groups["city"].Cases(0).ListCases(ctx, &pb.ListCasesRequest{InReview: true, PageSize: 500, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		reviews += len(resp.Cases)
		for _, c := range resp.Cases {
			if len(c.Ownership.GetReasons()) == 0 || c.Ownership.GetDispute() == "" {
				t.Fatalf("case %s in review without reasons: %+v", c.Id, c.Ownership)
			}
		}
		if tok = resp.NextPageToken; tok == "" {
			break
		}
	}
	if reviews != mix["to review"] {
		t.Fatalf("review queue has %d cases, want %d", reviews, mix["to review"])
	}
	resp, err := http.Get(f.Groups["city"].HTTPBase(0) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("cityhub_cases_in_review %d\n", reviews); !strings.Contains(string(metrics), want) {
		t.Fatalf("the city's /metrics lacks %q", want)
	}

	// A second run, at every node, changes nothing.
	before := versions(t, f)
	for _, s := range f.Specs {
		rep2, err := runReconcile(ctx, t, f, s.Name, &pb.ReconcileRequest{})
		if err != nil {
			t.Fatalf("second run at %s: %v", s.Name, err)
		}
		if rep2.Moved != 0 || rep2.Disputed != 0 || rep2.Rejected != 0 {
			t.Fatalf("second run at %s moved cases: %s", s.Name, summary(rep2))
		}
	}
	f.WaitSettled(30 * time.Second)
	if after := versions(t, f); !equalVersions(before, after) {
		t.Fatal("the second run changed cases")
	}
}

// TestReconcileResumesAfterACrash kills the district's node half-way
// through a run; started again, the run resumes (same run id) and ends in
// the same state as an uninterrupted run of the same backlog.
func TestReconcileResumesAfterACrash(t *testing.T) {
	if testing.Short() {
		t.Skip("two federations of 15 nodes (make test runs it)")
	}
	ctx := context.Background()
	backlog := Backlog(t, "320505", 3000, 2)

	ref := sampleFederation(t, false)
	refIDs := ref.Import(ctx, "d-320505", backlog, 1000)
	want, _ := expectations(t, ref, backlog, refIDs)
	if _, err := runReconcile(ctx, t, ref, "d-320505", &pb.ReconcileRequest{BatchSize: 100}); err != nil {
		t.Fatal(err)
	}
	waitEndState(t, ref, want, 10*time.Minute)
	refState := endStateByLegacyID(t, ref, refIDs)
	for _, g := range ref.Groups {
		g.Close()
	}

	f := sampleFederation(t, false)
	ids := f.Import(ctx, "d-320505", backlog, 1000)
	want, _ = expectations(t, f, backlog, ids)
	d := f.Groups["d-320505"]
	errc := make(chan error, 1)
	go func() {
		// Small batches: the run lasts long enough to be killed half-way.
		_, err := runReconcile(ctx, t, f, "d-320505", &pb.ReconcileRequest{BatchSize: 10})
		errc <- err
	}()
	// Kill the node as soon as the run has recorded its first batches.
	var runID string
	for deadline := time.Now().Add(10 * time.Minute); ; {
		n := 0
		_ = d.Replica(0).Node.Store().View(func(tx *store.Tx) error {
			runs, err := tx.ReconcileRuns()
			for _, r := range runs {
				if r.RunId != "follow" {
					runID = r.RunId
				}
			}
			if err != nil || runID == "" {
				return err
			}
			return tx.ReconcileRecords(runID, func(*pb.ReconcileRecord) error { n++; return nil })
		})
		if n >= 100 {
			break
		}
		select {
		case err := <-errc:
			// Ended (or refused) before it could be killed half-way.
			t.Fatalf("the run answered %v after %d records, before the node was killed", err, n)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run recorded %d cases in 10 minutes, want 100 before the kill", n)
		}
		time.Sleep(time.Millisecond)
	}
	d.Kill(0)
	if err := <-errc; err == nil {
		t.Fatal("the run finished before the node was killed: nothing was interrupted")
	}
	// Started again, the node's leader resumes the unfinished run by itself.
	d.Start(0)
	d.WaitLeader(30 * time.Second)
	waitFor(t, 10*time.Minute, "the interrupted run resumed and finished", func() bool {
		done := false
		_ = d.Replica(0).Node.Store().View(func(tx *store.Tx) error {
			run, err := tx.ReconcileRun(runID)
			done = err == nil && run.Finished
			return nil
		})
		return done
	})
	rep, err := pb.NewOwnershipServiceClient(d.Conn(0)).GetReconcileReport(ctx, &pb.ReconcileReportRequest{RunId: runID})
	if err != nil || !rep.Finished || rep.Moved == 0 {
		t.Fatalf("resumed run %s: %v %s", runID, err, summary(rep))
	}
	waitEndState(t, f, want, 10*time.Minute)
	got := endStateByLegacyID(t, f, ids)
	for legacy, w := range refState {
		if got[legacy] != w {
			t.Fatalf("case %s ends %+v after the crash, %+v without one", legacy, got[legacy], w)
		}
	}
	if len(got) != len(refState) {
		t.Fatalf("%d cases, want %d", len(got), len(refState))
	}
}

type endState struct {
	holder, unit, owner, rule string
	state                     pb.State
	review                    bool
}

func endStateByLegacyID(t *testing.T, f *Federation, ids map[string]string) map[string]endState {
	t.Helper()
	out := map[string]endState{}
	for legacy, id := range ids {
		var c *pb.Case
		for _, s := range f.Specs {
			_ = f.leaderStore(t, s.Name).View(func(tx *store.Tx) error {
				x, err := tx.GetCase(id)
				if err == nil && x.Holder == s.Name {
					c = x
				}
				return nil
			})
			if c != nil {
				break
			}
		}
		if c == nil {
			t.Fatalf("case %s (%s) has no holder", id, legacy)
		}
		out[legacy] = endState{holder: c.Holder, unit: c.OwnerUnit, owner: c.GetOwnership().GetUnit(), rule: c.GetOwnership().GetRule(),
			state: c.State, review: c.GetOwnership().GetInReview()}
	}
	return out
}

func equalVersions(a, b map[string][2]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func summary(r *pb.ReconcileReport) string {
	return fmt.Sprintf("run %q scanned %d in place %d moved %d pending %d disputed %d rejected %d failed %d",
		r.GetRunId(), r.GetScanned(), r.GetInPlace(), r.GetMoved(), r.GetPending(), r.GetDisputed(), r.GetRejected(), r.GetFailed())
}
