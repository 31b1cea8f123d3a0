package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/auth"
)

// Authenticator turns a bearer credential into a principal (auth.Authenticator).
type Authenticator interface {
	Authenticate(ctx context.Context, cred string) (*auth.Principal, error)
}

// guard authenticates every call and authorizes it by the rules of
// tiers/auth. With no authenticator (auth.disabled, tests and development
// on loopback) every call passes and callers are who their requests say.
type guard struct {
	authn  Authenticator
	log    *slog.Logger
	failed *prometheus.CounterVec // authentication failures by method
	denied *prometheus.CounterVec // authorization refusals by method and permission
}

func newGuard(a Authenticator, log *slog.Logger, reg prometheus.Registerer) *guard {
	g := &guard{
		authn: a, log: log.With("component", "auth"),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_auth_failures_total", Help: "Calls refused because the caller did not authenticate, by method.",
		}, []string{"method"}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_auth_denied_total", Help: "Calls refused because the principal lacks a permission, by method and permission.",
		}, []string{"method", "permission"}),
	}
	reg.MustRegister(g.failed, g.denied)
	return g
}

// on reports whether authentication is enforced.
func (g *guard) on() bool { return g != nil && g.authn != nil }

// publicMethods need no credentials (they are how one gets them, or say
// only that the node is alive).
var publicMethods = map[string]bool{
	pb.AuthService_Login_FullMethodName:   true,
	pb.AuthService_Refresh_FullMethodName: true,
	"/grpc.health.v1.Health/Check":        true,
	"/grpc.health.v1.Health/Watch":        true,
	"/grpc.health.v1.Health/List":         true,
}

// errUnauthenticated is all a caller learns about a failed authentication.
var errUnauthenticated = status.Error(codes.Unauthenticated, "authentication required: send \"authorization: Bearer <token or API key>\" (cityhubctl login)")

// errReplicaBehind is what a caller learns when this replica has not yet
// applied the login of its token (the reason, which may name an account,
// stays in the log).
var errReplicaBehind = toStatus(fmt.Errorf("%w: try another replica, or again in a moment", auth.ErrReplicaBehind))

// authenticate puts the caller's principal into ctx.
func (g *guard) authenticate(ctx context.Context, method, cred string) (context.Context, error) {
	p, err := g.authn.Authenticate(ctx, cred)
	if errors.Is(err, auth.ErrReplicaBehind) {
		// The token is good for all this replica can tell: it has not yet
		// applied the login. Unavailable sends the caller to another
		// replica (tiers/client, REST 503) instead of to the login page.
		g.log.Info("token from a login this replica has not applied yet", "method", method, "reason", err, "peer", peerAddr(ctx))
		return ctx, errReplicaBehind
	}
	if err != nil {
		g.failed.WithLabelValues(method).Inc()
		g.log.Warn("authentication failed", "method", method, "reason", err, "peer", peerAddr(ctx))
		return ctx, errUnauthenticated
	}
	return auth.WithPrincipal(ctx, p), nil
}

// bearer extracts the credential of an authorization header value.
func bearer(v string) string {
	if t, ok := strings.CutPrefix(v, "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	if t, ok := strings.CutPrefix(v, "bearer "); ok {
		return strings.TrimSpace(t)
	}
	return ""
}

func credFromMD(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if t := bearer(v); t != "" {
			return t
		}
	}
	return ""
}

// unary authenticates unary gRPC calls.
func (g *guard) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if !g.on() || publicMethods[info.FullMethod] {
		return h(ctx, req)
	}
	ctx, err := g.authenticate(ctx, info.FullMethod, credFromMD(ctx))
	if err != nil {
		return nil, err
	}
	return h(ctx, req)
}

// stream authenticates streaming gRPC calls (reflection, health watch).
func (g *guard) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if !g.on() || publicMethods[info.FullMethod] {
		return h(srv, ss)
	}
	ctx, err := g.authenticate(ss.Context(), info.FullMethod, credFromMD(ss.Context()))
	if err != nil {
		return err
	}
	return h(srv, &principalStream{ServerStream: ss, ctx: ctx})
}

type principalStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *principalStream) Context() context.Context { return s.ctx }

// publicPaths are the REST paths that need no credentials.
var publicPaths = map[string]bool{
	"/v1/auth/login":   true,
	"/v1/auth/refresh": true,
}

// http authenticates REST calls under /v1/ (health, readiness, metrics and
// the OpenAPI document are served outside it).
func (g *guard) http(h http.Handler) http.Handler {
	if !g.on() {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if publicPaths[req.URL.Path] {
			h.ServeHTTP(w, req)
			return
		}
		ctx, err := g.authenticate(req.Context(), req.Method+" "+routeOf(req.URL.Path), bearer(req.Header.Get("Authorization")))
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cityhub"`)
			writeError(w, status.Convert(err))
			return
		}
		h.ServeHTTP(w, req.WithContext(ctx))
	})
}

// routeOf is a path with its case id, account or key replaced, for labels.
func routeOf(path string) string {
	parts := strings.Split(path, "/")
	if len(parts) > 3 {
		if _, verb, ok := strings.Cut(parts[3], ":"); ok {
			parts[3] = "{id}:" + verb
		} else {
			parts[3] = "{id}"
		}
	}
	return strings.Join(parts, "/")
}

// principal returns the caller, or nil when authentication is off.
func (g *guard) principal(ctx context.Context) *auth.Principal {
	if !g.on() {
		return nil
	}
	p, _ := auth.FromContext(ctx)
	return p
}

// require checks that the caller may use perm (on c, when given). It
// answers PermissionDenied naming the permission, logs and counts the
// refusal. With authentication off it allows everything.
func (g *guard) require(ctx context.Context, perm auth.Permission, c *pb.Case) error {
	if !g.on() {
		return nil
	}
	p, ok := auth.FromContext(ctx)
	if !ok {
		return errUnauthenticated
	}
	err := auth.Authorize(p, perm, c)
	if err == nil {
		return nil
	}
	method := methodOf(ctx)
	g.denied.WithLabelValues(method, string(perm)).Inc()
	g.log.Warn("permission denied", "principal", p.ID, "role", p.Role.String(), "unit", p.Unit, "method", method, "permission", perm, "reason", err)
	return deniedStatus(perm, err)
}

func deniedStatus(perm auth.Permission, err error) error {
	var de *auth.DeniedError
	msg := err.Error()
	if errors.As(err, &de) {
		msg = de.Error()
	}
	st := status.New(codes.PermissionDenied, msg)
	if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: "MISSING_PERMISSION", Domain: "cityhub", Metadata: map[string]string{"permission": string(perm)}}); derr == nil {
		st = d
	}
	return st.Err()
}

// methodOf names the called method, over gRPC or REST.
func methodOf(ctx context.Context) string {
	if m, ok := runtime.RPCMethod(ctx); ok {
		return m
	}
	if m, ok := grpc.Method(ctx); ok && m != "" {
		return m
	}
	return "unknown"
}

// peerAddr is the caller's network address, for logs.
func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}
