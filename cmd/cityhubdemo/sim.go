package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cityhub/cityhub/cmd/internal/casegen"
	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/client"
	"github.com/cityhub/cityhub/tiers/store"
	"github.com/cityhub/cityhub/tiers/workflow"
)

// Simulator limits.
const (
	workers     = 8
	maxTracked  = 5000 // open cases walked at once; reports pause above it
	maxWaits    = 300  // tries at a new holder before giving a hand-off up
	maxFailures = 8    // failed steps in a row before dropping a case
	waitRetry   = 200 * time.Millisecond
	failRetry   = time.Second
	callTimeout = 5 * time.Second
)

// simulator plays the people of every node: it reports new cases at every
// tier and, at each case's holder, takes the next step a little later.
type simulator struct {
	d    *demo
	topo *topology.Topology
	pace time.Duration
	log  *slog.Logger

	mu    sync.Mutex
	gen   *casegen.Generator // not safe for concurrent use: under mu
	rng   *rand.Rand
	cases map[string]*tracked
	rr    map[string]int // per node: the replica to call next

	stats stats
}

// tracked is an open case the simulator walks.
type tracked struct {
	c     *pb.Case // the last version seen
	due   time.Time
	busy  bool
	waits int // tries at a holder that had not received the case yet
	fails int
}

type stats struct {
	reported      [topology.Community + 1]atomic.Int64 // by tier of the reporting node
	handedDown    atomic.Int64                         // dispatches that moved the holder down
	transferredUp atomic.Int64
	finished      atomic.Int64 // closed, not filed or voided
	steps         atomic.Int64
	failed        atomic.Int64 // calls that failed (each is retried or the case dropped)
	dropped       atomic.Int64
}

func newSimulator(d *demo, pace time.Duration, logger *slog.Logger) *simulator {
	seed := uint64(time.Now().UnixNano())
	return &simulator{
		d: d, topo: d.lay.topo, pace: pace, log: logger.With("component", "generator"),
		gen:   casegen.NewFederated(seed, d.lay.topo, fmt.Sprintf("demo-%x", seed)),
		rng:   rand.New(rand.NewPCG(seed, 2)),
		cases: map[string]*tracked{},
		rr:    map[string]int{},
	}
}

// client returns a CaseService client of a replica of node (followers
// forward to the leader); after a failure the next replica is tried.
func (s *simulator) client(node string, failed bool) pb.CaseServiceClient {
	s.mu.Lock()
	defer s.mu.Unlock()
	cl := s.d.cases[node]
	if failed {
		s.rr[node]++
	}
	return cl[s.rr[node]%len(cl)]
}

// delay is the pause before a case's next step: pace, give or take half.
func (s *simulator) delay() time.Duration {
	return time.Duration((0.5 + s.rng.Float64()) * float64(s.pace))
}

// resume picks up the open cases each node holds (after a restart) and
// returns how many.
func (s *simulator) resume() int {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.d.lay.nodes {
		name := n.node.Name
		_ = scanCases(s.d.leader(name).Node.Store(), func(c *pb.Case) bool {
			// A case in the joint review queue waits for a shift leader's
			// decision (cityhubctl review decide), not for the generator.
			if c.Holder == name && !workflow.IsTerminal(c.State) && !c.GetOwnership().GetInReview() {
				c.AllowedActions = workflow.Allowed(c)
				s.cases[c.Id] = &tracked{c: c, due: now.Add(time.Duration(s.rng.Int64N(int64(2 * s.pace))))}
			}
			return len(s.cases) < maxTracked
		})
	}
	return len(s.cases)
}

// scanCases calls fn on every case in the store until it returns false.
func scanCases(st *store.Store, fn func(*pb.Case) bool) error {
	q := store.Query{PageSize: 500}
	for {
		page, next, err := st.List(q)
		if err != nil {
			return err
		}
		for _, c := range page {
			if !fn(c) {
				return nil
			}
		}
		if next == "" {
			return nil
		}
		q.PageToken = next
	}
}

// run reports about rate cases a second and walks the open ones until ctx
// ends, then waits for the calls in flight.
func (s *simulator) run(ctx context.Context, rate float64) {
	jobs := make(chan func(), 4*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for job := range jobs {
				job()
			}
		}()
	}
	report := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer report.Stop()
	sched := time.NewTicker(50 * time.Millisecond)
	defer sched.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-report.C:
			s.mu.Lock()
			full := len(s.cases) >= maxTracked
			s.mu.Unlock()
			if !full {
				select {
				case jobs <- func() { s.report(ctx) }:
				default: // the workers are behind: skip this report
				}
			}
		case <-sched.C:
			now := time.Now()
			s.mu.Lock()
			for _, t := range s.cases {
				if t.busy || now.Before(t.due) {
					continue
				}
				select {
				case jobs <- func() { s.step(ctx, t) }:
					t.busy = true
				default:
				}
			}
			s.mu.Unlock()
		}
	}
	close(jobs)
	wg.Wait()
}

func (s *simulator) report(ctx context.Context) {
	s.mu.Lock()
	node, req := s.gen.ReportAt()
	s.mu.Unlock()
	n, _ := s.topo.Node(node)
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	resp, err := s.client(node, false).ReportCase(cctx, req)
	if err != nil {
		if ctx.Err() == nil {
			s.stats.failed.Add(1)
			s.client(node, true)
			s.log.Debug("report failed", "node", node, "error", err)
		}
		return
	}
	s.stats.reported[n.Tier].Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cases[resp.Case.Id] = &tracked{c: resp.Case, due: time.Now().Add(s.delay())}
}

// step takes the next step of a case at its holder.
func (s *simulator) step(ctx context.Context, t *tracked) {
	s.mu.Lock()
	req := s.gen.Next(t.c)
	holder := t.c.Holder
	if req == nil { // finished, or waiting on nobody the generator plays
		delete(s.cases, t.c.Id)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	resp, err := s.client(holder, false).Act(cctx, req)
	if err != nil {
		if ctx.Err() != nil {
			s.mu.Lock()
			t.busy = false
			s.mu.Unlock()
			return
		}
		s.failed(cctx, t, holder, err)
		return
	}
	c := resp.Case
	s.stats.steps.Add(1)
	switch {
	case req.Action == pb.Action_ACTION_TRANSFER_UP:
		s.stats.transferredUp.Add(1)
	case req.Action == pb.Action_ACTION_DISPATCH && c.Holder != holder:
		s.stats.handedDown.Add(1)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if workflow.IsTerminal(c.State) {
		s.stats.finished.Add(1)
		delete(s.cases, c.Id)
		return
	}
	t.c, t.busy, t.waits, t.fails = c, false, 0, 0
	t.due = time.Now().Add(s.delay())
}

// failed decides what to do after a refused or failed step.
func (s *simulator) failed(ctx context.Context, t *tracked, holder string, err error) {
	s.stats.failed.Add(1)
	code := status.Code(err)
	var fresh *pb.Case
	switch o := client.ClassifyAlso(client.RetryElsewhere, codes.Aborted)(err); {
	case code == codes.NotFound:
		// Handed off, but not yet delivered to the new holder: try again.
	case o == client.RetryElsewhere:
		s.client(holder, true) // the next step goes to another replica
	case o.Retryable():
		// Passing (the disk reserve, a busy node): the same replica, later.
	default:
		// Refused: the case moved on without us (a deadline, another
		// actor) or the generator's copy is stale. Read it again.
		if resp, gerr := s.client(holder, false).GetCase(ctx, &pb.GetCaseRequest{CaseId: t.c.Id}); gerr == nil {
			fresh = resp
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t.busy = false
	switch {
	case code == codes.NotFound:
		t.waits++
		t.due = time.Now().Add(waitRetry)
		if t.waits <= maxWaits {
			return
		}
	default:
		t.fails++
		t.due = time.Now().Add(failRetry)
		if fresh != nil {
			t.c = fresh
		}
		if t.fails <= maxFailures {
			return
		}
	}
	s.stats.dropped.Add(1)
	delete(s.cases, t.c.Id)
	s.log.Warn("case dropped by the generator", "case", t.c.Id, "holder", holder, "state", t.c.State, "error", err)
}

// open counts the cases being walked and those waiting for a hand-off to
// arrive at their new holder.
func (s *simulator) open() (open, awaiting int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.cases {
		if t.waits > 0 {
			awaiting++
		}
	}
	return len(s.cases), awaiting
}
