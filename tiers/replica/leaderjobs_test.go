package replica_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// jobProbe is a leader job that records what it saw on one replica.
type jobProbe struct {
	starts, stops atomic.Int64
	running       atomic.Int32
	mu            sync.Mutex
	problems      []string
	terms         []uint64
}

func (p *jobProbe) problem(format string, args ...any) {
	p.mu.Lock()
	p.problems = append(p.problems, fmt.Sprintf(format, args...))
	p.mu.Unlock()
}

// TestLeaderJobsLifecycle moves leadership around a 3-replica group and
// checks the lifecycle of a registered leader job: it starts on a replica
// only once that replica leads a settled term (it sees every case the
// group acknowledged before), it stops when the replica loses leadership,
// it starts again when the replica leads again, it never runs twice at once
// on a replica nor twice in one term, and a replica that stops ends it.
func TestLeaderJobsLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: run without -short")
	}
	c := testcluster.New(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	first := c.WaitLeader(30 * time.Second)

	var (
		ackMu sync.Mutex
		acked []string // cases the group acknowledged
	)
	write := func(i int) {
		t.Helper()
		id := fmt.Sprintf("jobs-%d-%d", i, time.Now().UnixNano())
		resp, err := c.Cases(c.Leader()).ReportCase(ctx, report(id, "leader jobs"))
		if err != nil {
			t.Fatalf("report: %v", err)
		}
		ackMu.Lock()
		acked = append(acked, resp.Case.Id)
		ackMu.Unlock()
	}
	write(0)

	probes := make([]*jobProbe, 3)
	termStarts := map[uint64]int{}
	var termMu sync.Mutex
	for i := range probes {
		p := &jobProbe{}
		probes[i] = p
		n := c.Replica(i).Node
		n.AddLeaderJob("probe", func(ctx context.Context) {
			if got := p.running.Add(1); got != 1 {
				p.problem("%d instances at once on replica %d", got, i)
			}
			defer p.running.Add(-1)
			// 0 when the term already ended (the job is cancelled).
			term := n.LeaderTerm()
			termMu.Lock()
			if term != 0 {
				termStarts[term]++
				if termStarts[term] > 1 {
					p.problem("a second start in term %d (replica %d)", term, i)
				}
			}
			termMu.Unlock()
			p.mu.Lock()
			p.terms = append(p.terms, term)
			p.mu.Unlock()
			if term != 0 && (!n.IsLeader() || !n.Settled()) && ctx.Err() == nil {
				p.problem("replica %d started in term %d leader=%v settled=%v", i, term, n.IsLeader(), n.Settled())
			}
			ackMu.Lock()
			ids := append([]string(nil), acked...)
			ackMu.Unlock()
			for _, id := range ids {
				if _, err := n.Store().GetCase(id); err != nil {
					p.problem("replica %d started in term %d without acknowledged case %s: %v", i, term, id, err)
				}
			}
			p.starts.Add(1)
			<-ctx.Done()
			p.stops.Add(1)
		})
	}
	wait := func(what string, cond func() bool) { testcluster.WaitFor(t, time.Minute, what, cond) }
	// Registered while the first replica leads a settled term: it starts
	// there at once, and nowhere else.
	wait("the job on the first leader", func() bool { return probes[first].starts.Load() == 1 })

	transfer := func(from, to int) {
		t.Helper()
		target := c.Members[to].ID
		if _, err := c.ClusterAdmin(from).TransferLeadership(ctx, &pb.TransferLeadershipRequest{NodeId: target}); err != nil {
			t.Fatalf("transfer %d → %d: %v", from, to, err)
		}
	}
	// Around the group and back: each replica leads, loses and leads again.
	order := []int{first, (first + 1) % 3, (first + 2) % 3, first, (first + 1) % 3}
	wantStarts := make([]int64, 3)
	wantStarts[first] = 1
	for k := 1; k < len(order); k++ {
		from, to := order[k-1], order[k]
		write(k)
		transfer(from, to)
		wantStarts[to]++
		wait(fmt.Sprintf("the job stopped on replica %d", from), func() bool {
			return probes[from].stops.Load() == probes[from].starts.Load()
		})
		wait(fmt.Sprintf("start %d of the job on replica %d", wantStarts[to], to), func() bool {
			return probes[to].starts.Load() == wantStarts[to]
		})
	}
	for i, p := range probes {
		if got := p.starts.Load(); got != wantStarts[i] {
			t.Errorf("replica %d: %d starts, want %d (terms %v)", i, got, wantStarts[i], p.terms)
		}
	}
	// The last leader stops: its job ends before Stop returns.
	last := order[len(order)-1]
	c.Stop(last)
	if s, e := probes[last].starts.Load(), probes[last].stops.Load(); s != e || probes[last].running.Load() != 0 {
		t.Errorf("stopped replica %d: %d starts, %d stops, %d running", last, s, e, probes[last].running.Load())
	}
	for _, p := range probes {
		p.mu.Lock()
		for _, pr := range p.problems {
			t.Error(pr)
		}
		p.mu.Unlock()
	}
}
