package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/auth"
	"github.com/cityhub/cityhub/tiers/catalogue"
	"github.com/cityhub/cityhub/tiers/evaluation"
	"github.com/cityhub/cityhub/tiers/evidence"
)

// Options configure a Server.
type Options struct {
	Replica   Replica
	Catalogue *catalogue.Catalogue
	// Units is the federation's unit directory (nil outside one), served
	// with the catalogue.
	Units        []*pb.CatalogueUnit
	Peers        *Peers // shared with the node as its Forwarder
	GRPCListener net.Listener
	HTTPListener net.Listener
	Logger       *slog.Logger
	// Pprof serves Go's profiler under /debug/pprof/.
	Pprof bool
	// Console, when set, serves the web console (tiers/console) at / on
	// the REST listener: GET and HEAD of every path the API does not route.
	Console http.Handler
	// GridPrefix, when set, is the grid code prefix this node covers:
	// reports for grids outside it are refused.
	GridPrefix string
	// Schemes are the city's scoring schemes, by name, beside the presets.
	Schemes map[string]evaluation.Scheme
	// Nearby, when set, offers possible duplicates of a new report.
	Nearby Nearby
	// Geo, when set, is the grid register: reports with a location and no
	// grid code are located in it, and GeoService answers from it.
	Geo Geo
	// WorkingTime, when set, is the node's working calendar: case reads
	// carry the working time left to the stage deadline.
	WorkingTime WorkingTime
	// Federation, when set, gates writes on the topology being applied and
	// serves link status and lag metrics.
	Federation Federation
	// Location is the node's time zone (legacy import reads local times in it).
	Location *time.Location
	// Resolver, Reconciler and AntiEntropy serve OwnershipService; each may
	// be nil (the call then answers FailedPrecondition).
	Resolver    Resolver
	Reconciler  Reconciler
	AntiEntropy AntiEntropy
	// Auth authenticates callers; nil turns authentication off (callers
	// are who their requests say: tests and development on loopback).
	Auth *auth.Authenticator
	// TLS, when set, serves gRPC and REST over TLS.
	TLS *tls.Config
	// Limits bound requests, connections and callers (limits.go); the
	// zero value is no limit.
	Limits Limits
	// Feed, when set, serves the change feed (FeedService, SSE at
	// GET /v1/cases:watch) with FeedOptions.
	Feed        ChangeFeed
	FeedOptions FeedOptions
	// Collectors are further Prometheus collectors for /metrics (the
	// replica's: calendar, certificates, node info).
	Collectors []prometheus.Collector
	// Evidence keeps the photos and files of cases (nil: EvidenceService
	// answers FailedPrecondition); EvidenceFetcher reads those another
	// node of the federation stores; EvidenceMaxPerCase bounds one case's.
	Evidence           *evidence.Service
	EvidenceFetcher    EvidenceFetcher
	EvidenceMaxPerCase int
	// FederationNode is this node's name in the federation topology ("":
	// not federated).
	FederationNode string
}

// StreamWorkers is how many goroutines of the gRPC servers handle calls
// and stay for the next (calls beyond them get a goroutine of their own,
// as without workers). A goroutine started per call begins with a small
// stack and grows it through the handler's protobuf and raft calls
// (runtime.copystack was 8 % of a node's CPU under 64 clients); a worker
// keeps its grown stack.
const StreamWorkers = 256

// StreamWindow and ConnWindow are the HTTP/2 receive windows, for each call
// and each connection, of the client API, of the internal listener and of
// a replica's calls to its fellows (Peers). Set, they are static: without them
// gRPC sizes the windows from the bandwidth it estimates with a PING each
// time data arrives and no PING is out, which for a create (a request of
// a few hundred bytes) is a PING and its answer on every call, two more
// frames to write and to read on both sides (BENCHMARKS.md, "Update,
// 2026-12-07 22:40 UTC"). 1 MiB a call holds four of an evidence upload's
// 256 KiB pieces; 4 MiB a connection, many clients' reports in flight.
const (
	StreamWindow = 1 << 20
	ConnWindow   = 4 << 20
)

// Server serves one replica over gRPC and REST.
type Server struct {
	opts    Options
	log     *slog.Logger
	grpc    *grpc.Server
	http    *http.Server
	Metrics *Metrics
	// health is gRPC's health service, kept in step with readiness.
	health     *health.Server
	stopHealth chan struct{}
	stopOnce   sync.Once
}

// NewServer wires the services; Serve starts them.
func NewServer(opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Catalogue == nil {
		return nil, errors.New("api: a catalogue is required")
	}
	log := opts.Logger.With("component", "api")
	m := NewMetrics(opts.Replica, opts.Collectors...)
	var authn Authenticator
	if opts.Auth != nil {
		authn = opts.Auth
	}
	g := newGuard(authn, log, m.Registry)
	if opts.Evidence != nil && opts.Evidence.MaxBytes() > 0 {
		// The upload route takes evidence.max_bytes (and a multipart
		// form's few headers), not the API's body limit. gRPC uploads
		// stream in pieces under the message limit instead, so the
		// server's receive limit is not raised for every method.
		rm := map[string]int64{EvidenceRoute: opts.Evidence.MaxBytes() + 64<<10}
		for k, v := range opts.Limits.RouteMaxBytes {
			rm[k] = v
		}
		opts.Limits.RouteMaxBytes = rm
	}
	lim := newLimiter(opts.Limits, log, m.Registry)
	gopts := []grpc.ServerOption{
		// Concurrency before authentication, the caller's rate after it
		// (keyed by the principal it found).
		grpc.ChainUnaryInterceptor(m.UnaryInterceptor, recoverInterceptor(log), lim.unaryAdmit, g.unary, lim.unaryRate),
		grpc.ChainStreamInterceptor(m.StreamInterceptor, g.stream, lim.streamRate),
		grpc.NumStreamWorkers(StreamWorkers),
		grpc.StaticStreamWindowSize(StreamWindow), grpc.StaticConnWindowSize(ConnWindow),
	}
	gopts = append(gopts, lim.grpcOptions()...)
	if opts.TLS != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(opts.TLS)))
	}
	gs := grpc.NewServer(gopts...)
	cs := NewCaseServer(opts.Replica, opts.Catalogue, opts.Peers, log)
	cs.units = opts.Units
	cs.gridPrefix = opts.GridPrefix
	cs.fed = opts.Federation
	cs.nearby = opts.Nearby
	cs.geo = opts.Geo
	cs.work = opts.WorkingTime
	cs.schemes = opts.Schemes
	cs.g = g
	cl := NewClusterServer(opts.Replica, opts.Peers)
	cl.fed = opts.Federation
	cl.g = g
	cl.log = log.With("service", "cluster")
	as := &AuthServer{replica: opts.Replica, authn: opts.Auth, g: g, lim: lim, now: time.Now}
	pb.RegisterAuthServiceServer(gs, as)
	if opts.Federation != nil {
		m.Registry.MustRegister(newLinkCollector(opts.Federation))
	}
	useFederationAntiEntropy(&opts, m)
	pb.RegisterCaseServiceServer(gs, cs)
	pb.RegisterClusterServiceServer(gs, cl)
	own := newOwnershipServer(opts, log)
	own.g = g
	pb.RegisterOwnershipServiceServer(gs, own)
	geoSrv := &GeoServer{geo: opts.Geo, gridPrefix: opts.GridPrefix, g: g}
	pb.RegisterGeoServiceServer(gs, geoSrv)
	fs := newFeedServer(opts.Feed, opts.Replica, opts.FeedOptions, g, log)
	pb.RegisterFeedServiceServer(gs, fs)
	if opts.Feed != nil {
		registerFeedMetrics(m.Registry, opts.Feed)
	}
	ev := newEvidenceServer(opts, g, log, m.Registry)
	pb.RegisterEvidenceServiceServer(gs, ev)
	ds := newDashboardServer(opts, g)
	pb.RegisterDashboardServiceServer(gs, ds)
	// No ForwardService here: it takes raw commands from the group's
	// replicas only, on the internal listener (InternalServer).
	hs0 := health.NewServer()
	// NOT_SERVING until the first readiness check (Serve).
	for _, svc := range healthServices {
		hs0.SetServingStatus(svc, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	healthpb.RegisterHealthServer(gs, hs0)
	reflection.Register(gs)

	h, err := newGateway(context.Background(), gatewayServices{cs, cl, own, as, geoSrv, fs, ev, ds, opts.Console}, g, lim, opts.Replica, m, opts.Pprof)
	if err != nil {
		return nil, fmt.Errorf("build REST gateway: %w", err)
	}
	hs := &http.Server{Handler: h, TLSConfig: opts.TLS}
	lim.httpServer(hs)
	return &Server{opts: opts, log: log, grpc: gs, http: hs, Metrics: m, health: hs0, stopHealth: make(chan struct{})}, nil
}

// healthServices are the names gRPC health answers for: "" (the server)
// and each public service; all follow readiness.
var healthServices = []string{"", pb.CaseService_ServiceDesc.ServiceName, pb.ClusterService_ServiceDesc.ServiceName,
	pb.OwnershipService_ServiceDesc.ServiceName, pb.AuthService_ServiceDesc.ServiceName}

// healthEvery is how often gRPC health is brought in step with readiness.
const healthEvery = time.Second

// watchHealth keeps gRPC health in step with /readyz: SERVING exactly when
// a linearizable read would answer now on this replica (a load balancer
// or Kubernetes' grpc probe then sends calls only to replicas that can
// answer them).
func (s *Server) watchHealth() {
	t := time.NewTicker(healthEvery)
	defer t.Stop()
	last := healthpb.HealthCheckResponse_UNKNOWN
	for {
		st := healthpb.HealthCheckResponse_NOT_SERVING
		if ready, _ := readiness(s.opts.Replica); ready {
			st = healthpb.HealthCheckResponse_SERVING
		}
		if st != last {
			for _, svc := range healthServices {
				s.health.SetServingStatus(svc, st)
			}
			last = st
		}
		select {
		case <-s.stopHealth:
			return
		case <-t.C:
		}
	}
}

// stopWatchingHealth ends watchHealth and answers NOT_SERVING from now on.
func (s *Server) stopWatchingHealth() {
	s.stopOnce.Do(func() {
		close(s.stopHealth)
		s.health.Shutdown()
	})
}

// Serve starts serving on the listeners and returns at once.
func (s *Server) Serve() {
	go func() {
		if err := s.grpc.Serve(s.opts.GRPCListener); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.log.Error("gRPC server stopped", "error", err)
		}
	}()
	go func() {
		serve := s.http.Serve
		if s.opts.TLS != nil {
			serve = func(l net.Listener) error { return s.http.ServeTLS(l, "", "") }
		}
		if err := serve(s.opts.HTTPListener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("HTTP server stopped", "error", err)
		}
	}()
	go s.watchHealth()
	s.log.Info("serving", "grpc", s.opts.GRPCListener.Addr().String(), "http", s.opts.HTTPListener.Addr().String())
}

// Stop drains both servers, giving up when ctx ends.
func (s *Server) Stop(ctx context.Context) {
	s.stopWatchingHealth()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	_ = s.http.Shutdown(ctx)
	select {
	case <-done:
	case <-ctx.Done():
		s.grpc.Stop()
	}
}

// Kill stops both servers at once, dropping calls in flight (tests).
func (s *Server) Kill() {
	s.stopWatchingHealth()
	s.grpc.Stop()
	_ = s.http.Close()
}

// recoverInterceptor turns a panic in a handler into an Internal error, so
// no input can take a node down through the API.
func recoverInterceptor(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if p := recover(); p != nil {
				log.Error("handler panic", "method", info.FullMethod, "panic", p)
				err = toStatus(fmt.Errorf("internal error in %s", info.FullMethod))
			}
		}()
		return h(ctx, req)
	}
}

// GRPCAddr is the address the gRPC server listens on.
func (s *Server) GRPCAddr() string { return s.opts.GRPCListener.Addr().String() }

// HTTPAddr is the address the REST server listens on.
func (s *Server) HTTPAddr() string { return s.opts.HTTPListener.Addr().String() }
