package reconcile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

// Report returns a run's report, built from the records the run left in
// the state machine (so it survives restarts and leader changes): the
// latest run when no id is given.
func (r *Reconciler) Report(_ context.Context, req *pb.ReconcileReportRequest) (*pb.ReconcileReport, error) {
	var run *pb.ReconcileRun
	err := r.opts.Local.Store().View(func(tx *store.Tx) error {
		if req.GetRunId() != "" {
			var err error
			run, err = tx.ReconcileRun(req.RunId)
			return err
		}
		runs, err := tx.ReconcileRuns()
		if err != nil {
			return err
		}
		for _, x := range runs {
			if x.RunId != FollowRun && (run == nil || x.StartedUnixMs >= run.StartedUnixMs) {
				run = x
			}
		}
		if run == nil {
			return store.ErrNotFound
		}
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		if req.GetRunId() == "" {
			return nil, fmt.Errorf("%w: this node has not run reconciliation yet", ErrNoRun)
		}
		return nil, fmt.Errorf("%w: %q", ErrNoRun, req.GetRunId())
	}
	if err != nil {
		return nil, err
	}
	return r.report(run)
}

func (r *Reconciler) report(run *pb.ReconcileRun) (*pb.ReconcileReport, error) {
	rep := &pb.ReconcileReport{}
	describeRun(rep, run)
	agg := newAggregate(time.UnixMilli(run.StartedUnixMs))
	err := r.opts.Local.Store().View(func(tx *store.Tx) error {
		return tx.ReconcileRecords(run.RunId, func(rec *pb.ReconcileRecord) error {
			agg.add(rec)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	agg.fill(rep)
	return rep, nil
}

// describeRun fills a report's header from its run.
func describeRun(rep *pb.ReconcileReport, run *pb.ReconcileRun) {
	rep.RunId, rep.Node, rep.Finished = run.RunId, run.Node, run.Finished
	rep.StartedAt = tsOf(time.UnixMilli(run.StartedUnixMs))
	rep.Scanned, rep.InPlace, rep.Incomplete = run.Scanned, run.InPlace, run.Incomplete
	rep.FinishedAt = nil
	if run.Finished {
		rep.FinishedAt = tsOf(time.UnixMilli(run.FinishedUnixMs))
	}
}

// Age buckets of a case at the start of a run, by how long ago it was
// reported: the backlog's age is what a district's annual report names.
type ageBucketDef struct {
	name string
	max  time.Duration // exclusive upper bound; 0: none
}

var ageBuckets = []ageBucketDef{
	{"0-30d", 30 * 24 * time.Hour},
	{"31-90d", 90 * 24 * time.Hour},
	{"91-365d", 365 * 24 * time.Hour},
	{"1-3y", 3 * 365 * 24 * time.Hour},
	{"3y+", 0},
}

func ageBucket(start time.Time, reportedMs int64) string {
	age := start.Sub(time.UnixMilli(reportedMs))
	for _, b := range ageBuckets {
		if b.max == 0 || age < b.max {
			return b.name
		}
	}
	return ageBuckets[len(ageBuckets)-1].name
}

// aggregate counts records by dimension and key.
type aggregate struct {
	start  time.Time
	totals map[pb.ReconcileOutcome]int64
	counts map[[2]string]*pb.ReconcileCount
}

func newAggregate(start time.Time) *aggregate {
	return &aggregate{start: start, totals: map[pb.ReconcileOutcome]int64{}, counts: map[[2]string]*pb.ReconcileCount{}}
}

func (a *aggregate) add(rec *pb.ReconcileRecord) {
	a.totals[rec.Outcome]++
	kind := "event"
	if rec.Kind == pb.Kind_KIND_COMPONENT {
		kind = "component"
	}
	unit := rec.Unit
	if unit == "" {
		unit = "(disputed)"
	}
	for _, k := range [][2]string{
		{"kind", kind},
		{"class", kind + " " + rec.ClassCode},
		{"unit", unit},
		{"age", ageBucket(a.start, rec.ReportedUnixMs)},
		{"to_node", rec.ToNode},
	} {
		c := a.counts[k]
		if c == nil {
			c = &pb.ReconcileCount{Dimension: k[0], Key: k[1]}
			a.counts[k] = c
		}
		switch rec.Outcome {
		case pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED:
			c.Moved++
		case pb.ReconcileOutcome_RECONCILE_OUTCOME_PENDING:
			c.Pending++
		case pb.ReconcileOutcome_RECONCILE_OUTCOME_DISPUTED:
			c.Disputed++
		case pb.ReconcileOutcome_RECONCILE_OUTCOME_REJECTED:
			c.Rejected++
		case pb.ReconcileOutcome_RECONCILE_OUTCOME_FAILED:
			c.Failed++
		}
	}
}

var dimensionOrder = []string{"kind", "class", "unit", "age", "to_node"}

func (a *aggregate) fill(rep *pb.ReconcileReport) {
	rep.Moved = a.totals[pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED]
	rep.Pending = a.totals[pb.ReconcileOutcome_RECONCILE_OUTCOME_PENDING]
	rep.Disputed = a.totals[pb.ReconcileOutcome_RECONCILE_OUTCOME_DISPUTED]
	rep.Rejected = a.totals[pb.ReconcileOutcome_RECONCILE_OUTCOME_REJECTED]
	rep.Failed = a.totals[pb.ReconcileOutcome_RECONCILE_OUTCOME_FAILED]
	rep.Counts = rep.Counts[:0]
	for _, c := range a.counts {
		rep.Counts = append(rep.Counts, c)
	}
	slices.SortFunc(rep.Counts, func(x, y *pb.ReconcileCount) int {
		if d := cmp.Compare(slices.Index(dimensionOrder, x.Dimension), slices.Index(dimensionOrder, y.Dimension)); d != 0 {
			return d
		}
		if x.Dimension == "age" {
			return cmp.Compare(ageIndex(x.Key), ageIndex(y.Key))
		}
		return strings.Compare(x.Key, y.Key)
	})
}

func ageIndex(name string) int {
	return slices.IndexFunc(ageBuckets, func(b ageBucketDef) bool { return b.name == name })
}

func tsOf(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }
