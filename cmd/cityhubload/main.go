// Command cityhubload drives case creation (ReportCase) against running
// cityhubd nodes over gRPC or REST and reports throughput and latency.
//
//	cityhubload --proto grpc --addrs 127.0.0.1:7101 --clients 64 --duration 20s --warmup 3s
//	cityhubload --proto rest --addrs 127.0.0.1:7201,127.0.0.1:7202,127.0.0.1:7203 --clients 1 --requests 10000
//
// Each client sends one request at a time (closed loop) with a fresh
// request_id; clients are spread round-robin over --addrs. gRPC clients
// share one connection per address; REST clients share one keep-alive HTTP
// client. Nothing is retried: failures are counted by gRPC code or HTTP
// status. Requests that start during the warmup are not recorded.
//
// Against a node with authentication on (the default), pass --token (an
// access token or an integrator key; env CITYHUB_TOKEN) or --user and
// --password (env CITYHUB_PASSWORD) to log in at every address (a login is
// kept refreshed). With credentials the reports leave their role out: the
// node takes it from the credentials, so log in as an intake clerk (who
// reports from every source) or give a key whose sources cover the mix.
//
//	cityhubload --addrs 127.0.0.1:7101 --user clerk --password "$PW" --clients 16 --duration 20s
//
// With --backlog N it measures nothing: it stores N cases in the tier (an
// old system's backlog through ImportCases, the fastest way in) and exits,
// so a run can measure a tier that holds a million cases.
//
//	cityhubload --addrs 127.0.0.1:7101 --backlog 1000000 --clients 4
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cityhub/cityhub/cmd/internal/authclient"
	"github.com/cityhub/cityhub/cmd/internal/cli"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

type options struct {
	proto        string
	addrs        []string
	clients      int
	duration     time.Duration
	requests     int64
	warmup       time.Duration
	timeout      time.Duration
	jurisdiction string
	json         bool
	batch        int    // reports per call (ReportCases) when above 1
	token        string // bearer token or integrator key
	user, pass   string // log in instead
	seed         uint64 // of the generated reports; 0: from the clock
}

// authenticated reports whether the reports carry credentials.
func (o options) authenticated() bool { return o.token != "" || o.user != "" }

func main() {
	err := cli.Execute(context.Background(), rootCmd(load, os.Stdout), os.Args[1:], os.Stdout, os.Stderr)
	os.Exit(cli.Status("cityhubload", err, os.Stderr))
}

// rootCmd is the command line: its flags fill the options that start gets
// (load; tests pass their own) with --backlog.
func rootCmd(start func(o options, backlog int64, stdout io.Writer) error, stdout io.Writer) *cobra.Command {
	var o options
	var addrs string
	var backlog int64
	root := cli.Root("cityhubload", "Drive case creation against running cityhubd nodes and report throughput and latency",
		`cityhubload drives case creation (ReportCase) against running cityhubd
nodes over gRPC or REST and reports throughput and latency; with --backlog N
it stores N cases in the tier through ImportCases instead and exits.

Exit status: 0 when some reports succeeded, 1 when none did (or the backlog
import failed), 2 when it could not run.`)
	f := root.Flags()
	f.SortFlags = false
	f.StringVar(&o.proto, "proto", "grpc", "protocol: grpc or rest")
	f.StringVar(&addrs, "addrs", "", "comma-separated gRPC addresses (grpc) or HTTP base addresses (rest); default 127.0.0.1:7101 or http://127.0.0.1:7201")
	f.IntVar(&o.clients, "clients", 1, "concurrent clients, each with one request in flight")
	f.DurationVar(&o.duration, "duration", 10*time.Second, "measured time, after the warmup (ignored with --requests)")
	f.Int64Var(&o.requests, "requests", 0, "measured requests in total, after the warmup (0: use --duration)")
	f.DurationVar(&o.warmup, "warmup", 0, "load before measuring starts")
	f.DurationVar(&o.timeout, "timeout", 10*time.Second, "per-request timeout")
	f.StringVar(&o.jurisdiction, "jurisdiction", "320582", "grid code prefix (6, 9 or 12 digits) of the tier under test")
	f.BoolVar(&o.json, "json", false, "print the result as JSON instead of a table")
	f.Uint64Var(&o.seed, "seed", 0, "random seed of the generated reports, for a load that repeats (0: from the clock)")
	f.IntVar(&o.batch, "batch", 1, "reports per call: above 1, each client sends ReportCases with this many (gRPC, at most 100); throughput and latency count reports")
	f.StringVar(&o.token, "token", os.Getenv("CITYHUB_TOKEN"), "access token or integrator key to send (env CITYHUB_TOKEN)")
	f.StringVar(&o.user, "user", "", "log in as this account at every address (with --password)")
	f.StringVar(&o.pass, "password", os.Getenv("CITYHUB_PASSWORD"), "password of --user (env CITYHUB_PASSWORD)")
	f.Int64Var(&backlog, "backlog", 0, "instead of measuring, import this many cases as an old system's backlog (ImportCases over gRPC, 1,000 rows a call, --clients calls in flight) and exit")
	root.RunE = func(*cobra.Command, []string) error {
		if addrs == "" {
			addrs = map[string]string{"grpc": "127.0.0.1:7101", "rest": "http://127.0.0.1:7201"}[o.proto]
		}
		for _, a := range strings.Split(addrs, ",") {
			if a = strings.TrimSpace(a); a != "" {
				o.addrs = append(o.addrs, a)
			}
		}
		return start(o, backlog, stdout)
	}
	return root
}

// load imports the backlog, or measures and prints the result.
func load(o options, backlog int64, stdout io.Writer) error {
	if backlog > 0 {
		if o.proto != "grpc" || o.clients < 1 {
			return cli.Exit(2, errors.New("--backlog imports over gRPC with --clients >= 1"))
		}
		return importBacklog(o, backlog)
	}
	res, err := run(o)
	if err != nil {
		return cli.Exit(2, err)
	}
	res.CPU = processCPU()
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	} else {
		res.print(stdout)
	}
	if res.OK == 0 {
		return cli.Exit(1, nil)
	}
	return nil
}

func (o options) check() error {
	switch {
	case o.proto != "grpc" && o.proto != "rest":
		return fmt.Errorf("--proto %q: want grpc or rest", o.proto)
	case len(o.addrs) == 0:
		return errors.New("--addrs is empty")
	case o.clients < 1:
		return errors.New("--clients must be at least 1")
	case o.requests < 0 || o.requests == 0 && o.duration <= 0:
		return errors.New("need --duration > 0 or --requests > 0")
	case o.warmup < 0 || o.timeout <= 0:
		return errors.New("--warmup must be >= 0 and --timeout > 0")
	case o.token != "" && o.user != "":
		return errors.New("--token or --user, not both")
	case o.user != "" && o.pass == "":
		return errors.New("--user needs --password (or CITYHUB_PASSWORD)")
	case o.batch < 0 || o.batch > 100:
		return errors.New("--batch must be 1 to 100")
	case o.batch > 1 && o.proto != "grpc":
		return errors.New("--batch above 1 needs --proto grpc")
	}
	switch len(o.jurisdiction) {
	case 6, 9, 12:
	default:
		return fmt.Errorf("--jurisdiction %q: want 6, 9 or 12 digits", o.jurisdiction)
	}
	return nil
}

// sendFunc sends one report. On failure it returns the error's class (a gRPC
// code name, "HTTP <status>" or "transport") and the error.
type sendFunc func(ctx context.Context, r *pb.ReportCaseRequest) (string, error)

// batchFunc sends reports in one call (ReportCases) and returns how many
// were filed; on a failed call or a refused report, the class and error
// of the first failure.
type batchFunc func(ctx context.Context, rs []*pb.ReportCaseRequest) (int, string, error)

func run(o options) (*result, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	senders, batchers, closeAll, err := dial(o)
	if err != nil {
		return nil, err
	}
	defer closeAll()

	var idBytes [4]byte
	_, _ = rand.Read(idBytes[:])
	runID := hex.EncodeToString(idBytes[:])
	seed := o.seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}

	start := time.Now()
	ph := &phase{measureFrom: start.Add(o.warmup)}
	if o.requests > 0 {
		ph.tickets = new(atomic.Int64)
		ph.tickets.Store(o.requests)
	} else {
		ph.measureUntil = ph.measureFrom.Add(o.duration)
	}
	workers := make([]*worker, o.clients)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{gen: newGenerator(runID, i, o.jurisdiction, seed, o.authenticated()), send: senders[i%len(senders)],
			timeout: o.timeout, errs: map[string]int{}, samples: map[string]string{}, batch: o.batch}
		if o.batch > 1 {
			w.sendBatch = batchers[i%len(batchers)]
		}
		workers[i] = w
		wg.Go(func() { w.run(ctx, ph) })
	}
	wg.Wait()
	elapsed := time.Since(ph.measureFrom)

	var lat []time.Duration
	errs, samples := map[string]int{}, map[string]string{}
	for _, w := range workers {
		lat = append(lat, w.lat...)
		for k, n := range w.errs {
			errs[k] += n
			if samples[k] == "" {
				samples[k] = w.samples[k]
			}
		}
	}
	for k, s := range samples {
		fmt.Fprintf(os.Stderr, "cityhubload: %d × %s, e.g.: %s\n", errs[k], k, s)
	}
	res := &result{Proto: o.proto, Addrs: o.addrs, Clients: o.clients, Warmup: o.warmup.Seconds()}
	summarize(res, lat, errs, elapsed)
	return res, nil
}

// phase tells workers when measuring starts and when to stop: at
// measureUntil, or when the tickets (measured requests) run out.
type phase struct {
	measureFrom  time.Time
	measureUntil time.Time     // zero with tickets
	tickets      *atomic.Int64 // nil with measureUntil
}

type worker struct {
	gen       *generator
	send      sendFunc
	batch     int
	sendBatch batchFunc
	timeout   time.Duration
	lat       []time.Duration // successful measured requests
	errs      map[string]int
	samples   map[string]string // one message per error class
}

func (w *worker) run(ctx context.Context, ph *phase) {
	for ctx.Err() == nil {
		now := time.Now()
		measured := !now.Before(ph.measureFrom)
		if measured {
			if ph.tickets != nil && ph.tickets.Add(-int64(w.perCall())) <= -int64(w.perCall()) ||
				ph.tickets == nil && !now.Before(ph.measureUntil) {
				return
			}
		}
		if w.sendBatch != nil {
			w.runBatch(ctx, measured)
			continue
		}
		r := w.gen.next()
		rctx, cancel := context.WithTimeout(ctx, w.timeout)
		t0 := time.Now()
		class, err := w.send(rctx, r)
		d := time.Since(t0)
		cancel()
		if !measured || ctx.Err() != nil {
			continue
		}
		if err != nil {
			w.errs[class]++
			if w.samples[class] == "" {
				w.samples[class] = err.Error()
			}
			continue
		}
		w.lat = append(w.lat, d)
	}
}

// perCall is how many reports one call of the worker sends.
func (w *worker) perCall() int { return max(w.batch, 1) }

// runBatch sends one batch of w.batch reports; each report filed counts
// as a request with the call's latency, each refused one as an error.
func (w *worker) runBatch(ctx context.Context, measured bool) {
	rs := make([]*pb.ReportCaseRequest, w.batch)
	for i := range rs {
		rs[i] = w.gen.next()
	}
	rctx, cancel := context.WithTimeout(ctx, w.timeout)
	t0 := time.Now()
	ok, class, err := w.sendBatch(rctx, rs)
	d := time.Since(t0)
	cancel()
	if !measured || ctx.Err() != nil {
		return
	}
	for range ok {
		w.lat = append(w.lat, d)
	}
	if err != nil {
		w.errs[class] += len(rs) - ok
		if w.samples[class] == "" {
			w.samples[class] = err.Error()
		}
	}
}

// dial returns one sender (and, for gRPC, one batch sender) per address
// and a function closing them.
func dial(o options) ([]sendFunc, []batchFunc, func(), error) {
	if o.proto == "rest" {
		senders, closeAll, err := restSenders(o)
		return senders, nil, closeAll, err
	}
	var conns []*grpc.ClientConn
	closeAll := func() {
		for _, cc := range conns {
			_ = cc.Close()
		}
	}
	var (
		out      []sendFunc
		batchers []batchFunc
	)
	for _, a := range o.addrs {
		cc, err := grpc.NewClient(a, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			closeAll()
			return nil, nil, nil, fmt.Errorf("grpc %s: %w", a, err)
		}
		conns = append(conns, cc)
		var callOpts []grpc.CallOption
		switch {
		case o.token != "":
			callOpts = append(callOpts, grpc.PerRPCCredentials(authclient.Bearer(o.token)))
		case o.user != "":
			ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
			sess, err := authclient.Login(ctx, cc, o.user, o.pass)
			cancel()
			if err != nil {
				closeAll()
				return nil, nil, nil, fmt.Errorf("grpc %s: %w", a, err)
			}
			callOpts = append(callOpts, grpc.PerRPCCredentials(sess))
		}
		cl := pb.NewCaseServiceClient(cc)
		out = append(out, func(ctx context.Context, r *pb.ReportCaseRequest) (string, error) {
			if _, err := cl.ReportCase(ctx, r, callOpts...); err != nil {
				return status.Code(err).String(), err
			}
			return "", nil
		})
		batchers = append(batchers, func(ctx context.Context, rs []*pb.ReportCaseRequest) (int, string, error) {
			resp, err := cl.ReportCases(ctx, &pb.ReportCasesRequest{Reports: rs}, callOpts...)
			if err != nil {
				return 0, status.Code(err).String(), err
			}
			ok, class := 0, ""
			var first error
			for _, r := range resp.Results {
				if r.Error == nil {
					ok++
				} else if first == nil {
					// The gRPC code's Go name, as a refused single report's.
					class, first = codes.Code(code.Code_value[r.Error.Code]).String(), fmt.Errorf("%s: %s", r.Error.Field, r.Error.Message)
				}
			}
			return ok, class, first
		})
	}
	return out, batchers, closeAll, nil
}

var jsonOpts = protojson.MarshalOptions{UseProtoNames: true}

func restSenders(o options) ([]sendFunc, func(), error) {
	client := &http.Client{Transport: &http.Transport{
		Proxy:               nil, // loopback benchmarks must not go through an environment proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        2 * o.clients,
		MaxIdleConnsPerHost: o.clients,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}}
	var out []sendFunc
	for _, a := range o.addrs {
		if !strings.Contains(a, "://") {
			a = "http://" + a
		}
		base := strings.TrimSuffix(a, "/")
		url := base + "/v1/cases"
		var bearer func(context.Context) (string, error)
		switch {
		case o.token != "":
			bearer = func(context.Context) (string, error) { return o.token, nil }
		case o.user != "":
			rl := &restLogin{client: client, base: base, user: o.user, pass: o.pass}
			ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
			_, err := rl.token(ctx)
			cancel()
			if err != nil {
				return nil, nil, fmt.Errorf("rest %s: %w", a, err)
			}
			bearer = rl.token
		}
		out = append(out, func(ctx context.Context, r *pb.ReportCaseRequest) (string, error) {
			body, err := jsonOpts.Marshal(r)
			if err != nil {
				return "marshal", err
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
			if err != nil {
				return "request", err
			}
			req.Header.Set("Content-Type", "application/json")
			if bearer != nil {
				tok, err := bearer(ctx)
				if err != nil {
					return "login", err
				}
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			resp, err := client.Do(req)
			if err != nil {
				return "transport", err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				msg, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
				_, _ = io.Copy(io.Discard, resp.Body)
				return fmt.Sprintf("HTTP %d", resp.StatusCode), fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
			}
			_, err = io.Copy(io.Discard, resp.Body) // drain so the connection is reused
			if err != nil {
				return "transport", err
			}
			return "", nil
		})
	}
	return out, func() {}, nil
}

// restLogin is a login over REST whose access token is renewed (by logging
// in again) a minute before it expires.
type restLogin struct {
	client           *http.Client
	base, user, pass string

	mu  sync.Mutex
	tok string
	exp time.Time
}

func (l *restLogin) token(ctx context.Context) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tok != "" && time.Until(l.exp) > time.Minute {
		return l.tok, nil
	}
	body, err := jsonOpts.Marshal(&pb.LoginRequest{Username: l.user, Password: l.pass})
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.base+"/v1/auth/login", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("login as %s: %s: %s", l.user, resp.Status, bytes.TrimSpace(b))
	}
	var tr pb.TokenResponse
	if err := protojson.Unmarshal(b, &tr); err != nil {
		return "", fmt.Errorf("login as %s: %w", l.user, err)
	}
	l.tok, l.exp = tr.AccessToken, tr.GetExpiresAt().AsTime()
	return l.tok, nil
}
