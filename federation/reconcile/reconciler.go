package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/diskspace"
	"github.com/cityhub/cityhub/tiers/node"
	"github.com/cityhub/cityhub/tiers/store"
)

var (
	// ErrNotLeader refuses a run on a replica that does not lead its group.
	ErrNotLeader = errors.New("reconciliation runs on the group's leader")
	// ErrRunning refuses a run while another is in progress on this node.
	ErrRunning = errors.New("a reconciliation run is already in progress on this node")
	// ErrNoRun is returned for a report of a run that does not exist.
	ErrNoRun = errors.New("no such reconciliation run")
	// ErrInvalid refuses a bad request.
	ErrInvalid = errors.New("invalid reconciliation request")
)

// FollowRun is the run that records the automatic continuation of moves:
// cases another node's reconciler handed up to this one.
const FollowRun = "follow"

// Options configure a Reconciler.
type Options struct {
	Self     string
	Topology *topology.Topology
	Owners   Owners
	Local    node.Leader
	// Now is the clock (the run's start time and age buckets); default time.Now.
	Now func() time.Time
	// BatchSize is the number of moves per Raft command (default 500).
	BatchSize int
	// FollowInterval is how often the leader continues moves other nodes'
	// reconcilers handed up to it (0: never; Start does nothing).
	FollowInterval time.Duration
	Logger         *slog.Logger
}

// Reconciler runs reconciliation on one node: it scans the node's open
// cases, plans each with the Planner, and proposes the moves in batches.
type Reconciler struct {
	opts    Options
	planner Planner
	log     *slog.Logger

	// running admits one user run at a time; passing serialises a run
	// with the follow loop (a run waits for a follow pass to end, the
	// follow loop skips while a run goes on).
	running sync.Mutex
	passing sync.Mutex
	// resumed is the unfinished run the follow loop last said it resumes
	// (guarded by running): a run that keeps failing is announced once.
	resumed string
}

// New builds a Reconciler.
func New(opts Options) *Reconciler {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Reconciler{
		opts:    opts,
		planner: Planner{Self: opts.Self, Topology: opts.Topology, Owners: opts.Owners},
		log:     opts.Logger.With("component", "reconcile", "node", opts.Self),
	}
}

// scanStates are the states whose cases a run looks at, in scan order.
var scanStates = []pb.State{
	pb.State_STATE_RETURN_REQUESTED, pb.State_STATE_ACCEPTED, pb.State_STATE_DISPATCHED, pb.State_STATE_FILED,
	pb.State_STATE_HANDLED, pb.State_STATE_CHECKED, pb.State_STATE_SUSPENDED,
	pb.State_STATE_REPORTED, pb.State_STATE_VERIFIED,
}

// Reconcile runs (or, with DryRun, plans) reconciliation of this node's
// open cases and returns the run's report. Without a run id it resumes the
// node's unfinished run, if there is one, else starts a new one. A run is
// idempotent: a case is moved only from the version it was planned
// against, and a resumed run skips the cases it already recorded.
func (r *Reconciler) Reconcile(ctx context.Context, req *pb.ReconcileRequest) (*pb.ReconcileReport, error) {
	if !r.opts.Local.IsLeader() {
		return nil, ErrNotLeader
	}
	if !r.running.TryLock() {
		return nil, ErrRunning
	}
	defer r.running.Unlock()
	return r.reconcile(ctx, req)
}

// reconcile is Reconcile with r.running held.
func (r *Reconciler) reconcile(ctx context.Context, req *pb.ReconcileRequest) (*pb.ReconcileReport, error) {
	r.passing.Lock()
	defer r.passing.Unlock()
	if req.GetBatchSize() < 0 || req.GetBatchSize() > 5000 {
		return nil, fmt.Errorf("%w: batch_size %d is outside 1-5000", ErrInvalid, req.GetBatchSize())
	}
	batch := r.opts.BatchSize
	if req.GetBatchSize() > 0 {
		batch = int(req.BatchSize)
	}
	if req.GetDryRun() {
		return r.plan(ctx)
	}
	run, err := r.startRun(ctx, req.GetRunId())
	if err != nil {
		return nil, err
	}
	r.log.Info("reconciliation run started", "run", run.RunId, "batch", batch)
	// A move planned against a version that changed before it applied (the
	// overdue sweeper marks old cases, a user acts) is skipped; the run
	// passes again over what it has not recorded until nothing is skipped.
	// A move the state machine refuses is recorded as FAILED with the
	// refusal and not tried again.
	var inPlace int64
	skipped := 0
	for attempt := 1; attempt <= maxPasses; attempt++ {
		_, inPlace, skipped, err = r.pass(ctx, run.RunId, batch, stateQueries(), nil, true, "")
		if err != nil {
			return nil, fmt.Errorf("run %s (resume it by running again): %w", run.RunId, err)
		}
		if skipped == 0 || attempt == maxPasses {
			break
		}
		r.log.Info("moves skipped because their cases changed meanwhile: passing again", "run", run.RunId, "skipped", skipped, "pass", attempt+1)
	}
	if skipped > 0 {
		// Cases that kept changing under every pass are not left out: they
		// are recorded as failed, with the reason, and counted.
		why := fmt.Sprintf("its case kept changing while the run moved it (%d passes): not moved; run again", maxPasses)
		if _, inPlace, _, err = r.pass(ctx, run.RunId, batch, stateQueries(), nil, true, why); err != nil {
			return nil, fmt.Errorf("run %s (resume it by running again): %w", run.RunId, err)
		}
	}
	// The run's records count every case it acted on or failed to, in this
	// process or before a crash; in-place cases are not recorded, and the
	// last pass saw all of them.
	rep, err := r.report(run)
	if err != nil {
		return nil, err
	}
	run.InPlace = inPlace
	run.Scanned = inPlace + rep.Moved + rep.Pending + rep.Disputed + rep.Rejected + rep.Failed
	run.Incomplete = rep.Failed > 0
	run.Finished, run.FinishedUnixMs = true, r.opts.Now().UnixMilli()
	if _, err := r.opts.Local.ApplyLocal(ctx, &pb.Command{Body: &pb.Command_ReconcileRun{ReconcileRun: &pb.ReconcileRunMark{Run: run}}}); err != nil {
		return nil, fmt.Errorf("finish run %s: %w", run.RunId, err)
	}
	if run.Incomplete {
		r.log.Warn("reconciliation run incomplete: moves failed (see the report's failed records)", "run", run.RunId, "failed", rep.Failed)
	}
	describeRun(rep, run)
	r.log.Info("reconciliation run finished", "run", run.RunId, "scanned", run.Scanned, "in_place", inPlace,
		"moved", rep.Moved, "pending", rep.Pending, "disputed", rep.Disputed, "rejected", rep.Rejected, "failed", rep.Failed)
	return rep, nil
}

// startRun finds the run to work on: the one named, the node's unfinished
// one, or a new one, recorded through the log.
func (r *Reconciler) startRun(ctx context.Context, id string) (*pb.ReconcileRun, error) {
	var found *pb.ReconcileRun
	taken := map[string]bool{}
	err := r.opts.Local.Store().View(func(tx *store.Tx) error {
		runs, err := tx.ReconcileRuns()
		if err != nil {
			return err
		}
		for _, run := range runs {
			taken[run.RunId] = true
			if (id != "" && run.RunId == id) || (id == "" && !run.Finished && run.RunId != FollowRun) {
				found = run
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if found != nil {
		if found.Finished {
			found.Finished, found.FinishedUnixMs = false, 0
		} else {
			r.log.Info("resuming unfinished reconciliation run", "run", found.RunId)
			return found, nil
		}
	} else {
		if id == "" {
			// A new run never reuses an id: its records would count as done.
			base := r.opts.Self + "-" + r.opts.Now().UTC().Format("20060102T150405Z")
			id = base
			for n := 2; taken[id]; n++ {
				id = fmt.Sprintf("%s-%d", base, n)
			}
		}
		found = &pb.ReconcileRun{RunId: id, Node: r.opts.Self, StartedUnixMs: r.opts.Now().UnixMilli()}
	}
	if _, err := r.opts.Local.ApplyLocal(ctx, &pb.Command{Body: &pb.Command_ReconcileRun{ReconcileRun: &pb.ReconcileRunMark{Run: found}}}); err != nil {
		return nil, fmt.Errorf("start run %s: %w", found.RunId, err)
	}
	return found, nil
}

// stateQueries select the cases of every state a run looks at.
func stateQueries() []store.Query {
	qs := make([]store.Query, len(scanStates))
	for i, st := range scanStates {
		qs[i] = store.Query{State: st}
	}
	return qs
}

// pass scans the cases the queries select, plans each (keep, when set,
// narrows the cases considered), and proposes the moves in batches under
// run. With resume, cases the run already recorded are skipped. With a
// giveUp reason, nothing is moved: each case that would be is recorded as
// FAILED with that reason.
func (r *Reconciler) pass(ctx context.Context, run string, batch int, queries []store.Query, keep func(*pb.Case) bool, resume bool, giveUp string) (scanned, inPlace int64, skipped int, err error) {
	var moves []*pb.ReconcileMove
	flush := func() error {
		if len(moves) == 0 {
			return nil
		}
		cmd := &pb.Command{RequestId: "reconcile/" + run, Body: &pb.Command_Reconcile{Reconcile: &pb.ReconcileCases{RunId: run, Moves: moves}}}
		res, err := r.opts.Local.ApplyLocal(ctx, cmd)
		if err != nil {
			return err
		}
		skipped += res.Skipped
		moves = nil
		return nil
	}
	st := r.opts.Local.Store()
	err = r.scan(ctx, queries, func(page []*pb.Case) error {
		var done map[string]bool
		if resume {
			var err error
			if done, err = recorded(st, run, page); err != nil {
				return err
			}
		}
		for _, c := range page {
			if done[c.Id] || (keep != nil && !keep(c)) {
				continue
			}
			d, ok := r.planner.Plan(c)
			if !ok {
				continue
			}
			scanned++
			if d.Outcome == pb.ReconcileOutcome_RECONCILE_OUTCOME_IN_PLACE {
				inPlace++
				continue
			}
			m := &pb.ReconcileMove{
				CaseId: c.Id, ExpectedEpoch: c.HolderEpoch, ExpectedVersion: c.Version,
				Outcome: d.Outcome, Action: d.Action, Record: d.Record,
			}
			if giveUp != "" {
				m.Outcome, m.Action = pb.ReconcileOutcome_RECONCILE_OUTCOME_FAILED, nil
				m.Record.Outcome, m.Record.Reason = pb.ReconcileOutcome_RECONCILE_OUTCOME_FAILED, giveUp+" (planned: "+d.Record.GetReason()+")"
			}
			moves = append(moves, m)
			if len(moves) >= batch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return scanned, inPlace, skipped, err
	}
	err = flush()
	return scanned, inPlace, skipped, err
}

// recorded returns which cases of page run has already recorded.
func recorded(st *store.Store, run string, page []*pb.Case) (map[string]bool, error) {
	done := map[string]bool{}
	err := st.View(func(tx *store.Tx) error {
		for _, c := range page {
			ok, err := tx.HasReconcileRecord(run, c.Id)
			if err != nil {
				return err
			}
			if ok {
				done[c.Id] = true
			}
		}
		return nil
	})
	return done, err
}

// plan is a dry run: every decision, nothing written.
func (r *Reconciler) plan(ctx context.Context) (*pb.ReconcileReport, error) {
	rep := &pb.ReconcileReport{Node: r.opts.Self, DryRun: true, StartedAt: tsOf(r.opts.Now())}
	agg := newAggregate(r.opts.Now())
	err := r.scan(ctx, stateQueries(), func(page []*pb.Case) error {
		for _, c := range page {
			d, ok := r.planner.Plan(c)
			if !ok {
				continue
			}
			rep.Scanned++
			if d.Outcome == pb.ReconcileOutcome_RECONCILE_OUTCOME_IN_PLACE {
				rep.InPlace++
				continue
			}
			agg.add(d.Record)
			if len(rep.Plan) < maxPlan {
				rep.Plan = append(rep.Plan, d.Record)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	agg.fill(rep)
	return rep, nil
}

// scan calls fn with every page of the cases the queries select, in
// order, until fn fails or ctx ends.
func (r *Reconciler) scan(ctx context.Context, queries []store.Query, fn func([]*pb.Case) error) error {
	st := r.opts.Local.Store()
	for _, q := range queries {
		q.PageSize, q.PageToken = 1000, ""
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			page, next, err := st.List(q)
			if err != nil {
				return err
			}
			if err := fn(page); err != nil {
				return err
			}
			if next == "" {
				break
			}
			q.PageToken = next
		}
	}
	return nil
}

// maxPasses bounds the passes of one run over cases whose moves were
// skipped because they changed meanwhile.
const maxPasses = 5

// maxPlan bounds the plan entries a dry run returns (the counts are complete).
const maxPlan = 10_000

// Lead is the follow loop, a leader job (node.AddLeaderJob: it runs on the
// leader of a settled term only, until the term ends): every
// FollowInterval, cases another node's reconciler handed to this one are
// planned and moved on (run "follow"), so a case reaches its owner across
// several tiers; and a run left unfinished (the leader crashed or lost
// leadership half-way) is resumed, backing off while it keeps failing.
// With no FollowInterval it returns at once.
func (r *Reconciler) Lead(ctx context.Context) {
	if r.opts.FollowInterval <= 0 {
		return
	}
	t := time.NewTicker(r.opts.FollowInterval)
	defer t.Stop()
	var (
		nextResume time.Time
		backoff    = r.opts.FollowInterval
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		switch err := r.Follow(ctx); {
		case err == nil || errors.Is(err, ErrRunning) || errors.Is(err, ErrNotLeader) || ctx.Err() != nil:
		case diskspace.IsRefusal(err):
			// Paused below the disk reserve (the monitor logs the
			// crossing); the cases wait in their index.
			r.log.Debug("follow reconciliation paused: disk space below the reserve", "error", err)
		default:
			r.log.Warn("follow reconciliation", "error", err)
		}
		if time.Now().Before(nextResume) {
			continue
		}
		switch err := r.resumeUnfinished(ctx); {
		case err == nil || errors.Is(err, ErrRunning) || errors.Is(err, ErrNotLeader) || ctx.Err() != nil:
			backoff = r.opts.FollowInterval
		case diskspace.IsRefusal(err):
			// The run stays unfinished and resumes where it stopped
			// once space returns: try again soon, without growing the
			// backoff of runs that fail for other reasons.
			r.log.Debug("resume reconciliation run paused: disk space below the reserve", "error", err)
			nextResume = time.Now().Add(diskspace.RetryAfter)
		default:
			r.log.Warn("resume reconciliation run", "error", err, "retry_in", backoff)
			nextResume = time.Now().Add(backoff)
			backoff = min(2*backoff, maxResumeBackoff)
		}
	}
}

// maxResumeBackoff bounds the wait between attempts to resume a run that
// keeps failing.
const maxResumeBackoff = 5 * time.Minute

// resumeUnfinished resumes, on the leader, a run a crash or a leader change
// left unfinished (a new leader carries on where the old one stopped).
// It looks before it takes the run's lock: the loop looks every follow
// interval, and a user's Reconcile that found the lock held by the look
// would be refused (Aborted) although no run is going on. While a run is
// going on (a user's, which is unfinished until it ends, or an earlier
// resumption) it returns ErrRunning and says nothing. It announces a
// resumption at Info once per run; further attempts at a run that keeps
// failing log at Debug (the loop warns about each failure with its
// backoff).
func (r *Reconciler) resumeUnfinished(ctx context.Context) error {
	if !r.opts.Local.IsLeader() {
		return ErrNotLeader
	}
	if unfinished, err := r.unfinishedRun(); err != nil || unfinished == "" {
		return err
	}
	if !r.running.TryLock() {
		return ErrRunning
	}
	defer r.running.Unlock()
	// Again under the lock: the run may have ended since.
	unfinished, err := r.unfinishedRun()
	if err != nil || unfinished == "" {
		return err
	}
	if unfinished != r.resumed {
		r.resumed = unfinished
		r.log.Info("resuming a reconciliation run left unfinished", "run", unfinished)
	} else {
		r.log.Debug("resuming a reconciliation run left unfinished: trying again", "run", unfinished)
	}
	_, err = r.reconcile(ctx, &pb.ReconcileRequest{RunId: unfinished})
	return err
}

// unfinishedRun is the id of a run of this node's that has not finished
// (not the follow run, which never does), or "".
func (r *Reconciler) unfinishedRun() (string, error) {
	var unfinished string
	err := r.opts.Local.Store().View(func(tx *store.Tx) error {
		runs, err := tx.ReconcileRuns()
		for _, run := range runs {
			if !run.Finished && run.RunId != FollowRun {
				unfinished = run.RunId
			}
		}
		return err
	})
	return unfinished, err
}

// Follow plans and moves on the cases that arrived here from another
// node's reconciliation and wait in FILED (handed up), once. It reads the
// store's index of handed-up cases, so an idle pass costs next to nothing.
func (r *Reconciler) Follow(ctx context.Context) error {
	if !r.opts.Local.IsLeader() {
		return ErrNotLeader
	}
	if !r.passing.TryLock() {
		return ErrRunning
	}
	defer r.passing.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	st := r.opts.Local.Store()
	if err := st.View(func(tx *store.Tx) error {
		_, err := tx.ReconcileRun(FollowRun)
		return err
	}); errors.Is(err, store.ErrNotFound) {
		run := &pb.ReconcileRun{RunId: FollowRun, Node: r.opts.Self, StartedUnixMs: r.opts.Now().UnixMilli()}
		if _, err := r.opts.Local.ApplyLocal(ctx, &pb.Command{Body: &pb.Command_ReconcileRun{ReconcileRun: &pb.ReconcileRunMark{Run: run}}}); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	_, _, _, err := r.pass(ctx, FollowRun, r.opts.BatchSize, []store.Query{{HandedUp: true, WithHistory: true}}, handedHere, false, "")
	return err
}

// handedHere is true for a case whose last step was a reconciler handing
// it up to this node (a supervision since, the overdue mark of a case that
// waited, does not count as a step).
func handedHere(c *pb.Case) bool {
	last := store.LastStep(c)
	return last.GetActor() == Actor && last.GetAction() == pb.Action_ACTION_TRANSFER_UP
}
