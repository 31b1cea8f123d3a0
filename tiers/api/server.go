package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/auth"
	"github.com/cityhub/cityhub/tiers/catalogue"
	"github.com/cityhub/cityhub/tiers/evaluation"
)

// Options configure a Server.
type Options struct {
	Replica      Replica
	Catalogue    *catalogue.Catalogue
	Peers        *Peers // shared with the node as its Forwarder
	GRPCListener net.Listener
	HTTPListener net.Listener
	Logger       *slog.Logger
	// Pprof serves Go's profiler under /debug/pprof/.
	Pprof bool
	// GridPrefix, when set, is the grid code prefix this node covers:
	// reports for grids outside it are refused.
	GridPrefix string
	// Schemes are the city's scoring schemes, by name, beside the presets.
	Schemes map[string]evaluation.Scheme
	// Nearby, when set, offers possible duplicates of a new report.
	Nearby Nearby
	// Federation, when set, gates writes on the topology being applied and
	// serves link status and lag metrics.
	Federation Federation
	// Location is the node's time zone (legacy import reads local times in it).
	Location *time.Location
	// Jurisdiction is the node's jurisdiction code: the reporting node of
	// the cases it imports (their legacy ids are its own).
	Jurisdiction string
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
}

// Server serves one replica over gRPC and REST.
type Server struct {
	opts    Options
	log     *slog.Logger
	grpc    *grpc.Server
	http    *http.Server
	Metrics *Metrics
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
	m := NewMetrics(opts.Replica)
	var authn Authenticator
	if opts.Auth != nil {
		authn = opts.Auth
	}
	g := newGuard(authn, log, m.Registry)
	lim := newLimiter(opts.Limits, log, m.Registry)
	gopts := []grpc.ServerOption{
		// Concurrency before authentication, the caller's rate after it
		// (keyed by the principal it found).
		grpc.ChainUnaryInterceptor(m.UnaryInterceptor, recoverInterceptor(log), lim.unaryAdmit, g.unary, lim.unaryRate),
		grpc.ChainStreamInterceptor(g.stream, lim.streamRate),
	}
	gopts = append(gopts, lim.grpcOptions()...)
	if opts.TLS != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(opts.TLS)))
	}
	gs := grpc.NewServer(gopts...)
	cs := NewCaseServer(opts.Replica, opts.Catalogue, opts.Peers, log)
	cs.gridPrefix = opts.GridPrefix
	cs.fed = opts.Federation
	cs.nearby = opts.Nearby
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
	// No ForwardService here: it takes raw commands from the group's
	// replicas only, on the internal listener (InternalServer).
	healthpb.RegisterHealthServer(gs, health.NewServer())
	reflection.Register(gs)

	h, err := newGateway(context.Background(), gatewayServices{cs, cl, own, as}, g, lim, opts.Replica, m, opts.Pprof)
	if err != nil {
		return nil, fmt.Errorf("build REST gateway: %w", err)
	}
	hs := &http.Server{Handler: h, TLSConfig: opts.TLS}
	lim.httpServer(hs)
	return &Server{opts: opts, log: log, grpc: gs, http: hs, Metrics: m}, nil
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
	s.log.Info("serving", "grpc", s.opts.GRPCListener.Addr().String(), "http", s.opts.HTTPListener.Addr().String())
}

// Stop drains both servers, giving up when ctx ends.
func (s *Server) Stop(ctx context.Context) {
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
