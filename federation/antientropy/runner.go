package antientropy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/cityhub/cityhub/federation/topology"
	"github.com/cityhub/cityhub/federation/wire"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/node"
)

// Options configure a Runner.
type Options struct {
	Self     string
	Topology *topology.Topology
	Local    node.Leader
	// Dial returns the node's own gRPC options for calling a neighbour
	// (transport credentials), as for the relay.
	Dial func(peer string) []grpc.DialOption
	// RetryMin and RetryMax bound the follow-up's backoff, and RetryMin
	// and ReconnectMax gRPC's reconnect backoff (wire.DialOptions), as for
	// the relay.
	RetryMin, RetryMax, ReconnectMax time.Duration
	// Interval is the period of the run the node makes, as the parent, with
	// each of its children while it leads (federation.antientropy_interval);
	// 0 disables it (runs on demand only).
	Interval time.Duration
	// Buckets fixes the number of buckets (a power of two up to
	// MaxBuckets); 0 chooses it from the number of shared cases.
	Buckets uint32
	// CallTimeout bounds one call to a neighbour.
	CallTimeout time.Duration
	Logger      *slog.Logger
	// Metrics, when nil, are made by New (see Runner.Metrics).
	Metrics *Metrics
	// Peer, when set, replaces the gRPC client of a neighbour (tests).
	Peer func(name string) Peer
}

// Runner compares this node with its neighbours and repairs what differs:
// periodically with its children (the parent initiates each link, so a
// link is compared once a period), and on demand (api.AntiEntropy) with
// one neighbour or all. It works on the group's leader only, one run at a
// time.
type Runner struct {
	opts  Options
	log   *slog.Logger
	peers map[string]Peer
	conns []*grpcPeer
	sem   chan struct{}

	mu   sync.Mutex
	hint map[string]uint64 // shared count of the last comparison, per peer

	kicks *kicks // runs asked for after a restore (catchup.go)
}

// New builds the runner of opts.Self.
func New(opts Options) (*Runner, error) {
	if !opts.Topology.Has(opts.Self) {
		return nil, errors.New("antientropy: self is not in the topology")
	}
	if opts.Buckets != 0 && !ValidBuckets(opts.Buckets) {
		return nil, fmt.Errorf("antientropy: %d buckets: want a power of two up to %d", opts.Buckets, MaxBuckets)
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 2 * time.Minute
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = 50 * time.Millisecond
	}
	if opts.RetryMax < opts.RetryMin {
		opts.RetryMax = max(opts.RetryMin, 5*time.Second)
	}
	if opts.ReconnectMax <= 0 {
		opts.ReconnectMax = 250 * time.Millisecond
	}
	opts.ReconnectMax = min(opts.ReconnectMax, opts.RetryMax)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics()
	}
	r := &Runner{
		opts: opts, log: opts.Logger.With("component", "antientropy", "node", opts.Self),
		peers: map[string]Peer{}, sem: make(chan struct{}, 1), hint: map[string]uint64{}, kicks: newKicks(),
	}
	for _, name := range opts.Topology.Neighbours(opts.Self) {
		if opts.Peer != nil {
			r.peers[name] = opts.Peer(name)
			continue
		}
		n, _ := opts.Topology.Node(name)
		var own []grpc.DialOption
		if opts.Dial != nil {
			own = opts.Dial(name)
		}
		p := newGRPCPeer(name, n.Replicas, wire.DialOptions(opts.RetryMin, opts.ReconnectMax, own...), opts.CallTimeout)
		r.peers[name], r.conns = p, append(r.conns, p)
	}
	return r, nil
}

// Metrics are the runner's collectors.
func (r *Runner) Metrics() *Metrics { return r.opts.Metrics }

// Lead runs the periodic comparison with the children, and the runs a
// restore or the relay asks for (catchup.go), until ctx ends. It is a
// leader job (node.AddLeaderJob): it runs on the leader of a settled term
// only, and its context ends with the term (and a run in progress with
// it).
func (r *Runner) Lead(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.followUp(ctx) }()
	if r.opts.Interval > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); r.loop(ctx) }()
	}
	wg.Wait()
}

// Close closes the connections, once Lead has returned.
func (r *Runner) Close() {
	for _, p := range r.conns {
		p.close()
	}
}

func (r *Runner) loop(ctx context.Context) {
	t := time.NewTicker(r.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var kids []string
		for _, c := range r.opts.Topology.Children(r.opts.Self) {
			kids = append(kids, c.Name)
		}
		if len(kids) == 0 {
			return // a leaf initiates nothing
		}
		if _, err := r.Run(ctx, kids, false); err != nil && ctx.Err() == nil {
			r.log.Warn("periodic anti-entropy", "error", err)
		}
	}
}

// AntiEntropy implements api.AntiEntropy: compare with req.Peer (or every
// neighbour) now, and repair unless req.DryRun.
func (r *Runner) AntiEntropy(ctx context.Context, req *pb.AntiEntropyRequest) (*pb.AntiEntropyResponse, error) {
	peers := r.opts.Topology.Neighbours(r.opts.Self)
	if req.GetPeer() != "" {
		if !r.opts.Topology.IsNeighbour(r.opts.Self, req.Peer) {
			return nil, status.Errorf(codes.InvalidArgument, "peer: %q is neither the parent nor a child of %q (neighbours: %v)", req.Peer, r.opts.Self, peers)
		}
		peers = []string{req.Peer}
	}
	return r.Run(ctx, peers, req.GetDryRun())
}

// Run compares this node with each of peers (neighbours), then, unless
// dryRun, repairs: first this node's own copies from every link (so a copy
// damaged here is fixed before it could be sent anywhere), then each
// neighbour's, decided again against this node's copies as they are now.
// A link that fails reports its error and the others go on.
func (r *Runner) Run(ctx context.Context, peers []string, dryRun bool) (*pb.AntiEntropyResponse, error) {
	if !r.opts.Local.IsLeader() {
		return nil, fmt.Errorf("anti-entropy runs on the leader: %w", node.ErrNotLeader)
	}
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-r.sem }()

	st := r.opts.Local.Store()
	var comps []*comparison
	for _, name := range peers {
		l, err := newLink(r.opts.Topology, r.opts.Self, name)
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		r.mu.Lock()
		hint := r.hint[name]
		r.mu.Unlock()
		comps = append(comps, newComparison(st, l, r.peers[name], r.opts.Buckets, hint))
	}
	ok := make([]bool, len(comps))
	for i, c := range comps {
		if err := c.find(ctx); err != nil {
			c.rep.Error = err.Error()
			continue
		}
		ok[i] = true
	}
	if !dryRun {
		r.pullAll(ctx, comps, ok)
		for i, c := range comps {
			if !ok[i] {
				continue
			}
			n, err := c.push(ctx)
			c.rep.Repaired += n
			if err != nil {
				c.rep.Error = err.Error()
			}
		}
	}
	resp := &pb.AntiEntropyResponse{}
	for i, c := range comps {
		r.opts.Metrics.observe(c.rep)
		if ok[i] {
			r.mu.Lock()
			r.hint[c.l.peer] = c.rep.SharedHere
			r.mu.Unlock()
		}
		lvl := slog.LevelDebug
		if c.rep.Error != "" || c.rep.MissingHere+c.rep.MissingThere+c.rep.Divergent+c.rep.Extra > 0 {
			lvl = slog.LevelInfo
		}
		r.log.Log(ctx, lvl, "anti-entropy", "peer", c.l.peer, "dry_run", dryRun, "shared_here", c.rep.SharedHere, "shared_there", c.rep.SharedThere,
			"buckets", c.rep.Buckets, "differing", c.rep.BucketsDiffering, "missing_here", c.rep.MissingHere, "missing_there", c.rep.MissingThere,
			"divergent", c.rep.Divergent, "extra", c.rep.Extra, "repaired", c.rep.Repaired, "seconds", c.rep.Seconds, "rounds", c.phases,
			"bytes_sent", c.rep.BytesSent, "bytes_received", c.rep.BytesReceived, "error", c.rep.Error)
		resp.Links = append(resp.Links, c.rep)
	}
	return resp, nil
}

// pull is one repair of this node's own copy, chosen among the links.
type pull struct {
	c     *comparison
	id    string
	write *pb.Case // nil: drop
	v     Version  // the standing copy's version
	auth  bool     // it comes from the end nearer the holder
}

// better reports whether p should be applied rather than q when two links
// disagree on a copy of this node: the newer standing copy, then a write
// over a drop, then the one from the end nearer the holder.
func (p pull) better(q pull) bool {
	switch {
	case p.v != q.v && (p.v.Newer(q.v) || q.v.Newer(p.v)):
		return p.v.Newer(q.v)
	case (p.write != nil) != (q.write != nil):
		return p.write != nil
	default:
		return p.auth && !q.auth
	}
}

// pullAll applies, through this group's log, what every link found this
// node should change in its own copies: one RepairCases per chunk, from the
// neighbour whose copy it takes.
func (r *Runner) pullAll(ctx context.Context, comps []*comparison, ok []bool) {
	best := map[string]pull{}
	var order []string
	for i, c := range comps {
		if !ok[i] {
			continue
		}
		for _, f := range c.findings {
			if f.d.WinnerHere || f.d.Fix == FixNone {
				continue
			}
			p := pull{c: c, id: f.id, v: f.theirs.Version, auth: !f.d.AuthHere}
			if f.d.Fix == FixWrite {
				p.write = f.theirCop
			}
			q, seen := best[f.id]
			if !seen {
				order = append(order, f.id)
			}
			if !seen || p.better(q) {
				best[f.id] = p
			}
		}
	}
	for i, c := range comps {
		if !ok[i] {
			continue
		}
		var batch []pull
		for _, id := range order {
			if p := best[id]; p.c == c {
				batch = append(batch, p)
			}
		}
		if len(batch) == 0 {
			continue
		}
		err := c.timed(func() error {
			n, err := r.applyPulls(ctx, c.l.peer, batch)
			c.rep.Repaired += n
			return err
		})
		if err != nil {
			c.rep.Error = err.Error()
			ok[i] = false
		}
	}
}

func (r *Runner) applyPulls(ctx context.Context, from string, batch []pull) (uint32, error) {
	var applied uint32
	rc := &pb.RepairCases{From: from}
	size := 0
	flush := func() error {
		n := len(rc.Cases) + len(rc.Drop)
		if n == 0 {
			return nil
		}
		cctx, cancel := context.WithTimeout(ctx, r.opts.CallTimeout)
		res, err := r.opts.Local.ApplyLocal(cctx, &pb.Command{Body: &pb.Command_Repair{Repair: rc}})
		cancel()
		if err != nil {
			return fmt.Errorf("apply repairs from %s: %w", from, err)
		}
		applied += uint32(n - res.Skipped)
		rc, size = &pb.RepairCases{From: from}, 0
		return nil
	}
	for _, p := range batch {
		if p.write != nil {
			rc.Cases = append(rc.Cases, p.write)
			size += proto.Size(p.write)
		} else {
			rc.Drop = append(rc.Drop, p.id)
			size += len(p.id)
		}
		if len(rc.Cases)+len(rc.Drop) >= repairPerCall || size >= repairBytes {
			if err := flush(); err != nil {
				return applied, err
			}
		}
	}
	return applied, flush()
}
