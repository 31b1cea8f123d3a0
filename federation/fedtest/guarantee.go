package fedtest

// The reconciliation guarantee's checker, shared by TestReconcileGuarantee
// and the CLI's tests (cmd/cityhubctl) that reconcile through cityhubctl.

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cityhub/cityhub/federation/ownership"
	"github.com/cityhub/cityhub/federation/reconcile"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
	"github.com/cityhub/cityhub/tiers/workflow"
)

// leaderStore is the store of a group's leader.
func (f *Federation) leaderStore(t testing.TB, node string) *store.Store {
	t.Helper()
	g := f.Groups[node]
	return g.Replica(g.WaitLeader(10 * time.Second)).Node.Store()
}

// CatalogueOwners answers, independently of the planner, who owns a case.
func CatalogueOwners(t testing.TB, f *Federation) func(*pb.Case) *pb.Ownership {
	t.Helper()
	cat, err := ownership.Sample(f.Topo)
	if err != nil {
		t.Fatal(err)
	}
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	return func(c *pb.Case) *pb.Ownership {
		return cat.Resolve(ownership.Query{Kind: c.Kind, Major: c.MajorCode, Minor: c.MinorCode, Grid: c.GridCode,
			ComponentID: c.ComponentId, At: c.ReportedAt.AsTime().In(loc)})
	}
}

// runRecords reads the records of run at node.
func runRecords(t testing.TB, f *Federation, node, run string) map[string]*pb.ReconcileRecord {
	t.Helper()
	out := map[string]*pb.ReconcileRecord{}
	err := f.leaderStore(t, node).View(func(tx *store.Tx) error {
		return tx.ReconcileRecords(run, func(r *pb.ReconcileRecord) error {
			out[r.CaseId] = r
			return nil
		})
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	return out
}

// heldOpen counts the open cases node holds.
func heldOpen(t testing.TB, f *Federation, node string) int64 {
	t.Helper()
	var n int64
	st := f.leaderStore(t, node)
	for s := range pb.State_name {
		if !workflow.IsOpen(pb.State(s)) {
			continue
		}
		for q := (store.Query{State: pb.State(s), PageSize: 1000}); ; {
			page, next, err := st.List(q)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range page {
				if c.Holder == node {
					n++
				}
			}
			if q.PageToken = next; next == "" {
				break
			}
		}
	}
	return n
}

// holders returns, per case id, the holder's copy (all nodes' leaders).
func holders(t testing.TB, f *Federation, ids map[string]string) (map[string]*pb.Case, string) {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	out := map[string]*pb.Case{}
	for _, s := range f.Specs {
		err := f.leaderStore(t, s.Name).View(func(tx *store.Tx) error {
			for id := range want {
				c, err := tx.GetCase(id)
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if c.Holder == s.Name {
					if prev := out[id]; prev != nil {
						return fmt.Errorf("case %s held by %s and %s", id, prev.Holder, s.Name)
					}
					out[id] = c
				}
			}
			return nil
		})
		if err != nil {
			return nil, err.Error()
		}
	}
	return out, ""
}

// GuaranteeProblem checks the reconciliation guarantee (README, Concepts:
// Reconciliation) for the cases of one backlog, ids by legacy id, after
// run at district (the district's records and the city's follow records):
// every case is open and held by one node, moved at most once per node it
// passed, and either at its owner's node dispatched to its owning unit
// (owners answers who that is), or in the city's joint review with a
// reason, or pending in the report with its reason, or failed with the
// refusal if its legacy id is in broken. It returns "" when the guarantee
// holds, else the first problem.
func GuaranteeProblem(t testing.TB, f *Federation, district, run string, ids map[string]string, broken map[string]bool,
	owners func(*pb.Case) *pb.Ownership) string {
	held, p := holders(t, f, ids)
	if p != "" {
		return p
	}
	recs := runRecords(t, f, district, run)
	follow := runRecords(t, f, "city", reconcile.FollowRun)
	legacy := make([]string, 0, len(ids))
	for l := range ids {
		legacy = append(legacy, l)
	}
	sort.Strings(legacy)
	for _, l := range legacy {
		id := ids[l]
		c := held[id]
		if c == nil {
			return fmt.Sprintf("case %s (%s) has no holder", id, l)
		}
		if !workflow.IsOpen(c.State) {
			return fmt.Sprintf("case %s is %s: reconciliation closed it", id, c.State)
		}
		// Nothing moved twice: at most one move per node the case passed
		// (up to the city, then down from it).
		var moves []pb.Action
		for _, h := range c.History {
			if h.Actor == reconcile.Actor {
				moves = append(moves, h.Action)
			}
		}
		if len(moves) > 2 || (len(moves) == 2 && moves[0] != pb.Action_ACTION_TRANSFER_UP) {
			return fmt.Sprintf("case %s moved more than once: %v", id, moves)
		}
		rec := recs[id]
		if r := follow[id]; r != nil && c.Holder == "city" {
			rec = r
		}
		switch rec.GetOutcome() {
		case pb.ReconcileOutcome_RECONCILE_OUTCOME_FAILED:
			if !broken[l] || !strings.Contains(rec.Reason, "refused") {
				return fmt.Sprintf("case %s (%s, %s, unit %s) failed to move: %s", id, l, c.State, c.OwnerUnit, rec.Reason)
			}
			if c.Holder != rec.FromNode {
				return fmt.Sprintf("case %s failed but moved to %s", id, c.Holder)
			}
			continue
		case pb.ReconcileOutcome_RECONCILE_OUTCOME_PENDING:
			if rec.Reason == "" || c.Holder != rec.FromNode {
				return fmt.Sprintf("case %s pending without a reason (%q) or moved (%s)", id, rec.Reason, c.Holder)
			}
			continue
		}
		if c.GetOwnership().GetInReview() {
			if c.Holder != "city" || len(c.Ownership.GetReasons()) == 0 {
				return fmt.Sprintf("case %s in review at %s with reasons %v", id, c.Holder, c.Ownership.GetReasons())
			}
			continue
		}
		o := owners(c)
		switch {
		case o.Disputed:
			return fmt.Sprintf("case %s: disputed (%s) but not in review: %s at %s", id, o.Dispute, c.State, c.Holder)
		case c.Holder != o.Node || c.OwnerUnit != o.Unit:
			return fmt.Sprintf("case %s (%s, %s): held by %s dispatched to %q, owner %s at %s (record %v %q)",
				id, l, c.State, c.Holder, c.OwnerUnit, o.Unit, o.Node, rec.GetOutcome(), rec.GetReason())
		case c.State == pb.State_STATE_FILED || c.State == pb.State_STATE_REPORTED || c.State == pb.State_STATE_VERIFIED:
			return fmt.Sprintf("case %s at its owner's node but %s", id, c.State)
		}
	}
	return ""
}
