// Package replica assembles one running replica of a tier node from its
// configuration: the catalogue, the raft node and the gRPC/REST API. It is
// what cmd/cityhubd runs and what the in-process cluster tests start and
// kill.
package replica

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/cityhub/cityhub/config"
	"github.com/cityhub/cityhub/federation/reconcile"
	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/api"
	"github.com/cityhub/cityhub/tiers/auth"
	"github.com/cityhub/cityhub/tiers/catalogue"
	"github.com/cityhub/cityhub/tiers/console"
	"github.com/cityhub/cityhub/tiers/evidence"
	"github.com/cityhub/cityhub/tiers/feed"
	"github.com/cityhub/cityhub/tiers/nearby"
	"github.com/cityhub/cityhub/tiers/node"
	"github.com/cityhub/cityhub/tiers/overdue"
	"github.com/cityhub/cityhub/tiers/raftlog"
	"github.com/cityhub/cityhub/tiers/store"
)

// Options beyond the configuration file.
type Options struct {
	Logger *slog.Logger
	// RaftLogLevel is the least level of raft's own records passed to
	// Logger (zero: info).
	RaftLogLevel slog.Level
	Clock        node.Clock // nil is the system clock
	// FederationDialer, when set, makes the connections to neighbours
	// (tests use it to cut links; nil dials TCP).
	FederationDialer func(ctx context.Context, addr string) (net.Conn, error)
	// Rejoin replaces this replica's data from its group (cityhubd
	// --rejoin): its state, raft log and snapshots are moved aside, it
	// starts empty, and it asks the members in raft.peers, on their
	// internal listeners, to take it back; the leader removes it and adds
	// it again, and raft sends it a snapshot.
	Rejoin bool
	// LogVersion is the log version this replica registers for the
	// version gate (0: this binary's); tests of a mixed-version group
	// set it lower (node.Config.LogVersion).
	LogVersion uint32
}

// Replica is a running node with its API.
type Replica struct {
	Config config.Config
	Node   *node.Node
	API    *api.Server
	// Internal serves the group's replicas (write forwarding) on
	// internal.addr.
	Internal *api.InternalServer
	peers    *api.Peers
	fed      *federation // nil outside a federation
	sweeper  *overdue.Sweeper
	// reconciler is nil outside a federation or without a responsibility
	// catalogue.
	reconciler *reconcile.Reconciler
	// retention removes evidence past evidence.retention (nil: kept for ever).
	retention *evidence.Retention
	feed      *feed.Hub
	log       *slog.Logger
}

// Start opens the node and serves its API. With raft.join set and no state
// on disk, it asks the listed members to add it.
func Start(ctx context.Context, cfg config.Config, opts Options) (*Replica, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	cat, err := loadCatalogue(cfg.Catalogue.Path)
	if err != nil {
		return nil, err
	}
	loc, err := time.LoadLocation(cfg.Node.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("node.time_zone: %w", err)
	}
	policy, err := cfg.LoadDeadlinePolicy()
	if err != nil {
		return nil, fmt.Errorf("deadlines.policy: %w", err)
	}
	schemes, err := cfg.LoadSchemes()
	if err != nil {
		return nil, fmt.Errorf("evaluation.schemes: %w", err)
	}
	gl, err := net.Listen("tcp", cfg.GRPC.Addr)
	if err != nil {
		return nil, fmt.Errorf("grpc.addr: %w", err)
	}
	hl, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		gl.Close()
		return nil, fmt.Errorf("http.addr: %w", err)
	}
	ip, err := newInternalPlane(cfg)
	if err != nil {
		gl.Close()
		hl.Close()
		return nil, err
	}
	il := ip.lis
	var (
		topo *topology.Topology
		own  *owners
	)
	if cfg.Federation.Enabled() {
		if topo, err = cfg.LoadTopology(); err != nil {
			return nil, fmt.Errorf("federation.topology: %w", err)
		}
		cat, err := loadOwnership(cfg, topo)
		if err != nil {
			return nil, err
		}
		if cat != nil {
			own = &owners{cat: cat, loc: loc}
		} else {
			logger.Warn("no responsibility catalogue configured (ownership.rules, ownership.components): cases get no owner, and owner lookups and reconciliation are refused",
				"node", cfg.Federation.Node)
		}
	}
	gr, err := loadGrids(cfg, topo)
	if err != nil {
		gl.Close()
		hl.Close()
		il.Close()
		return nil, err
	}
	if gr == nil {
		logger.Info("no grid geometry configured (geo.grids): reports need a grid code; locating a point and the grid maps are refused")
	}
	finder := nearby.New(nearby.Options{Radius: cfg.Cases.DuplicateRadiusM, DuplicateWindow: cfg.Cases.DuplicateWindow, RecurrenceWindow: cfg.Cases.RecurrenceWindow})
	dialOpts, err := peerDialOptions(cfg)
	if err != nil {
		gl.Close()
		hl.Close()
		return nil, err
	}
	peers := api.NewPeers(dialOpts...)
	peers.UseInternal(ip.dial)
	stamp := stampers{policy, finder}
	if own != nil {
		stamp = append(stamp, *own)
	}
	nc := node.Config{
		Stamper: stamp,
		ID:      cfg.Node.ID, DataDir: cfg.Node.DataDir,
		RaftAddr: cfg.Raft.Addr, Advertise: cfg.Raft.Advertise,
		GRPCAddr: gl.Addr().String(), HTTPAddr: hl.Addr().String(),
		Bootstrap: cfg.Raft.Bootstrap, Jurisdiction: cfg.Node.Jurisdiction, Tier: cfg.Node.Tier, Location: loc,
		HeartbeatTimeout: cfg.Raft.HeartbeatTimeout, ElectionTimeout: cfg.Raft.ElectionTimeout,
		LeaderLeaseTimeout: cfg.Raft.LeaderLeaseTimeout, CommitTimeout: cfg.Raft.CommitTimeout,
		SnapshotInterval: cfg.Raft.SnapshotInterval, SnapshotThreshold: cfg.Raft.SnapshotThreshold,
		TrailingLogs: cfg.Raft.TrailingLogs, MarkerSnapshotCases: cfg.Raft.MarkerSnapshotCases, MaxAppendEntries: cfg.Raft.MaxAppendEntries,
		ApplyTimeout: cfg.Raft.ApplyTimeout, JoinReports: cfg.Raft.JoinReports,
		Clock: opts.Clock, LogVersion: opts.LogVersion, Forwarder: peers, Logger: logger, RaftLogLevel: opts.RaftLogLevel,
		LogEngine: raftlog.Engine(cfg.Raft.LogEngine), RaftSegmentSize: cfg.Raft.WALSegmentSize,
		SkipVerify:   !cfg.Node.VerifyState,
		InternalAddr: ip.advertise, RaftTLS: ip.raft,
		DiskReserve: uint64(max(cfg.Limits.DiskReserveBytes, 0)), DiskReservePercent: cfg.Limits.DiskReservePercent,
		DiskCheckInterval: cfg.Limits.DiskCheckInterval,
		Feed:              store.FeedOptions{Window: cfg.Feed.Window, MaxAge: cfg.Feed.MaxAge},
	}
	for _, p := range cfg.Raft.Peers {
		nc.Peers = append(nc.Peers, node.Peer{ID: p.ID, RaftAddr: p.RaftAddr, GRPCAddr: p.GRPCAddr, HTTPAddr: p.HTTPAddr, InternalAddr: p.InternalAddr})
	}
	if opts.Rejoin {
		if err := rejoinable(cfg); err != nil {
			gl.Close()
			hl.Close()
			il.Close()
			peers.Close()
			return nil, err
		}
		nc.Rejoin = true
	}
	n, err := node.Open(nc)
	if err != nil {
		gl.Close()
		hl.Close()
		il.Close()
		peers.Close()
		return nil, err
	}
	finder.SetStore(n.Store())
	hub := feed.NewHub(n, feed.Options{Buffer: cfg.Feed.Buffer, MaxWatchers: cfg.Feed.MaxWatchers, Logger: logger})
	hub.Start()
	var fed *federation
	tlsCert, err := apiTLS(cfg)
	var authn *auth.Authenticator
	if err == nil {
		authn, err = newAuthenticator(cfg, n)
	}
	if err != nil {
		hub.Stop()
		_ = n.Shutdown()
		gl.Close()
		hl.Close()
		peers.Close()
		return nil, err
	}
	var units []*pb.CatalogueUnit
	if topo != nil {
		units = topo.UnitDirectory()
	}
	apiOpts := api.Options{Units: units, Auth: authn, Nearby: finder, Schemes: schemes, Replica: n, Catalogue: cat, Peers: peers, GRPCListener: gl, HTTPListener: hl, Logger: logger, Pprof: cfg.Debug.Pprof,
		GridPrefix: gridPrefix(cfg.Node.Tier, cfg.Node.Jurisdiction), Location: loc,
		Limits: apiLimits(cfg.Limits), Feed: hub, Collectors: collectors(cfg, policy.Calendar), WorkingTime: policy.Calendar,
		FeedOptions: api.FeedOptions{Group: cfg.Group(), Heartbeat: cfg.Feed.Heartbeat, PollMaxWait: cfg.Feed.PollMaxWait, WriteTimeout: cfg.Feed.WriteTimeout, BatchDelay: cfg.Feed.BatchDelay}}
	if tlsCert != nil {
		apiOpts.TLS = tlsCert.ServerTLS()
	}
	if cfg.Console.Enabled {
		if apiOpts.Console, err = console.New(); err != nil {
			hub.Stop()
			_ = n.Shutdown()
			gl.Close()
			hl.Close()
			peers.Close()
			return nil, fmt.Errorf("web console: %w", err)
		}
	}
	if gr != nil {
		apiOpts.Geo = gr
	}
	ev, err := newEvidence(ctx, cfg, n, logger)
	if err != nil {
		hub.Stop()
		_ = n.Shutdown()
		gl.Close()
		hl.Close()
		il.Close()
		peers.Close()
		return nil, err
	}
	apiOpts.Evidence, apiOpts.EvidenceMaxPerCase = ev, cfg.Evidence.MaxPerCase
	var rc *reconcile.Reconciler
	if cfg.Federation.Enabled() {
		if fed, err = startFederation(cfg, n, ev, logger, opts.FederationDialer); err != nil {
			hub.Stop()
			_ = n.Shutdown()
			gl.Close()
			hl.Close()
			il.Close()
			peers.Close()
			return nil, err
		}
		apiOpts.Federation = fed
		apiOpts.EvidenceFetcher, apiOpts.FederationNode = fed.evidence, cfg.Federation.Node
		if own != nil {
			apiOpts.Resolver = *own
			rc = startReconciler(cfg, n, topo, own, logger)
			apiOpts.Reconciler = rc
		}
	}
	srv, err := api.NewServer(apiOpts)
	var isrv *api.InternalServer
	if err == nil {
		isrv, err = api.NewInternalServer(api.InternalOptions{
			Replica: n, Catalogue: cat, GridPrefix: apiOpts.GridPrefix, Listener: il,
			TLS: ip.server, Group: ip.group, Logger: logger,
		})
	}
	if err != nil {
		n.StopLeaderJobs()
		if fed != nil {
			fed.close(false)
		}
		hub.Stop()
		_ = n.Shutdown()
		gl.Close()
		hl.Close()
		il.Close()
		peers.Close()
		return nil, err
	}
	srv.Serve()
	isrv.Serve()
	sweeper := overdue.NewSweeper(n, cfg.Federation.Node, cfg.Deadlines.SweepInterval, logger)
	n.AddLeaderJob("overdue", sweeper.Lead)
	var retention *evidence.Retention
	if cfg.Evidence.Retention > 0 {
		var now func() time.Time
		if opts.Clock != nil {
			now = opts.Clock.Now
		}
		retention = evidence.NewRetention(n, ev, cfg.Evidence.Retention, cfg.Evidence.RetentionInterval, now, logger)
		n.AddLeaderJob("evidence-retention", retention.Lead)
	}
	startFirstAdmin(cfg, n, logger)
	r := &Replica{Config: cfg, Node: n, API: srv, Internal: isrv, peers: peers, fed: fed, sweeper: sweeper, reconciler: rc, feed: hub, retention: retention,
		log: logger.With("component", "replica")}
	switch {
	case opts.Rejoin:
		if err := r.rejoin(ctx); err != nil {
			r.Kill()
			return nil, err
		}
	case len(cfg.Raft.Join) > 0:
		if err := r.join(ctx); err != nil {
			r.Kill()
			return nil, err
		}
	}
	return r, nil
}

func loadCatalogue(path string) (*catalogue.Catalogue, error) {
	if path == "" {
		return catalogue.Default(), nil
	}
	cat, err := catalogue.LoadFile(path)
	if err != nil {
		return nil, fmt.Errorf("catalogue.path: %w", err)
	}
	return cat, nil
}

// join asks each configured member in turn to add this node, until one
// (or the leader it forwards to) accepts or ctx ends. With authentication
// off it asks the members' public API (ClusterService.Join). With it on
// this replica has no user credentials: it asks on the internal listeners
// of the members listed in raft.peers (ForwardService.Join, the group's
// certificate admitting it, as for --rejoin), the ones raft.join names
// first; a follower answers that it does not lead and the next is asked.
func (r *Replica) join(ctx context.Context) error {
	req := &pb.JoinRequest{
		NodeId: r.Config.Node.ID, RaftAddr: r.Config.Raft.Advertise,
		GrpcAddr: r.API.GRPCAddr(), HttpAddr: r.API.HTTPAddr(),
		InternalAddr: r.Node.InternalAddr(),
	}
	if req.RaftAddr == "" {
		req.RaftAddr = r.Config.Raft.Addr
	}
	type member struct {
		name string // how the logs name it
		ask  func(ctx context.Context) error
	}
	var members []member
	if r.Config.Auth.Disabled {
		for _, addr := range r.Config.Raft.Join {
			members = append(members, member{addr, func(ctx context.Context) error {
				cl, err := r.peers.Cluster(addr)
				if err != nil {
					return err
				}
				_, err = cl.Join(ctx, req)
				return err
			}})
		}
	} else {
		for _, p := range joinPeers(r.Config) {
			members = append(members, member{p.ID + " (internal " + p.InternalAddr + ")", func(ctx context.Context) error {
				_, err := r.peers.Join(ctx, p.InternalAddr, req)
				return err
			}})
		}
	}
	var last error
	for attempt := 0; ; attempt++ {
		for _, m := range members {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := m.ask(cctx)
			cancel()
			if err == nil {
				r.log.Info("joined raft group", "via", m.name)
				return nil
			}
			last = err
			r.log.Warn("join attempt failed", "via", m.name, "error", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("join through %v: %w (last error: %w)", r.Config.Raft.Join, ctx.Err(), last)
		case <-time.After(time.Duration(min(attempt+1, 10)) * 200 * time.Millisecond):
		}
	}
}

// joinPeers are the members of raft.peers (not this replica) with an
// internal listener, the ones whose gRPC address raft.join lists first.
func joinPeers(cfg config.Config) []config.Peer {
	var named, others []config.Peer
	for _, p := range cfg.Raft.Peers {
		if p.ID == cfg.Node.ID || p.InternalAddr == "" {
			continue
		}
		if slices.Contains(cfg.Raft.Join, p.GRPCAddr) {
			named = append(named, p)
		} else {
			others = append(others, p)
		}
	}
	return append(named, others...)
}

// Stop drains the API and shuts the node down.
func (r *Replica) Stop(ctx context.Context) error {
	// The leader jobs (sweeper, retention, reconciler, relay,
	// anti-entropy, topology, first administrator) end first.
	r.Node.StopLeaderJobs()
	if r.fed != nil {
		r.fed.close(true)
	}
	r.API.Stop(ctx)
	r.Internal.Stop(ctx)
	r.feed.Stop()
	err := r.Node.Shutdown()
	r.peers.Close()
	return err
}

// Kill stops at once, dropping calls in flight: the in-process stand-in
// for SIGKILL (the stores still close, so the directory can be reopened).
func (r *Replica) Kill() {
	r.API.Kill() // first: a killed process answers nothing more
	r.Internal.Kill()
	r.Node.StopLeaderJobs()
	if r.fed != nil {
		r.fed.close(false)
	}
	r.feed.Stop()
	_ = r.Node.Shutdown()
	r.peers.Close()
}

// Feed is the replica's change feed.
func (r *Replica) Feed() *feed.Hub { return r.feed }

// Reconciler is the replica's reconciler (nil outside a federation or
// without a responsibility catalogue).
func (r *Replica) Reconciler() *reconcile.Reconciler { return r.reconciler }

// Retention is the replica's evidence retention (nil when evidence is kept
// for ever).
func (r *Replica) Retention() *evidence.Retention { return r.retention }

// Sweeper is the replica's overdue sweeper.
func (r *Replica) Sweeper() *overdue.Sweeper { return r.sweeper }

// FederationAddr is the federation listener's address ("" outside a
// federation).
func (r *Replica) FederationAddr() string {
	if r.fed == nil {
		return ""
	}
	return r.fed.Addr()
}

// FederationStatus describes the replica's links (nil outside a federation).
func (r *Replica) FederationStatus() (*pb.FederationStatusResponse, error) {
	if r.fed == nil {
		return nil, nil
	}
	return r.fed.Status()
}

// stampers runs every stamper in turn (deadlines, then recurrence).
type stampers []node.Stamper

func (s stampers) Stamp(now time.Time, cmd *pb.Command, read func(string) (*pb.Case, error)) {
	for _, st := range s {
		st.Stamp(now, cmd, read)
	}
}

// gridPrefix is the grid code prefix a node's jurisdiction covers. A city's
// 6-digit code (e.g. 320500) covers every district of the prefecture, whose
// codes share its first 4 digits; the lower tiers' codes are prefixes as
// they stand.
func gridPrefix(tier, jurisdiction string) string {
	if tier == config.TierCity && len(jurisdiction) >= 4 {
		return jurisdiction[:4]
	}
	return jurisdiction
}

// apiLimits are the API's limits from the configuration (limits.*).
func apiLimits(l config.LimitsConfig) api.Limits {
	return api.Limits{
		MaxRequestBytes: l.MaxRequestBytes, MaxHeaderBytes: l.MaxHeaderBytes,
		ReadHeaderTimeout: l.ReadHeaderTimeout, ReadTimeout: l.ReadTimeout, IdleTimeout: l.IdleTimeout,
		MaxConcurrent: l.MaxConcurrent, QueueWait: l.QueueWait,
		Rate: l.Rate, Burst: l.Burst, LoginRate: l.LoginRate, LoginBurst: l.LoginBurst,
	}
}
