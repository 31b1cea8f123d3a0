package api

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/auth"
)

// Limits bound what one request, one connection and one caller may take of
// the node (config.LimitsConfig; README, Configuration). A zero field is no
// limit. Every refusal happens before anything is proposed, answers
// 413 / 429 / ResourceExhausted (408 for a body that does not arrive in
// time) and is counted in cityhub_limit_refusals_total{kind, api}.
type Limits struct {
	// MaxRequestBytes bounds a REST body and a gRPC message.
	MaxRequestBytes int64
	// RouteMaxBytes overrides MaxRequestBytes for some calls: keys are REST
	// path prefixes ("/v1/evidence/") or gRPC full method names
	// ("/cityhub.v1.EvidenceService/Upload"). Uploads of evidence will set
	// theirs here.
	RouteMaxBytes map[string]int64
	// MaxHeaderBytes bounds a REST header and a gRPC call's metadata.
	MaxHeaderBytes int
	// ReadHeaderTimeout: a REST header, and a gRPC connection's handshake.
	ReadHeaderTimeout time.Duration
	// ReadTimeout: a whole REST request, body included.
	ReadTimeout time.Duration
	// IdleTimeout closes REST keep-alive and gRPC connections idle this long.
	IdleTimeout time.Duration
	// MaxConcurrent bounds unary gRPC calls and REST requests in flight
	// together; one more waits up to QueueWait for a slot.
	MaxConcurrent int
	QueueWait     time.Duration
	// Rate and Burst: requests a second per caller (the principal, or the
	// network address before or without authentication).
	Rate  float64
	Burst int
	// LoginRate and LoginBurst: failed logins a second per username and
	// address.
	LoginRate  float64
	LoginBurst int
}

// Refusal kinds, the kind label of cityhub_limit_refusals_total.
const (
	refuseBody        = "body"        // request larger than allowed
	refuseRate        = "rate"        // caller over its rate
	refuseConcurrency = "concurrency" // node at its in-flight limit
	refuseTimeout     = "timeout"     // body not received within the read timeout
	refuseLogin       = "login"       // too many failed logins for a username and address
)

// maxCallers bounds the token buckets kept (callers and logins each): past
// it the least recently seen caller's bucket is dropped.
const maxCallers = 1 << 16

// limiter enforces Limits on both APIs.
type limiter struct {
	cfg      Limits
	log      *slog.Logger
	refusals *prometheus.CounterVec
	inflight prometheus.Gauge
	slots    chan struct{} // nil: no concurrency limit
	callers  *buckets      // nil: no rate limit
	logins   *buckets      // nil: no login limit
}

func newLimiter(cfg Limits, log *slog.Logger, reg prometheus.Registerer) *limiter {
	l := &limiter{
		cfg: cfg, log: log.With("component", "limits"),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_limit_refusals_total",
			Help: "Requests refused by a limit (limits.*), by kind (body, rate, concurrency, timeout, login) and API (grpc, rest).",
		}, []string{"kind", "api"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cityhub_requests_in_flight", Help: "Unary gRPC calls and REST requests under /v1/ being served (limits.max_concurrent).",
		}),
		callers: newBuckets(cfg.Rate, cfg.Burst),
		logins:  newBuckets(cfg.LoginRate, cfg.LoginBurst),
	}
	if cfg.MaxConcurrent > 0 {
		l.slots = make(chan struct{}, cfg.MaxConcurrent)
	}
	for _, kind := range []string{refuseBody, refuseRate, refuseConcurrency, refuseTimeout, refuseLogin} {
		for _, api := range []string{"grpc", "rest"} {
			l.refusals.WithLabelValues(kind, api) // present at 0 from the start
		}
	}
	reg.MustRegister(l.refusals, l.inflight)
	return l
}

func (l *limiter) refused(kind, api string) { l.refusals.WithLabelValues(kind, api).Inc() }

// --- concurrency ---

// acquire takes an in-flight slot, waiting up to QueueWait for one. It
// reports false when none came free.
func (l *limiter) acquire(ctx context.Context) bool {
	if l.slots == nil {
		l.inflight.Inc()
		return true
	}
	select {
	case l.slots <- struct{}{}:
		l.inflight.Inc()
		return true
	default:
	}
	if l.cfg.QueueWait <= 0 {
		return false
	}
	t := time.NewTimer(l.cfg.QueueWait)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
		l.inflight.Inc()
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

func (l *limiter) release() {
	l.inflight.Dec()
	if l.slots != nil {
		<-l.slots
	}
}

func (l *limiter) busyStatus() *status.Status {
	return retryStatus(fmt.Sprintf("the node is serving its limit of %d requests at once (limits.max_concurrent); retry shortly", l.cfg.MaxConcurrent), time.Second)
}

// --- rates ---

// buckets are token buckets by key, with bounded memory: a bucket untouched
// long enough to have refilled is dropped (a new one is the same), and
// past maxCallers the least recently used goes.
type buckets struct {
	mu    sync.Mutex
	limit rate.Limit
	burst int
	idle  time.Duration
	max   int
	lru   *list.List // of *bucket, most recently used first
	byKey map[string]*list.Element
}

type bucket struct {
	key  string
	lim  *rate.Limiter
	last time.Time
}

// newBuckets returns nil (no limit) for a rate of 0.
func newBuckets(perSecond float64, burst int) *buckets {
	if perSecond <= 0 || burst < 1 {
		return nil
	}
	refill := time.Duration(float64(burst) / perSecond * float64(time.Second))
	return &buckets{limit: rate.Limit(perSecond), burst: burst, idle: refill + time.Second, max: maxCallers,
		lru: list.New(), byKey: map[string]*list.Element{}}
}

func (b *buckets) get(key string, now time.Time) *rate.Limiter {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.byKey[key]; ok {
		bk := e.Value.(*bucket)
		bk.last = now
		b.lru.MoveToFront(e)
		return bk.lim
	}
	for e := b.lru.Back(); e != nil; e = b.lru.Back() {
		bk := e.Value.(*bucket)
		if now.Sub(bk.last) < b.idle && b.lru.Len() < b.max {
			break
		}
		b.lru.Remove(e)
		delete(b.byKey, bk.key)
	}
	bk := &bucket{key: key, lim: rate.NewLimiter(b.limit, b.burst), last: now}
	b.byKey[key] = b.lru.PushFront(bk)
	return bk.lim
}

func (b *buckets) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lru.Len()
}

// take takes a token for key, or reports how long until the bucket has one.
func (b *buckets) take(key string) (ok bool, wait time.Duration) { return b.takeN(key, 1) }

// takeN takes n tokens for key (at most the burst), or reports how long
// until the bucket has them.
func (b *buckets) takeN(key string, n int) (ok bool, wait time.Duration) {
	now := time.Now()
	r := b.get(key, now).ReserveN(now, min(max(n, 1), b.burst))
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// check reports, without taking a token, whether key's bucket has one, and
// if not how long until it will.
func (b *buckets) check(key string) (ok bool, wait time.Duration) {
	now := time.Now()
	tokens := b.get(key, now).TokensAt(now)
	if tokens >= 1 {
		return true, 0
	}
	return false, time.Duration((1 - tokens) / float64(b.limit) * float64(time.Second))
}

// requestCost is how many requests a call counts as against the caller's
// rate: a batch of reports as many as it holds.
func requestCost(req any) int {
	if b, ok := req.(*pb.ReportCasesRequest); ok {
		return len(b.GetReports())
	}
	return 1
}

// rateExempt are the calls no rate limit applies to: health and readiness
// (probes), metrics (scrapes) and the OpenAPI document.
func rateExempt(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.Health/")
}

// callerKey names the caller a rate applies to: the authenticated
// principal, or its network address when authentication is off or has not
// happened (login, refresh).
func callerKey(ctx context.Context) string {
	if p, ok := auth.FromContext(ctx); ok && p != nil && p.ID != "" {
		return "principal " + p.ID
	}
	return "address " + callerHost(ctx)
}

// allow takes a token of the caller's bucket, or answers the refusal.
func (l *limiter) allow(ctx context.Context) *status.Status { return l.allowN(ctx, 1) }

// allowN takes n tokens (a call that stands for n requests: a batch of
// reports; at most the burst), or answers the refusal.
func (l *limiter) allowN(ctx context.Context, n int) *status.Status {
	if l.callers == nil {
		return nil
	}
	key := callerKey(ctx)
	if ok, wait := l.callers.takeN(key, n); !ok {
		l.log.Debug("rate limited", "caller", key, "retry_after", wait)
		return retryStatus(fmt.Sprintf("rate limit: %s may make %g requests a second (bursts of %d; limits.rate, limits.burst); retry in %s",
			key, l.cfg.Rate, l.cfg.Burst, wait.Round(time.Millisecond)), wait)
	}
	return nil
}

// loginAttempt admits a login of user from the caller's address, or
// answers ResourceExhausted when it failed too often. Only failures count:
// the caller reports one with failed. (Attempts at the same moment may all
// pass the check: a few more than the burst, bounded by the concurrency
// limit.)
func (l *limiter) loginAttempt(ctx context.Context, user string) (failed func(), err error) {
	if l == nil || l.logins == nil {
		return func() {}, nil
	}
	host := callerHost(ctx)
	key := user + "\x00" + host
	if ok, wait := l.logins.check(key); !ok {
		l.refused(refuseLogin, apiOf(ctx))
		l.log.Warn("login refused: too many failed attempts", "user", user, "peer", host, "retry_after", wait)
		return nil, retryStatus(fmt.Sprintf("too many failed logins for %q from this address (limits.login_rate); retry in %s",
			user, wait.Round(time.Second)), wait).Err()
	}
	return func() { l.logins.take(key) }, nil
}

// retryStatus is ResourceExhausted with when to retry.
func retryStatus(msg string, after time.Duration) *status.Status {
	st := status.New(codes.ResourceExhausted, msg)
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(after)}); err == nil {
		st = d
	}
	return st
}

// --- callers' addresses ---

type restCallerKey struct{}

// restCaller is what the REST middleware knows of a request: the caller's
// address and what happened to its body (read by the handler's goroutine
// only).
type restCaller struct {
	host     string
	limit    int64
	tooLarge bool
	timedOut bool
}

func restCallerOf(ctx context.Context) *restCaller {
	c, _ := ctx.Value(restCallerKey{}).(*restCaller)
	return c
}

// callerHost is the caller's IP address (no port: a client's connections
// share one rate).
func callerHost(ctx context.Context) string {
	if c := restCallerOf(ctx); c != nil {
		return c.host
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return hostOf(p.Addr.String())
	}
	return "unknown"
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// apiOf tells a REST request (served in process by the gateway) from a
// gRPC call.
func apiOf(ctx context.Context) string {
	if restCallerOf(ctx) != nil {
		return "rest"
	}
	return "grpc"
}

// --- body size ---

// bodyLimit is the largest body or message allowed for a REST path or gRPC
// method: the longest matching RouteMaxBytes prefix, else MaxRequestBytes.
func (l *limiter) bodyLimit(route string) int64 {
	limit, best := l.cfg.MaxRequestBytes, -1
	for prefix, n := range l.cfg.RouteMaxBytes {
		if strings.HasPrefix(route, prefix) && len(prefix) > best {
			limit, best = n, len(prefix)
		}
	}
	return limit
}

// maxMessage is the gRPC server's receive limit: the largest any method
// may get (methods with a smaller one are checked by the interceptor).
func (l *limiter) maxMessage() int64 {
	m := l.cfg.MaxRequestBytes
	for route, n := range l.cfg.RouteMaxBytes {
		if strings.HasPrefix(route, "/v1/") {
			continue // a REST route's: gRPC methods are "/package.Service/Method"
		}
		m = max(m, n)
	}
	return m
}

// limitedBody marks its request when the body is cut: too large, or not
// received before the read timeout.
type limitedBody struct {
	rc     io.ReadCloser
	caller *restCaller
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil {
		var tooLarge *http.MaxBytesError
		var ne net.Error
		switch {
		case errors.As(err, &tooLarge):
			b.caller.tooLarge = true
		case errors.As(err, &ne) && ne.Timeout():
			b.caller.timedOut = true
		}
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

func (l *limiter) tooLargeStatus(limit int64) *status.Status {
	return status.Newf(codes.ResourceExhausted, "request body larger than %d bytes (limits.max_request_bytes)", limit)
}

// bodyRefusal writes the answer for a request whose body was cut (413 or
// 408) and reports whether it did. The gateway's error handler asks it
// first: the decoder's own error says nothing useful.
func (l *limiter) bodyRefusal(w http.ResponseWriter, req *http.Request) bool {
	c := restCallerOf(req.Context())
	if c == nil {
		return false
	}
	switch {
	case c.tooLarge:
		l.refused(refuseBody, "rest")
		writeErrorCode(w, l.tooLargeStatus(c.limit), http.StatusRequestEntityTooLarge)
	case c.timedOut:
		l.refused(refuseTimeout, "rest")
		w.Header().Set("Connection", "close")
		writeErrorCode(w, status.Newf(codes.DeadlineExceeded, "request body not received within %s (limits.read_timeout)", l.cfg.ReadTimeout), http.StatusRequestTimeout)
	default:
		return false
	}
	return true
}

// --- REST ---

// httpBody is the outermost REST middleware: it notes the caller's address
// and bounds the body (413 at once when the declared length is too large).
func (l *limiter) httpBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		c := &restCaller{host: hostOf(req.RemoteAddr), limit: l.bodyLimit(req.URL.Path)}
		if c.limit > 0 {
			// The evidence upload route answers a declared length over its
			// limit itself, naming evidence.max_bytes and the field.
			if req.ContentLength > c.limit && !strings.HasPrefix(req.URL.Path, EvidenceRoute) {
				l.refused(refuseBody, "rest")
				w.Header().Set("Connection", "close")
				writeErrorCode(w, l.tooLargeStatus(c.limit), http.StatusRequestEntityTooLarge)
				return
			}
			req.Body = &limitedBody{rc: http.MaxBytesReader(w, req.Body, c.limit), caller: c}
		} else if req.Body != nil {
			req.Body = &limitedBody{rc: req.Body, caller: c}
		}
		h.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), restCallerKey{}, c)))
	})
}

// httpAdmit applies the concurrency limit to REST requests (before
// authentication: a flood of bad credentials takes slots too).
func (l *limiter) httpAdmit(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if longLived(req.URL.Path) {
			// The change feed's stream and long poll: bounded by
			// feed.max_watchers instead.
			h.ServeHTTP(w, req)
			return
		}
		if !l.acquire(req.Context()) {
			l.refused(refuseConcurrency, "rest")
			w.Header().Set("Retry-After", "1")
			writeError(w, l.busyStatus())
			return
		}
		defer l.release()
		h.ServeHTTP(w, req)
	})
}

// httpRate applies the caller's rate (after authentication, which put the
// principal in the context).
func (l *limiter) httpRate(h http.Handler) http.Handler {
	if l.callers == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if st := l.allow(req.Context()); st != nil {
			l.refused(refuseRate, "rest")
			w.Header().Set("Retry-After", retryAfter(st))
			writeError(w, st)
			return
		}
		h.ServeHTTP(w, req)
	})
}

// retryAfter is the Retry-After header value of a refusal: whole seconds,
// rounded up.
func retryAfter(st *status.Status) string {
	secs := 1
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			secs = max(1, int(math.Ceil(ri.GetRetryDelay().AsDuration().Seconds())))
		}
	}
	return strconv.Itoa(secs)
}

// httpServer applies the header size and the timeouts to the REST server.
func (l *limiter) httpServer(hs *http.Server) {
	hs.MaxHeaderBytes = l.cfg.MaxHeaderBytes
	hs.ReadHeaderTimeout = l.cfg.ReadHeaderTimeout
	hs.ReadTimeout = l.cfg.ReadTimeout
	hs.IdleTimeout = l.cfg.IdleTimeout
	if hs.MaxHeaderBytes == 0 {
		hs.MaxHeaderBytes = 1 << 20
	}
	if hs.ReadHeaderTimeout == 0 {
		hs.ReadHeaderTimeout = 10 * time.Second
	}
}

// --- gRPC ---

// grpcOptions are the server options of the gRPC limits: message and
// metadata size, handshake time, idle connections, keepalive enforcement
// and the count of messages refused as too large.
func (l *limiter) grpcOptions() []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.StatsHandler(&tooLargeStats{l: l}),
		// Clients may ping every 10 s (also between calls); more often is
		// answered with GOAWAY.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	if m := l.maxMessage(); m > 0 {
		opts = append(opts, grpc.MaxRecvMsgSize(int(min(m, math.MaxInt32))))
	}
	if l.cfg.MaxHeaderBytes > 0 {
		opts = append(opts, grpc.MaxHeaderListSize(uint32(l.cfg.MaxHeaderBytes)))
	}
	if l.cfg.ReadHeaderTimeout > 0 {
		opts = append(opts, grpc.ConnectionTimeout(l.cfg.ReadHeaderTimeout))
	}
	if l.cfg.IdleTimeout > 0 {
		opts = append(opts, grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: l.cfg.IdleTimeout}))
	}
	return opts
}

// unaryAdmit applies the concurrency limit and per-method message limits
// to unary gRPC calls (before authentication).
func (l *limiter) unaryAdmit(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	// Health takes no slot; nor does the change feed's long poll, which
	// waits (feed.max_watchers bounds it).
	if rateExempt(info.FullMethod) || info.FullMethod == pb.FeedService_PollCases_FullMethodName {
		return h(ctx, req)
	}
	if len(l.cfg.RouteMaxBytes) > 0 {
		if limit := l.bodyLimit(info.FullMethod); limit > 0 {
			if m, ok := req.(proto.Message); ok && int64(proto.Size(m)) > limit {
				l.refused(refuseBody, "grpc")
				return nil, status.Errorf(codes.ResourceExhausted, "message larger than %d bytes (limits.max_request_bytes)", limit)
			}
		}
	}
	if !l.acquire(ctx) {
		l.refused(refuseConcurrency, "grpc")
		return nil, l.busyStatus().Err()
	}
	defer l.release()
	return h(ctx, req)
}

// unaryRate applies the caller's rate to unary gRPC calls (after
// authentication).
func (l *limiter) unaryRate(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if rateExempt(info.FullMethod) {
		return h(ctx, req)
	}
	if st := l.allowN(ctx, requestCost(req)); st != nil {
		l.refused(refuseRate, "grpc")
		return nil, st.Err()
	}
	return h(ctx, req)
}

// streamRate applies the caller's rate to the start of a gRPC stream
// (reflection; health is exempt).
func (l *limiter) streamRate(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if rateExempt(info.FullMethod) {
		return h(srv, ss)
	}
	if st := l.allow(ss.Context()); st != nil {
		l.refused(refuseRate, "grpc")
		return st.Err()
	}
	return h(srv, ss)
}

// tooLargeStats counts the messages gRPC itself refuses as larger than
// MaxRecvMsgSize: they never reach an interceptor.
type tooLargeStats struct{ l *limiter }

func (s *tooLargeStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (s *tooLargeStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (s *tooLargeStats) HandleConn(context.Context, stats.ConnStats) {}

func (s *tooLargeStats) HandleRPC(_ context.Context, st stats.RPCStats) {
	end, ok := st.(*stats.End)
	if !ok || end.Error == nil {
		return
	}
	if e := status.Convert(end.Error); e.Code() == codes.ResourceExhausted && strings.Contains(e.Message(), "larger than max") {
		s.l.refused(refuseBody, "grpc")
	}
}
