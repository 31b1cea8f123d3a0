package node

import (
	"context"
	"sync"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/store"
)

// The leadership lifecycle: work that only the leader may do (the overdue
// sweeper, the relay's senders, the reconciler's follow loop and resumed
// runs, anti-entropy's periodic and catch-up runs, evidence retention, the
// configured topology, the first administrator) is registered once as a
// leader job. Each time this replica gains leadership and its term is
// settled (settle.go: a raft barrier of the term applied, so the store
// holds every entry an earlier leader committed), every job starts under
// one context of that term; when the replica loses leadership (or its term
// changes, or the node shuts down) the context is cancelled and every job
// has returned before any starts again. So no job runs twice at once on a
// replica, and none reads a state that is behind the log it leads.

// Leader is the handle a leader job has of its replica: the one interface
// the jobs (tiers/overdue, tiers/evidence, federation/relay,
// federation/reconcile, federation/antientropy) take, implemented by *Node.
type Leader interface {
	// IsLeader reports whether this replica leads now (jobs need not poll
	// it: their context ends with the term).
	IsLeader() bool
	// ApplyLocal commits a command through raft on the leader.
	ApplyLocal(ctx context.Context, cmd *pb.Command) (*fsm.Result, error)
	// Applied is closed when the state machine next applies entries.
	Applied() <-chan struct{}
	// Store is the replica's state.
	Store() *store.Store
	// Now is the leader's clock (the one it stamps commands with).
	Now() time.Time
}

var _ Leader = (*Node)(nil)

// LeaderJob is the work of one job for one term of leadership: it runs
// until ctx is cancelled (leadership lost, node stopping) and must then
// return soon. It may return earlier when it has nothing left to do in the
// term (it starts again in the next one).
type LeaderJob func(ctx context.Context)

type leaderJob struct {
	name string
	run  LeaderJob
}

// leadership is the state of the lifecycle (leaderLoop).
type leadership struct {
	kick chan struct{}

	mu      sync.Mutex
	jobs    []leaderJob
	stopped bool           // StopLeaderJobs: nothing starts again
	cur     *termJobs      // the jobs of the term they run for; nil: none
	all     sync.WaitGroup // every job goroutine of every term
}

// termJobs are the jobs of one term of leadership.
type termJobs struct {
	term   uint64
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// leaderCheck is how often the lifecycle looks at raft's state besides the
// leadership changes and barriers that wake it: a safety net, not the
// mechanism.
const leaderCheck = time.Second

// AddLeaderJob registers a job. It starts with the next settled term of
// this replica's leadership, or at once when the replica leads a settled
// term now.
func (n *Node) AddLeaderJob(name string, run LeaderJob) {
	l := &n.lead
	l.mu.Lock()
	defer l.mu.Unlock()
	j := leaderJob{name, run}
	l.jobs = append(l.jobs, j)
	if l.cur != nil && !l.stopped {
		n.startJob(l.cur, j)
	}
}

// LeaderTerm returns the term the leader jobs run for now, 0 when they do
// not run.
func (n *Node) LeaderTerm() uint64 {
	n.lead.mu.Lock()
	defer n.lead.mu.Unlock()
	if n.lead.cur == nil {
		return 0
	}
	return n.lead.cur.term
}

// StopLeaderJobs cancels the running jobs, waits until every one returned
// and starts none again. A replica calls it before it closes what its jobs
// use; Shutdown calls it before it stops raft and closes the stores.
func (n *Node) StopLeaderJobs() {
	l := &n.lead
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	n.stopJobs()
	l.all.Wait()
}

// kickLeadership asks the lifecycle to look at raft's state again. It never
// blocks.
func (n *Node) kickLeadership() {
	select {
	case n.lead.kick <- struct{}{}:
	default:
	}
}

// leaderLoop starts and stops the leader jobs until shutdown.
func (n *Node) leaderLoop() {
	t := time.NewTicker(leaderCheck)
	defer t.Stop()
	for {
		select {
		case <-n.done:
			n.stopJobs()
			return
		case <-n.lead.kick:
		case <-t.C:
		}
		n.followLeadership()
	}
}

// followLeadership stops the jobs of a term this replica no longer leads
// and starts them for a settled term it leads. Only leaderLoop calls it, so
// a term's jobs have all returned (stopJobs waits) before the next term's
// start.
func (n *Node) followLeadership() {
	term := n.raft.CurrentTerm()
	leading := n.IsLeader()
	if running := n.LeaderTerm(); running != 0 && (!leading || running != term) {
		n.stopJobs()
	}
	// Settled: a barrier (or any entry) of this term is applied. The term
	// is read again with it: a term that moved on since is not settled.
	if !leading || n.appliedTerm() != term || n.raft.CurrentTerm() != term {
		return
	}
	l := &n.lead
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped || l.cur != nil {
		return
	}
	t := &termJobs{term: term}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	l.cur = t
	n.log.Info("leading: leader jobs start", "term", term, "jobs", len(l.jobs))
	for _, j := range l.jobs {
		n.startJob(t, j)
	}
}

// startJob runs one job for the term t; n.lead.mu is held.
func (n *Node) startJob(t *termJobs, j leaderJob) {
	t.wg.Add(1)
	n.lead.all.Add(1)
	go func() {
		defer n.lead.all.Done()
		defer t.wg.Done()
		n.log.Debug("leader job starts", "job", j.name, "term", t.term)
		j.run(t.ctx)
		n.log.Debug("leader job returned", "job", j.name, "term", t.term)
	}()
}

// stopJobs cancels the running term's jobs and waits until every one of
// them returned.
func (n *Node) stopJobs() {
	l := &n.lead
	l.mu.Lock()
	t := l.cur
	l.cur = nil
	l.mu.Unlock()
	if t == nil {
		return
	}
	t.cancel()
	t.wg.Wait()
	n.log.Info("leadership ended: leader jobs stopped", "term", t.term)
}
