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
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cityhub/cityhub/cmd/internal/cli"
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
	err := cli.Execute(context.Background(), rootCmd(check), os.Args[1:], os.Stdout, os.Stderr)
	os.Exit(cli.Status("cityhubfedcheck", err, os.Stderr))
}

// rootCmd is the command line: its flags fill the options that start gets
// (check; tests pass their own).
func rootCmd(start func(options) error) *cobra.Command {
	o := options{units: map[string]string{}}
	root := cli.Root("cityhubfedcheck", "Drive load through a running federation and check its promises",
		`cityhubfedcheck drives load through a running federation of cityhubd
processes and checks that every case arrives exactly once at its holder,
that the holder's ancestors and the reporting node converge on its final
copy with its full history, and that each case's versions are seen in order
(scripts/e2e-federation.sh runs it).

Exit status: 0 when every check passed, 1 with the violations, 2 when it
could not run.`)
	f := root.Flags()
	f.SortFlags = false
	f.Func("node", "NAME=ADDR,ADDR,...: a node of the chain (root first) and its replicas' gRPC addresses (repeatable)", func(s string) error {
		name, addrs, ok := strings.Cut(s, "=")
		if !ok || name == "" || addrs == "" {
			return fmt.Errorf("want NAME=ADDR,ADDR,..., got %q", s)
		}
		o.nodes = append(o.nodes, &group{name: name, addrs: strings.Split(addrs, ",")})
		return nil
	})
	f.Func("unit", "NAME=UNIT: a unit hosted by node NAME, to dispatch to (repeatable)", func(s string) error {
		name, unit, ok := strings.Cut(s, "=")
		if !ok || name == "" || unit == "" {
			return fmt.Errorf("want NAME=UNIT, got %q", s)
		}
		o.units[name] = unit
		return nil
	})
	f.StringVar(&o.grid, "grid", "", "15-digit grid code of the reports (under the last node's jurisdiction)")
	f.IntVar(&o.cases, "cases", 300, "cases to report")
	f.DurationVar(&o.spread, "spread", 30*time.Second, "time over which the reports start, evenly")
	f.DurationVar(&o.timeout, "timeout", 150*time.Second, "longest the cases may take to walk to closure")
	f.DurationVar(&o.settle, "settle", 60*time.Second, "longest the links and replicas may take to converge afterwards")
	f.StringVar(&o.extra, "extra", "", "file of further cases to check: \"ID HOLDER REPORTER\" per line, read at the end")
	f.StringVar(&o.runID, "run", fmt.Sprintf("%x", time.Now().UnixNano()), "prefix of the request ids")
	f.StringVar(&o.ca, "ca", "", "PEM CA of the nodes' client API certificates: talk TLS (default: plain text)")
	f.StringVar(&o.adminPW, "admin-password-file", "", "the administrator's password of every node, or a directory with one file per node name: log in and make the driver's seats (default: no credentials, for nodes with auth.disabled)")
	f.StringVar(&o.adminUser, "admin-user", "admin", "the nodes' administrator account")
	root.RunE = func(*cobra.Command, []string) error {
		if len(o.nodes) == 0 || o.grid == "" {
			return cli.Usagef("--node and --grid are required")
		}
		for _, g := range o.nodes {
			if o.units[g.name] == "" {
				return cli.Usagef("no --unit for node %s", g.name)
			}
		}
		return start(o)
	}
	return root
}

// check drives the load and checks the federation: exit status 1 when a
// check failed, 2 when it could not run.
func check(o options) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	d, err := newDriver(o, logger)
	if err != nil {
		return cli.Exit(2, err)
	}
	defer d.close()
	sctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	err = d.setupAuth(sctx)
	cancel()
	if err != nil {
		return cli.Exit(2, err)
	}
	if !d.run() {
		return cli.Exit(1, nil)
	}
	return nil
}
