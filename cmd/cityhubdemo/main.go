// Command cityhubdemo runs the main job on the embedded defaults: the whole
// default federation (testdata/city/federation.yaml: a city, 2 districts,
// 4 streets, 8 communities) in one process on loopback, each node its own
// Raft group with its own data directory and API, and a generator that
// keeps reporting realistic cases at every tier and walking them through
// their lifecycle: the city dispatches cases down to district, street and
// community units (the case is handed to that node), communities and
// streets pass some up (上交), and every version flows back up to the
// city's mirror. A newcomer has live data to look at.
//
//	go run ./cmd/cityhubdemo            # or: make run
//	go run ./cmd/cityhubdemo --tls      # mTLS between nodes, dev certificates
//
// Node k of 15 (tree order, the city is 1) listens on raft 7000+k, gRPC
// 7100+k, REST 7200+k and federation 7300+k (see the topology file's
// comments for --replicas 3); data goes to data/demo/<node>. A restart on
// the same data continues where it stopped.
//
// Authentication is on: every node's administrator comes from the demo's
// password file (data/demo/auth/password, random per data directory), and
// the demo makes each node's staff accounts, unit seats and integrator keys
// through the API; the generator acts through them (identities.go). The
// banner prints the password and how to log in.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cityhub/cityhub/cmd/internal/cli"
)

// options of one run.
type options struct {
	dataDir  string
	rate     float64       // new reports a second, over the whole federation
	duration time.Duration // 0: until the context ends
	replicas int
	tls      bool
	portBase int
	// noBacklog skips importing and reconciling the sample district's
	// legacy backlog at start.
	noBacklog bool

	pace        time.Duration // mean pause between two steps of a case
	statusEvery time.Duration
	out, log    io.Writer
	// stopWhen, when set, is asked after each status line whether the
	// generator has done enough; it stops the generator once it says so
	// (tests wait for counts, not for a time; duration still bounds the
	// run).
	stopWhen func(*simulator) bool
	// beforeStop runs once the generator has stopped, with every node
	// still up (tests inspect the federation there).
	beforeStop func(*demo) error
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// A second Ctrl-C kills at once.
	context.AfterFunc(ctx, stop)
	err := cli.Execute(ctx, rootCmd(func(ctx context.Context, o options) error { return run(ctx, o) }, os.Stdout, os.Stderr), os.Args[1:], os.Stdout, os.Stderr)
	os.Exit(cli.Status("cityhubdemo", err, os.Stderr))
}

// rootCmd is the command line: its flags fill the options that start
// gets (run; tests pass their own).
func rootCmd(start func(context.Context, options) error, stdout, stderr io.Writer) *cobra.Command {
	o := options{out: stdout, log: stderr, pace: 3 * time.Second, statusEvery: 5 * time.Second}
	root := cli.Root("cityhubdemo", "Run the sample city's whole federation in one process with a case generator",
		`cityhubdemo runs the sample city (testdata/city, embedded): its 15-node
federation in one process on loopback, each node its own Raft group with
its own data directory and API, the district's legacy backlog imported and
reconciled, and a generator that keeps reporting and walking cases. It is
the one program that runs on the sample city's files: the topology, the
responsibility catalogue and the grid geometry are written to <data> and
named in each node's configuration. Ctrl-C stops it.`)
	f := root.Flags()
	f.SortFlags = false
	f.StringVar(&o.dataDir, "data", "data/demo", "data directory: topology.yaml, certs/ and one directory per node")
	f.Float64Var(&o.rate, "rate", 4, "new reports per second over the whole federation")
	f.DurationVar(&o.duration, "duration", 0, "stop after this long (0: until Ctrl-C)")
	f.IntVar(&o.replicas, "replicas", 1, "replicas per node: 1 or 3")
	f.BoolVar(&o.tls, "tls", false, "mutual TLS between nodes, with development certificates made in <data>/certs (default: plain text on loopback)")
	f.IntVar(&o.portBase, "port-base", 7000, "ports: raft base+i, gRPC base+100+i, REST base+200+i, federation base+300+i for replica i")
	f.BoolVar(&o.noBacklog, "no-backlog", false, "do not import and reconcile the sample district's legacy backlog (testdata/city/legacy) at start")
	root.RunE = func(cmd *cobra.Command, _ []string) error { return start(cmd.Context(), o) }
	return root
}
