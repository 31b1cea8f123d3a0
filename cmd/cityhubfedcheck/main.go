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
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/cityhub/cityhub/cmd/internal/version"
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
