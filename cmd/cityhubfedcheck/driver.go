package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cityhub/cityhub/cmd/internal/authclient"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/client"
)

// group is one node of the federation: a Raft group of replicas.
type group struct {
	name    string
	addrs   []string
	rs      *client.Replicas // follows the group's leader (do)
	cases   []pb.CaseServiceClient
	cluster []pb.ClusterServiceClient
	parent  *group
	auth    *groupAuth // nil: no credentials sent
}

// caseRun is one case the driver made, or one named by --extra.
type caseRun struct {
	n        int
	id       string
	holder   *group
	reporter *group
	rids     []string // request ids of the writes, in order (driver cases)
	reported time.Time
	closed   time.Time
	final    *pb.Case // as the holder answered the last write
	err      error

	mu   sync.Mutex
	seen map[string]uint64 // node → highest version read there (linearizable)
}

// liveCase is a reported case as the sampler sees it.
type liveCase struct {
	id string
	r  *caseRun
}

type driver struct {
	o      options
	log    *slog.Logger
	byName map[string]*group

	retries sync.Map // code → *atomic.Int64
	reads   atomic.Int64

	lmu  sync.Mutex
	live []liveCase // reported cases, for the sampler

	vmu        sync.Mutex
	violations map[string][]string // by kind
	nviolated  int
}

// Kinds of violation, in the order they are printed.
const (
	kWalk   = "walking the cases"
	kExtra  = "reading --extra"
	kOrder  = "per-case order (sampled reads)"
	kLinks  = "links drained"
	kCopies = "every copy equal to the holder's"
	kLists  = "each replica holds exactly its cases"
)

var kinds = []string{kWalk, kExtra, kOrder, kLinks, kCopies, kLists}

func newDriver(o options, logger *slog.Logger) (*driver, error) {
	d := &driver{o: o, log: logger, byName: map[string]*group{}, violations: map[string][]string{}}
	tc, err := transport(o.ca)
	if err != nil {
		return nil, err
	}
	for i, g := range o.nodes {
		if i > 0 {
			g.parent = o.nodes[i-1]
		}
		d.byName[g.name] = g
		if o.adminPW != "" {
			c, err := dialAuth(g, tc)
			if err != nil {
				return nil, fmt.Errorf("node %s: %w", g.name, err)
			}
			g.auth = &groupAuth{conn: c, sessions: map[seat]*authclient.Session{}}
		}
		g.rs = client.NewReplicas(g.name, g.addrs, grpc.WithTransportCredentials(tc), grpc.WithUnaryInterceptor(g.intercept))
		for i := range g.addrs {
			c, err := g.rs.Conn(i)
			if err != nil {
				return nil, fmt.Errorf("node %s: %w", g.name, err)
			}
			g.cases = append(g.cases, pb.NewCaseServiceClient(c))
			g.cluster = append(g.cluster, pb.NewClusterServiceClient(c))
		}
	}
	return d, nil
}

func (d *driver) close() {
	for _, g := range d.o.nodes {
		if g.auth != nil {
			_ = g.auth.conn.Close()
		}
		if g.rs != nil {
			g.rs.Close()
		}
	}
}

func (d *driver) violate(kind, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	d.vmu.Lock()
	d.violations[kind] = append(d.violations[kind], msg)
	d.nviolated++
	n := d.nviolated
	d.vmu.Unlock()
	if n <= 10 {
		d.log.Error("violation", "kind", kind, "what", msg)
	}
}

// printViolations prints up to 10 of each kind to stdout.
func (d *driver) printViolations() {
	fmt.Printf("cityhubfedcheck: FAIL: %d violations\n", d.nviolated)
	for _, k := range kinds {
		vs := d.violations[k]
		if len(vs) == 0 {
			continue
		}
		fmt.Printf("%s: %d\n", k, len(vs))
		for i, v := range vs {
			if i == 10 {
				fmt.Printf("  ... and %d more\n", len(vs)-10)
				break
			}
			fmt.Println("  " + v)
		}
	}
}

// classify is the client's classification (tiers/client), with Aborted
// retried on the same replica; every retry is counted by its code for the
// report.
func (d *driver) classify(err error) client.Outcome {
	o := client.ClassifyAlso(client.RetryHere, codes.Aborted)(err)
	if o.Retryable() {
		c := status.Code(err).String()
		v, _ := d.retries.LoadOrStore(c, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
	}
	return o
}

// do calls fn on the node's leader (tiers/client: the replica that
// answered last first, the next one when it does not lead, backing off
// from 50 ms to 500 ms, each call bounded by 3 s) until it succeeds, fails
// for good, or ctx ends. Every write carries its request id, set before
// do, so a retry on another replica never applies twice.
func (d *driver) do(ctx context.Context, g *group, fn func(context.Context, pb.CaseServiceClient) error) error {
	p := client.Policy{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond, Timeout: 3 * time.Second, Classify: d.classify}
	return g.rs.Call(ctx, p, func(ctx context.Context, c *grpc.ClientConn) error {
		return fn(ctx, pb.NewCaseServiceClient(c))
	})
}

func (d *driver) run() bool {
	start := time.Now()
	runs := make([]*caseRun, d.o.cases)
	ctx, cancel := context.WithTimeout(context.Background(), d.o.spread+d.o.timeout)
	defer cancel()
	var wg sync.WaitGroup
	stopSampler := make(chan struct{})
	samplerDone := make(chan struct{})
	go func() { defer close(samplerDone); d.sample(stopSampler) }()
	gap := d.o.spread / time.Duration(max(d.o.cases, 1))
	d.log.Info("load started", "cases", d.o.cases, "spread", d.o.spread, "nodes", len(d.o.nodes))
	var mu sync.Mutex
	done := 0
	for i := range runs {
		holder := d.o.nodes[i%len(d.o.nodes)]
		r := &caseRun{n: i, holder: holder, reporter: d.o.nodes[0], seen: map[string]uint64{}}
		runs[i] = r
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.err = d.walk(ctx, r)
			if r.err != nil {
				d.violate(kWalk, "case #%d (%s, for %s): %v", r.n, r.id, r.holder.name, r.err)
			}
			mu.Lock()
			done++
			if done%50 == 0 {
				d.log.Info("cases closed", "done", done, "of", d.o.cases, "elapsed", time.Since(start).Round(time.Millisecond))
			}
			mu.Unlock()
		}()
		time.Sleep(gap)
	}
	wg.Wait()
	close(stopSampler)
	<-samplerDone
	walked := time.Since(start)
	d.log.Info("every case walked", "elapsed", walked.Round(time.Millisecond))

	extra, err := d.readExtra()
	if err != nil {
		d.violate(kExtra, "%v", err)
	}
	all := append(slices.Clone(runs), extra...)
	settleStart := time.Now()
	d.waitSettled()
	settled := time.Since(settleStart)
	d.checkCopies(all)
	d.checkLists(all)
	converged := time.Since(settleStart)

	if d.nviolated > 0 {
		d.printViolations()
		fmt.Println("cityhubfedcheck: 0 passed, 1 failed")
		return false
	}
	d.report(runs, extra, walked, settled, converged)
	return true
}
