// Command cityhubfedcheck drives load through a running federation of
// cityhubd processes and checks what the federation promises: every case
// arrives exactly once at its holder, the holder's ancestors and the
// reporting node converge on the holder's final copy with its full history,
// and each case's versions are seen in order. scripts/e2e-federation.sh
// runs it while it kills leaders and partitions tiers.
//
//	cityhubfedcheck --node city=127.0.0.1:17101,127.0.0.1:17102 --unit city=city-water \
//	    --node d-320505=127.0.0.1:17111 --unit d-320505=320505-roads ... \
//	    --grid 320505001001007 --cases 300 --spread 30s
//
// The --node flags name a chain from the root down, each with the gRPC
// addresses of its replicas; every case is reported at the first node with
// --grid (under the last node), filed and dispatched round robin to the
// --unit of each node, then accepted, handled, checked and closed at the
// node that holds it. Writes are retried on Unavailable and
// DeadlineExceeded across the node's replicas with the same request id.
// --extra names a file of cases made elsewhere ("ID HOLDER REPORTER" per
// line) that are checked the same way, in their state at the end.
//
// With --ca it talks TLS to the nodes' client API; with
// --admin-password-file (a file for every node, or a directory with a file
// per node name) it logs in as each node's administrator, makes the seats it
// plays there (fed-lead, fed-disp, fed-insp of --grid, fed-<unit> for the
// node's --unit; an existing seat gets this run's password) and sends every
// call as the seat its request's role (and unit) names: see auth.go.
//
// It exits 0 and prints figures when every check passed, 1 with the
// violations otherwise, 2 when it could not run.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/cityhub/cityhub/cmd/internal/authclient"
	"github.com/cityhub/cityhub/cmd/internal/version"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

type options struct {
	nodes   []*group
	units   map[string]string
	grid    string
	cases   int
	spread  time.Duration
	timeout time.Duration
	settle  time.Duration
	extra   string
	runID   string
	// Credentials (auth.go).
	ca        string
	adminPW   string
	adminUser string
}

func main() {
	o := options{units: map[string]string{}}
	flag.Func("node", "NAME=ADDR,ADDR,...: a node of the chain (root first) and its replicas' gRPC addresses (repeatable)", func(s string) error {
		name, addrs, ok := strings.Cut(s, "=")
		if !ok || name == "" || addrs == "" {
			return fmt.Errorf("want NAME=ADDR,ADDR,..., got %q", s)
		}
		o.nodes = append(o.nodes, &group{name: name, addrs: strings.Split(addrs, ",")})
		return nil
	})
	flag.Func("unit", "NAME=UNIT: a unit hosted by node NAME, to dispatch to (repeatable)", func(s string) error {
		name, unit, ok := strings.Cut(s, "=")
		if !ok || name == "" || unit == "" {
			return fmt.Errorf("want NAME=UNIT, got %q", s)
		}
		o.units[name] = unit
		return nil
	})
	flag.StringVar(&o.grid, "grid", "", "15-digit grid code of the reports (under the last node's jurisdiction)")
	flag.IntVar(&o.cases, "cases", 300, "cases to report")
	flag.DurationVar(&o.spread, "spread", 30*time.Second, "time over which the reports start, evenly")
	flag.DurationVar(&o.timeout, "timeout", 150*time.Second, "longest the cases may take to walk to closure")
	flag.DurationVar(&o.settle, "settle", 60*time.Second, "longest the links and replicas may take to converge afterwards")
	flag.StringVar(&o.extra, "extra", "", "file of further cases to check: \"ID HOLDER REPORTER\" per line, read at the end")
	flag.StringVar(&o.runID, "run", fmt.Sprintf("%x", time.Now().UnixNano()), "prefix of the request ids")
	flag.StringVar(&o.ca, "ca", "", "PEM CA of the nodes' client API certificates: talk TLS (default: plain text)")
	flag.StringVar(&o.adminPW, "admin-password-file", "", "the administrator's password of every node, or a directory with one file per node name: log in and make the driver's seats (default: no credentials, for nodes with auth.disabled)")
	flag.StringVar(&o.adminUser, "admin-user", "admin", "the nodes' administrator account")
	showVersion := version.Flag(nil)
	flag.Parse()
	if *showVersion {
		version.Print(os.Stdout, "cityhubfedcheck")
		return
	}
	if len(o.nodes) == 0 || o.grid == "" {
		fmt.Fprintln(os.Stderr, "cityhubfedcheck: --node and --grid are required")
		os.Exit(2)
	}
	for _, g := range o.nodes {
		if o.units[g.name] == "" {
			fmt.Fprintf(os.Stderr, "cityhubfedcheck: no --unit for node %s\n", g.name)
			os.Exit(2)
		}
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	d, err := newDriver(o, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cityhubfedcheck:", err)
		os.Exit(2)
	}
	defer d.close()
	sctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	err = d.setupAuth(sctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cityhubfedcheck:", err)
		os.Exit(2)
	}
	if !d.run() {
		os.Exit(1)
	}
}

// group is one node of the federation: a Raft group of replicas.
type group struct {
	name    string
	addrs   []string
	conns   []*grpc.ClientConn
	cases   []pb.CaseServiceClient
	cluster []pb.ClusterServiceClient
	parent  *group
	next    atomic.Uint32
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
		for _, a := range g.addrs {
			c, err := grpc.NewClient(a, grpc.WithTransportCredentials(tc), grpc.WithUnaryInterceptor(g.intercept))
			if err != nil {
				return nil, fmt.Errorf("node %s at %s: %w", g.name, a, err)
			}
			g.conns = append(g.conns, c)
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
		for _, c := range g.conns {
			_ = c.Close()
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

func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.Canceled:
		return true
	}
	return false
}

func (d *driver) countRetry(err error) {
	c := status.Code(err).String()
	v, _ := d.retries.LoadOrStore(c, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// do calls fn on the node's replicas in turn until it succeeds, fails for
// good, or ctx ends. Every write carries its request id, so a retry on
// another replica never applies twice.
func (d *driver) do(ctx context.Context, g *group, fn func(context.Context, pb.CaseServiceClient) error) error {
	backoff := 50 * time.Millisecond
	for {
		i := int(g.next.Load()) % len(g.addrs)
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := fn(cctx, g.cases[i])
		cancel()
		if err == nil || !retryable(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w (last error: %w)", g.name, ctx.Err(), err)
		}
		d.countRetry(err)
		g.next.CompareAndSwap(uint32(i), uint32(i+1)) // pass over this replica
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
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

// walk reports, files and dispatches one case at the reporting node, waits
// for its holder to have it and takes it to closure there.
func (d *driver) walk(ctx context.Context, r *caseRun) error {
	rid := func(step string) string {
		id := fmt.Sprintf("%s-%04d-%s", d.o.runID, r.n, step)
		r.rids = append(r.rids, id)
		return id
	}
	rep := r.reporter
	r.reported = time.Now()
	var c *pb.Case
	reportID := rid("report")
	err := d.do(ctx, rep, func(ctx context.Context, cl pb.CaseServiceClient) error {
		resp, err := cl.ReportCase(ctx, &pb.ReportCaseRequest{
			RequestId: reportID, Actor: "insp-fed", Role: pb.Role_ROLE_INSPECTOR, Source: pb.Source_SOURCE_INSPECTOR,
			Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", GridCode: d.o.grid,
			Description: fmt.Sprintf("暴露垃圾 federation e2e case %d", r.n),
		})
		if err == nil {
			c = resp.Case
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	r.id = c.Id
	d.lmu.Lock()
	d.live = append(d.live, liveCase{id: c.Id, r: r})
	d.lmu.Unlock()
	if c.Holder != rep.name {
		return fmt.Errorf("reported at %s, but holder is %q", rep.name, c.Holder)
	}
	if _, err := d.act(ctx, rep, r, rid("file"), pb.Action_ACTION_FILE, pb.Role_ROLE_SHIFT_LEADER, nil); err != nil {
		return err
	}
	unit := d.o.units[r.holder.name]
	disp, err := d.act(ctx, rep, r, rid("dispatch"), pb.Action_ACTION_DISPATCH, pb.Role_ROLE_DISPATCHER, func(a *pb.ActRequest) {
		a.Unit, a.TimeLimitMinutes = unit, 240
	})
	if err != nil {
		return err
	}
	wantEpoch := uint64(1)
	if r.holder != rep {
		wantEpoch = 2
	}
	if disp.Holder != r.holder.name || disp.HolderEpoch != wantEpoch {
		return fmt.Errorf("dispatch to %s: holder %q epoch %d, want %s %d", unit, disp.Holder, disp.HolderEpoch, r.holder.name, wantEpoch)
	}
	if r.holder != rep {
		if err := d.waitHolder(ctx, r); err != nil {
			return err
		}
	}
	h := r.holder
	steps := []struct {
		step string
		a    pb.Action
		role pb.Role
	}{
		{"accept", pb.Action_ACTION_ACCEPT, pb.Role_ROLE_HANDLING_UNIT},
		{"handle", pb.Action_ACTION_HANDLE, pb.Role_ROLE_HANDLING_UNIT},
		{"checkpass", pb.Action_ACTION_CHECK_PASS, pb.Role_ROLE_INSPECTOR},
		{"close", pb.Action_ACTION_CLOSE, pb.Role_ROLE_SHIFT_LEADER},
	}
	for _, s := range steps {
		if c, err = d.act(ctx, h, r, rid(s.step), s.a, s.role, nil); err != nil {
			return err
		}
	}
	r.closed = time.Now()
	c.AllowedActions = nil
	r.final = c
	return nil
}

func (d *driver) act(ctx context.Context, g *group, r *caseRun, rid string, a pb.Action, role pb.Role, mod func(*pb.ActRequest)) (*pb.Case, error) {
	var out *pb.Case
	err := d.do(ctx, g, func(ctx context.Context, cl pb.CaseServiceClient) error {
		req := &pb.ActRequest{CaseId: r.id, RequestId: rid, Action: a, Actor: "fed-" + strings.ToLower(role.String()), Role: role, Note: "e2e"}
		if role == pb.Role_ROLE_HANDLING_UNIT {
			// The unit the case was dispatched to (its seat's credentials).
			req.Actor = d.o.units[r.holder.name]
		}
		if mod != nil {
			mod(req)
		}
		resp, err := cl.Act(ctx, req)
		if err == nil {
			out = resp.Case
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s at %s: %w", a, g.name, err)
	}
	return out, nil
}

// waitHolder waits until the holder's group has the case with itself as
// holder (a linearizable read, so its leader has applied the hand-off).
func (d *driver) waitHolder(ctx context.Context, r *caseRun) error {
	for {
		var c *pb.Case
		err := d.do(ctx, r.holder, func(ctx context.Context, cl pb.CaseServiceClient) error {
			var err error
			c, err = cl.GetCase(ctx, &pb.GetCaseRequest{CaseId: r.id, Consistency: pb.Consistency_CONSISTENCY_LINEARIZABLE})
			return err
		})
		switch {
		case err == nil && c.Holder == r.holder.name:
			return nil
		case err == nil, status.Code(err) == codes.NotFound:
		default:
			return fmt.Errorf("wait for %s to hold it: %w", r.holder.name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s never held it: %w", r.holder.name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sample reads cases at random nodes on their way (linearizable, so a
// group's answers may never go back) and checks each copy is a consistent
// prefix: versions never decrease per node and the history is dense.
func (d *driver) sample(stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-stop; cancel() }()
	for ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
		d.lmu.Lock()
		n := len(d.live)
		var lc liveCase
		if n > 0 {
			lc = d.live[rand.IntN(n)]
		}
		d.lmu.Unlock()
		if lc.r == nil {
			continue
		}
		r, id := lc.r, lc.id
		path := d.path(r.holder)
		g := path[rand.IntN(len(path))]
		var c *pb.Case
		err := d.do(ctx, g, func(ctx context.Context, cl pb.CaseServiceClient) error {
			var err error
			c, err = cl.GetCase(ctx, &pb.GetCaseRequest{CaseId: id, Consistency: pb.Consistency_CONSISTENCY_LINEARIZABLE})
			return err
		})
		if err != nil {
			continue // not there yet, or stopping
		}
		d.reads.Add(1)
		if msg := historyDense(c); msg != "" {
			d.violate(kOrder, "case %s at %s (sampled): %s", id, g.name, msg)
		}
		r.mu.Lock()
		prev := r.seen[g.name]
		if c.Version < prev {
			d.violate(kOrder, "case %s at %s went back from version %d to %d", id, g.name, prev, c.Version)
		}
		r.seen[g.name] = max(prev, c.Version)
		r.mu.Unlock()
	}
}

// path lists the nodes that must have a case held by holder and reported at
// the root: the holder and its ancestors.
func (d *driver) path(holder *group) []*group {
	var out []*group
	for g := holder; g != nil; g = g.parent {
		out = append(out, g)
	}
	return out
}

// expected lists the nodes that must have the case: holder, its ancestors
// and the reporter.
func (d *driver) expected(r *caseRun) map[string]bool {
	want := map[string]bool{r.reporter.name: true}
	for _, g := range d.path(r.holder) {
		want[g.name] = true
	}
	return want
}

// historyDense checks versions 1..n with n the case's version, each
// request id once.
func historyDense(c *pb.Case) string {
	if uint64(len(c.History)) != c.Version {
		return fmt.Sprintf("version %d with %d history entries", c.Version, len(c.History))
	}
	ids := map[string]bool{}
	for i, h := range c.History {
		if h.Version != uint64(i+1) {
			return fmt.Sprintf("history[%d] has version %d", i, h.Version)
		}
		if h.RequestId == "" || ids[h.RequestId] {
			return fmt.Sprintf("history[%d]: request id %q empty or repeated", i, h.RequestId)
		}
		ids[h.RequestId] = true
	}
	return ""
}

func (d *driver) readExtra() ([]*caseRun, error) {
	if d.o.extra == "" {
		return nil, nil
	}
	f, err := os.Open(d.o.extra)
	if err != nil {
		return nil, fmt.Errorf("--extra: %w", err)
	}
	defer f.Close()
	var out []*caseRun
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) == 0 {
			continue
		}
		if len(fs) != 3 || d.byName[fs[1]] == nil || d.byName[fs[2]] == nil {
			return nil, fmt.Errorf("--extra: bad line %q: want ID HOLDER REPORTER with nodes of the chain", sc.Text())
		}
		out = append(out, &caseRun{n: -1, id: fs[0], holder: d.byName[fs[1]], reporter: d.byName[fs[2]]})
	}
	return out, sc.Err()
}

// waitSettled waits until every link is drained: on each node's leader no
// entry is unacknowledged, and each receiver's high-water mark equals the
// last sequence number its neighbour queued.
func (d *driver) waitSettled() {
	deadline := time.Now().Add(d.o.settle)
	var why string
	for time.Now().Before(deadline) {
		ok, w := d.settled()
		if ok {
			return
		}
		why = w
		time.Sleep(100 * time.Millisecond)
	}
	d.violate(kLinks, "links not drained after %v: %s", d.o.settle, why)
}

func (d *driver) settled() (bool, string) {
	queued := map[[2]string]uint64{}
	received := map[[2]string]uint64{}
	for _, g := range d.o.nodes {
		st, err := d.leaderLinks(g)
		if err != nil {
			return false, err.Error()
		}
		for _, l := range st.Links {
			if !l.Relaying {
				return false, fmt.Sprintf("%s→%s: the leader does not relay", g.name, l.Peer)
			}
			if l.LagEntries != 0 {
				return false, fmt.Sprintf("%s→%s: %d entries unacknowledged (last error %q)", g.name, l.Peer, l.LagEntries, l.LastError)
			}
			queued[[2]string{g.name, l.Peer}] = l.OutLastSeq
			received[[2]string{l.Peer, g.name}] = l.InHighWater
		}
	}
	for k, q := range queued {
		if _, ok := d.byName[k[1]]; !ok {
			continue // a neighbour outside the chain under test
		}
		if received[k] != q {
			return false, fmt.Sprintf("%s→%s: queued %d, received %d", k[0], k[1], q, received[k])
		}
	}
	return true, ""
}

// leaderLinks asks the node's leader for its links.
func (d *driver) leaderLinks(g *group) (*pb.FederationStatusResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for i, cl := range g.cluster {
		st, err := cl.GetStatus(ctx, &pb.GetStatusRequest{})
		if err != nil || st.State != "Leader" {
			continue
		}
		fs, err := g.cluster[i].FederationStatus(ctx, &pb.FederationStatusRequest{})
		if err != nil {
			return nil, fmt.Errorf("%s: federation status: %w", g.name, err)
		}
		return fs, nil
	}
	return nil, fmt.Errorf("%s: no replica says it leads", g.name)
}

// checkCopies compares every copy of every case with the holder's.
func (d *driver) checkCopies(all []*caseRun) {
	deadline := time.Now().Add(d.o.settle)
	for _, r := range all {
		if r.id == "" {
			continue // never reported: already a violation
		}
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		d.checkCase(ctx, r)
		cancel()
	}
}

func (d *driver) checkCase(ctx context.Context, r *caseRun) {
	var held *pb.Case
	err := d.do(ctx, r.holder, func(ctx context.Context, cl pb.CaseServiceClient) error {
		var err error
		held, err = cl.GetCase(ctx, &pb.GetCaseRequest{CaseId: r.id, Consistency: pb.Consistency_CONSISTENCY_LINEARIZABLE})
		return err
	})
	if err != nil {
		d.violate(kCopies, "case %s: holder %s: %v", r.id, r.holder.name, err)
		return
	}
	held.AllowedActions = nil
	if held.Holder != r.holder.name {
		d.violate(kCopies, "case %s: %s has it with holder %q", r.id, r.holder.name, held.Holder)
	}
	if msg := historyDense(held); msg != "" {
		d.violate(kCopies, "case %s at its holder %s: %s", r.id, r.holder.name, msg)
	}
	if r.final != nil {
		if !proto.Equal(held, r.final) {
			d.violate(kCopies, "case %s: the holder's copy differs from the answer to the last write:\n%v\nwant\n%v", r.id, held, r.final)
		}
		var got []string
		for _, h := range held.History {
			got = append(got, h.RequestId)
		}
		if !slices.Equal(got, r.rids) {
			d.violate(kCopies, "case %s: history request ids %v, want exactly %v in that order", r.id, got, r.rids)
		}
		if held.State != pb.State_STATE_CLOSED {
			d.violate(kCopies, "case %s: %s at the holder, want closed", r.id, held.State)
		}
		r.mu.Lock()
		for node, v := range r.seen {
			if v > held.Version {
				d.violate(kCopies, "case %s: %s showed version %d, past the final %d", r.id, node, v, held.Version)
			}
		}
		r.mu.Unlock()
	}
	want := d.expected(r)
	for _, g := range d.o.nodes {
		if !want[g.name] {
			// No copy where the case never had to go.
			err := d.do(ctx, g, func(ctx context.Context, cl pb.CaseServiceClient) error {
				_, err := cl.GetCase(ctx, &pb.GetCaseRequest{CaseId: r.id, Consistency: pb.Consistency_CONSISTENCY_LINEARIZABLE})
				return err
			})
			if status.Code(err) != codes.NotFound {
				d.violate(kCopies, "case %s held by %s: %s answers %v, want NotFound", r.id, r.holder.name, g.name, err)
			}
			continue
		}
		// Every replica of every node on the way converges on the holder's
		// copy, read from its own store.
		for i := range g.addrs {
			var c *pb.Case
			var err error
			for {
				cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				c, err = g.cases[i].GetCase(cctx, &pb.GetCaseRequest{CaseId: r.id, Consistency: pb.Consistency_CONSISTENCY_STALE})
				cancel()
				d.reads.Add(1)
				if err == nil {
					c.AllowedActions = nil
					if proto.Equal(c, held) {
						break
					}
				}
				if ctx.Err() != nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			switch {
			case err != nil:
				d.violate(kCopies, "case %s: %s replica %s: %v", r.id, g.name, g.addrs[i], err)
			case !proto.Equal(c, held):
				d.violate(kCopies, "case %s: %s replica %s has holder %q epoch %d version %d %s, the holder %s has epoch %d version %d %s",
					r.id, g.name, g.addrs[i], c.Holder, c.HolderEpoch, c.Version, c.State, r.holder.name, held.HolderEpoch, held.Version, held.State)
			}
		}
	}
}

// checkLists checks each replica holds exactly the cases that had to reach
// its node: none missing, none made twice.
func (d *driver) checkLists(all []*caseRun) {
	want := map[string]map[string]bool{}
	for _, g := range d.o.nodes {
		want[g.name] = map[string]bool{}
	}
	for _, r := range all {
		if r.id == "" {
			continue
		}
		for n := range d.expected(r) {
			want[n][r.id] = true
		}
	}
	for _, g := range d.o.nodes {
		for i, cl := range g.cases {
			ids, err := listAll(cl)
			if err != nil {
				d.violate(kLists, "%s replica %s: list: %v", g.name, g.addrs[i], err)
				continue
			}
			seen := map[string]bool{}
			for _, id := range ids {
				if seen[id] {
					d.violate(kLists, "%s replica %s lists %s twice", g.name, g.addrs[i], id)
				}
				seen[id] = true
				if !want[g.name][id] {
					d.violate(kLists, "%s replica %s has case %s that never had to go there", g.name, g.addrs[i], id)
				}
			}
			for id := range want[g.name] {
				if !seen[id] {
					d.violate(kLists, "%s replica %s lacks case %s", g.name, g.addrs[i], id)
				}
			}
		}
	}
}

func listAll(cl pb.CaseServiceClient) ([]string, error) {
	var ids []string
	token := ""
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := cl.ListCases(ctx, &pb.ListCasesRequest{PageSize: 500, PageToken: token, Consistency: pb.Consistency_CONSISTENCY_STALE})
		cancel()
		if err != nil {
			return nil, err
		}
		for _, c := range resp.Cases {
			ids = append(ids, c.Id)
		}
		if resp.NextPageToken == "" {
			return ids, nil
		}
		token = resp.NextPageToken
	}
}

func (d *driver) report(runs, extra []*caseRun, walked, settled, converged time.Duration) {
	var lat []time.Duration
	perHolder := map[string]int{}
	for _, r := range runs {
		lat = append(lat, r.closed.Sub(r.reported))
		perHolder[r.holder.name]++
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration {
		return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(time.Millisecond)
	}
	var holders []string
	for _, g := range d.o.nodes {
		holders = append(holders, fmt.Sprintf("%s=%d", g.name, perHolder[g.name]))
	}
	var codesSeen []string
	var total int64
	d.retries.Range(func(k, v any) bool {
		n := v.(*atomic.Int64).Load()
		total += n
		codesSeen = append(codesSeen, fmt.Sprintf("%s=%d", k, n))
		return true
	})
	sort.Strings(codesSeen)
	fmt.Printf("cityhubfedcheck: %d cases walked to closure in %v (held by %s), %d further cases checked\n",
		len(runs), walked.Round(time.Millisecond), strings.Join(holders, " "), len(extra))
	fmt.Printf("cityhubfedcheck: report→close p50 %v p99 %v max %v; retried calls %d (%s); %d reads checked\n",
		pct(0.5), pct(0.99), lat[len(lat)-1].Round(time.Millisecond), total, strings.Join(codesSeen, " "), d.reads.Load())
	fmt.Printf("cityhubfedcheck: links drained %v after the last close; every copy checked against the holder's in %v more\n",
		settled.Round(time.Millisecond), (converged - settled).Round(time.Millisecond))
	fmt.Println("cityhubfedcheck: 1 passed, 0 failed")
}
