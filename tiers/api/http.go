package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	gateway "github.com/cityhub/cityhub/proto/cityhub/v1/gw"
	"github.com/cityhub/cityhub/proto/openapi"
	"github.com/cityhub/cityhub/tiers/node"
)

// httpStatus maps gRPC codes to HTTP statuses. It follows grpc-gateway's
// table except that a forbidden transition (FailedPrecondition) is a 409
// Conflict with the case's current state, as the API promises, and a
// change feed position that was compacted away (OutOfRange) is 410 Gone.
func httpStatus(c codes.Code) int {
	switch c {
	case codes.FailedPrecondition:
		return http.StatusConflict
	case codes.OutOfRange: // a change feed position compacted away
		return http.StatusGone
	}
	return runtime.HTTPStatusFromCode(c)
}

var jsonMarshaler = jsonCodec{&runtime.JSONPb{
	MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true},
	UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
}}

// errorBody is the JSON body of every REST error.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	HTTPStatus int    `json:"http_status"`
	Code       string `json:"code"`
	Message    string `json:"message"`
	Field      string `json:"field,omitempty"`
	// Permission is the permission a refused caller lacks (403).
	Permission string `json:"permission,omitempty"`
	// Reason is the refusal's ErrorInfo reason, when it has one
	// (DISK_SPACE_LOW: a write refused below the disk reserve, 503).
	// With CurrentRevision and ResumeToken it tells a change feed client
	// where to start again (410: re-list first; 429: a cut-off watcher).
	Reason          string `json:"reason,omitempty"`
	CurrentRevision string `json:"current_revision,omitempty"`
	ResumeToken     string `json:"resume_token,omitempty"`
}

func writeError(w http.ResponseWriter, st *status.Status) {
	writeErrorCode(w, st, httpStatus(st.Code()))
}

// writeErrorCode is writeError with an HTTP status of its own (413 for a
// body too large, whose gRPC code is ResourceExhausted).
func writeErrorCode(w http.ResponseWriter, st *status.Status, httpCode int) {
	body := restError(st, httpCode)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(body.Error.HTTPStatus)
	_ = json.NewEncoder(w).Encode(body)
}

// restError is the REST error body of st.
func restError(st *status.Status, httpCode int) errorBody {
	body := errorBody{Error: errorDetail{HTTPStatus: httpCode, Code: st.Code().String(), Message: st.Message()}}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			body.Error.Field = br.GetFieldViolations()[0].GetField()
		}
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			md := ei.GetMetadata()
			body.Error.Permission = md["permission"]
			body.Error.Reason = ei.GetReason()
			if md["current_revision"] != "" {
				body.Error.CurrentRevision, body.Error.ResumeToken = md["current_revision"], md["resume_token"]
			}
		}
	}
	return body
}

// gatewayError answers a failed REST call; a body cut by a limit is
// answered as such (413, 408), whatever the decoder made of it.
func gatewayError(l *limiter) runtime.ErrorHandlerFunc {
	return func(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, req *http.Request, err error) {
		if l.bodyRefusal(w, req) {
			return
		}
		st := status.Convert(err)
		if st.Code() == codes.ResourceExhausted || hasRetryInfo(st) {
			w.Header().Set("Retry-After", retryAfter(st))
		}
		writeError(w, st)
	}
}

// newGateway builds the REST handler: the grpc-gateway mux calling the
// services in process, plus health, readiness, metrics and OpenAPI.
// gatewayServices are the services the REST gateway calls in process.
type gatewayServices struct {
	cs  *CaseServer
	cl  *ClusterServer
	own *OwnershipServer
	as  *AuthServer
	geo *GeoServer
	fs  *FeedServer
	ev  *EvidenceServer
	ds  *DashboardServer
	// console serves the web console at / (GET and HEAD of any path the
	// muxes do not route); nil: / answers 404 as before.
	console http.Handler
}

func newGateway(ctx context.Context, svc gatewayServices, g *guard, l *limiter, r Replica, m *Metrics, pprofOn bool) (http.Handler, error) {
	cs, cl, own := svc.cs, svc.cl, svc.own
	gw := runtime.NewServeMux(
		runtime.WithMiddlewares(recordRoute),
		runtime.WithMarshalerOption(runtime.MIMEWildcard, jsonMarshaler),
		runtime.WithErrorHandler(gatewayError(l)),
		runtime.WithRoutingErrorHandler(func(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, req *http.Request, code int) {
			c := codes.NotFound
			if code == http.StatusMethodNotAllowed {
				c = codes.Unimplemented
			}
			writeError(w, status.Newf(c, "no route for %s %s", req.Method, req.URL.Path))
		}),
	)
	if err := gateway.RegisterCaseServiceHandlerServer(ctx, gw, cs); err != nil {
		return nil, err
	}
	if err := gateway.RegisterClusterServiceHandlerServer(ctx, gw, cl); err != nil {
		return nil, err
	}
	if err := gateway.RegisterOwnershipServiceHandlerServer(ctx, gw, own); err != nil {
		return nil, err
	}
	if err := gateway.RegisterAuthServiceHandlerServer(ctx, gw, svc.as); err != nil {
		return nil, err
	}
	if err := gateway.RegisterGeoServiceHandlerServer(ctx, gw, svc.geo); err != nil {
		return nil, err
	}
	if err := gateway.RegisterFeedServiceHandlerServer(ctx, gw, svc.fs); err != nil {
		return nil, err
	}
	if err := gateway.RegisterDashboardServiceHandlerServer(ctx, gw, svc.ds); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	v1 := http.NewServeMux() // everything under /v1/ needs credentials
	v1.Handle("/v1/", gw)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if _, _, err := r.Store().Applied(); err != nil {
			writeError(w, status.New(codes.Unavailable, "state store unreadable: "+err.Error()))
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "node": r.ID()})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ready, body := readiness(r)
		code := http.StatusOK
		if !ready {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, body)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapi.Document)
	})
	if pprofOn {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	registerEvaluationDownloads(v1, cs) // GET /v1/evaluation.csv, .xlsx
	registerReconcileDownload(v1, own)  // GET /v1/reconcile/report.csv
	registerGeoDownload(v1, svc.geo)    // GET /v1/geo/grids.geojson
	v1.HandleFunc("GET "+ssePath, svc.fs.serveSSE)
	registerEvidenceRoutes(v1, svc.ev) // /v1/evidence/…: streamed uploads and downloads
	// Under /v1/: the concurrency limit, then authentication, then the
	// caller's rate (by principal). Health, readiness, metrics and the
	// OpenAPI document are exempt from both.
	mux.Handle("/v1/", l.httpAdmit(g.http(l.httpRate(v1))))
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		if svc.console != nil && (req.Method == http.MethodGet || req.Method == http.MethodHead) {
			svc.console.ServeHTTP(w, req)
			return
		}
		writeError(w, status.Newf(codes.NotFound, "no route for %s %s; see /openapi.json", req.Method, req.URL.Path))
	})
	return instrument(l.httpBody(mux), m, mux, v1), nil
}

// readiness is /readyz's answer (and cityhub_ready's, and gRPC health's):
// a tier node says ready only when a linearizable read would answer now
// here (node.Readiness: the leader has applied an entry of its term; a
// follower hears from the leader and has seen its term commit).
//
// It is cheap (no trip through raft's main loop, no store read): gRPC
// health and cityhub_ready ask it often.
func readiness(r Replica) (bool, map[string]any) {
	var (
		ready bool
		body  map[string]any
	)
	if rr, ok := r.(readinessReporter); ok {
		rd := rr.Readiness(readyLag)
		ready = rd.Ready
		body = map[string]any{"ready": rd.Ready, "node": r.ID(), "state": rd.State, "leader": rd.Leader,
			"term": rd.Term, "applied_term": rd.AppliedTerm, "applied_index": rd.AppliedIndex, "commit_index": rd.CommitIndex}
		if !rd.Ready {
			body["reason"] = rd.Reason
		}
	} else {
		st := r.Status()
		ready = st.LeaderId != "" && st.AppliedIndex+readyLag >= st.CommitIndex
		body = map[string]any{"ready": ready, "node": st.NodeId, "state": st.State, "leader": st.LeaderId,
			"applied_index": st.AppliedIndex, "commit_index": st.CommitIndex}
	}
	// The disk reserve does not make a replica unready (it still answers
	// reads), but says whether it takes writes: a leader below it refuses
	// them, a follower below it still appends the leader's.
	if dw, ok := r.(diskWatcher); ok && dw.DiskSpace() != nil {
		ds := dw.DiskSpace().State()
		body["disk"] = map[string]any{"dir": ds.Dir, "free_bytes": ds.Free, "reserve_bytes": ds.Reserve, "low": ds.Low}
		if ds.Low {
			body["writes"] = "refused: free disk space below the reserve (limits.disk_reserve_bytes); free space in the data directory"
		}
	}
	return ready, body
}

// readyLag is how many committed entries a replica may still have to apply
// and be ready.
const readyLag = 1000

// readinessReporter is what /readyz asks of a tier node (node.Node
// implements it).
type readinessReporter interface {
	Readiness(maxLag uint64) node.Readiness
}

// hasRetryInfo reports whether st suggests when to retry (a write refused
// below the disk reserve, say): REST then answers with Retry-After.
func hasRetryInfo(st *status.Status) bool {
	for _, d := range st.Details() {
		if _, ok := d.(*errdetails.RetryInfo); ok {
			return true
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (the change
// feed's SSE stream flushes and sets its own deadlines).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// instrument records each request's latency by method, route and
// status. The route is a pattern, never the path, so the label's values
// are bounded: the gateway's (recordRoute: "/v1/cases/{id}:act"), else
// the pattern the muxes matched ("/healthz", "/v1/evaluation.csv"), else
// "/v1/" (a call refused before routing: authentication, limits; or no
// route) or "/" (anything else).
func instrument(h http.Handler, m *Metrics, top, v1 *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		route := &routeHolder{}
		h.ServeHTTP(rec, req.WithContext(context.WithValue(req.Context(), routeKey{}, route)))
		m.observeHTTP(req.Method, route.label(req, top, v1), rec.code, time.Since(start))
	})
}

type routeKey struct{}

// routeHolder carries the gateway's pattern of a request out to
// instrument.
type routeHolder struct{ pattern string }

// recordRoute is the gateway's middleware that notes the route's pattern.
func recordRoute(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request, params map[string]string) {
		if h, ok := req.Context().Value(routeKey{}).(*routeHolder); ok {
			if p, ok := runtime.HTTPPattern(req.Context()); ok {
				h.pattern = gatewayRoute(p.String())
			}
		}
		next(w, req, params)
	}
}

// gatewayRoute writes a gateway pattern as the REST paths are written:
// "/v1/cases/{id=*}:act" is "/v1/cases/{id}:act".
func gatewayRoute(p string) string { return strings.ReplaceAll(p, "=*}", "}") }

func (h *routeHolder) label(req *http.Request, top, v1 *http.ServeMux) string {
	if h.pattern != "" {
		return h.pattern
	}
	_, p := top.Handler(req)
	if p == "/v1/" {
		_, p = v1.Handler(req)
	}
	// "GET /healthz": the method has its own label.
	if i := strings.IndexByte(p, ' '); i >= 0 {
		p = p[i+1:]
	}
	if p == "" {
		p = "/"
	}
	return p
}
