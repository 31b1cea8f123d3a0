// Command cityhubctl is the operator CLI of cityhub. It reports cases, walks
// them through the workflow, reads them back and administers the Raft group
// of a tier node and shows its federation links, over gRPC against any
// replica (followers forward writes to the leader). It also makes the
// development certificates of the mutual TLS between tier nodes (certs
// create, offline).
//
//	cityhubctl cases report --source inspector --kind event --major 01 --minor 02 \
//	    --grid 320582110152102 --desc "garbage at the bus stop" --actor 王五 --role inspector
//	cityhubctl cases act 320582-20261122-000001 file --actor 李四 --role shift-leader
//	cityhubctl cases get 320582-20261122-000001
//	cityhubctl cases watch --state dispatched --unit huanwei-01   # the change feed, one line per change
//	cityhubctl cluster status
//	cityhubctl federation status
//	cityhubctl --addr 127.0.0.1:7102 reconcile --dry-run
//	cityhubctl review list
//	cityhubctl owner resolve --kind event --class 0401 --grid 320505001001002
//	cityhubctl certs create --dir data/certs city d-320505 s-320505001
//	cityhubctl login --user admin
//	cityhubctl accounts create lead-1 --role shift-leader --display-name 李四
//	cityhubctl keys create --name "12345 热线平台" --role intake-clerk --sources 12345
//	cityhubctl audit --since 2h
//	cityhubctl snapshot save /backup/d-320505.snap
//	cityhubctl snapshot restore /backup/d-320505.snap --data-dir /var/lib/cityhub --name n1 --initial-cluster n1=10.0.0.1:7001,...
//
// A node authenticates every call (but login): cityhubctl sends the login
// kept by 'cityhubctl login' in a token file (refreshed as needed), or
// --token (a token or an integrator key); the node then takes each write's
// actor and role from it. --tls, --ca, --server-name talk TLS to a node whose
// client API has a certificate.
//
// Every write carries a request id (the server's idempotency key): --request-id,
// or a fresh random one printed to stderr so the exact write can be retried.
// Exit status: 0 success, 1 the call failed, 2 usage error.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
	// Times are shown in the operator's zone (TZ): on a host without
	// /usr/share/zoneinfo too.
	_ "time/tzdata"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/cityhub/cityhub/cmd/internal/version"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

const (
	defaultAddr = "127.0.0.1:7101"
	addrEnv     = "CITYHUB_ADDR"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// app holds the global flags and the connection of one invocation.
type app struct {
	addr    string
	timeout time.Duration
	output  string

	stdout, stderr io.Writer
	now            func() time.Time

	// Credentials and TLS of the client API (login.go).
	token, tokenFile        string
	tls, insecureSkipVerify bool
	ca, serverName          string
	stdin                   io.Reader
	creds                   callCreds
	credsChosen             bool
	credsFrom               string // where the credentials came from, for whoami

	conn *grpc.ClientConn
	// running is set when a command's own code starts: errors before that
	// (flags, arguments, unknown commands) are usage errors.
	running bool
}

// run executes one command line and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runIO(ctx, args, os.Stdin, stdout, stderr)
}

// runIO is run with stdin (passwords with --password-stdin).
func runIO(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, now: time.Now}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if a.conn != nil {
		a.conn.Close()
	}
	if err == nil {
		return 0
	}
	return a.fail(cmd, err)
}

// fail prints err and returns the exit status it calls for.
func (a *app) fail(cmd *cobra.Command, err error) int {
	var ue usageError
	if errors.As(err, &ue) || !a.running {
		fmt.Fprintf(a.stderr, "error: %v\n", err)
		if cmd != nil {
			fmt.Fprintf(a.stderr, "run '%s --help' for usage\n", cmd.CommandPath())
		}
		return 2
	}
	if st, ok := status.FromError(err); ok {
		writeStatusError(a.stderr, st)
		return 1
	}
	fmt.Fprintf(a.stderr, "error: %v\n", err)
	return 1
}

func (a *app) rootCmd() *cobra.Command {
	addr := os.Getenv(addrEnv)
	if addr == "" {
		addr = defaultAddr
	}
	root := &cobra.Command{
		Use:   "cityhubctl",
		Short: "Operate a cityhub tier node: report and walk cases, administer the Raft group",
		Long: `cityhubctl talks gRPC to any replica of a cityhub tier node.

Every write carries a request id, the server's idempotency key: pass
--request-id, or cityhubctl makes a random one and prints it to stderr as
"request-id: ..." so the same write can be retried exactly.

Nodes authenticate every call: log in first ('cityhubctl login --user NAME':
the login is kept in a token file, mode 0600, and refreshed as needed), or
pass --token (an access token or an integrator key; env CITYHUB_TOKEN). The
node takes the actor and role of every write from the credentials: --actor
and --role are needed only against a node with authentication off.

Exit status: 0 success, 1 the call failed, 2 usage error.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Version:       version.Read().String(),
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if a.output != "table" && a.output != "json" {
				return usagef("--output %q: must be table or json", a.output)
			}
			if a.timeout <= 0 {
				return usagef("--timeout must be positive")
			}
			if a.addr == "" {
				return usagef("--addr is empty")
			}
			return nil
		},
	}
	root.SetVersionTemplate("{{.Name}} {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.addr, "addr", addr, "gRPC address of any replica (env "+addrEnv+")")
	pf.DurationVar(&a.timeout, "timeout", 10*time.Second, "deadline of each call")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table|json")
	pf.StringVar(&a.token, "token", os.Getenv(tokenEnv), "access token or integrator key to send instead of the kept login (env "+tokenEnv+")")
	pf.StringVar(&a.tokenFile, "token-file", os.Getenv(tokenFileEnv), "where 'login' keeps the login (env "+tokenFileEnv+"; default $XDG_CONFIG_HOME/cityhub/token-<addr>.json)")
	pf.BoolVar(&a.tls, "tls", false, "talk TLS to the node's client API (implied by --ca, --server-name)")
	pf.StringVar(&a.ca, "ca", "", "PEM bundle of the CA that signed the node's certificate (default: the system's)")
	pf.StringVar(&a.serverName, "server-name", "", "name to check the node's certificate against (default: the host of --addr)")
	pf.BoolVar(&a.insecureSkipVerify, "insecure-skip-verify", false, "TLS without checking the node's certificate: development only")

	root.AddCommand(a.casesCmd(), a.clusterCmd(), a.catalogueCmd(), a.certsCmd(), a.federationCmd())
	root.AddCommand(a.snapshotCmd())   // snapshot: backup and restore
	root.AddCommand(a.evidenceCmd())   // evidence: photos and files of cases
	root.AddCommand(a.evaluationCmd()) // report: 综合评价
	root.AddCommand(a.importCmd())     // import: an old system's backlog

	// Ownership (责任清单): reconcile.go, owner.go.
	root.AddCommand(a.reconcileCmd(), a.reviewCmd(), a.ownerCmd())
	root.AddCommand(a.geoCmd()) // geo: grids and point → grid

	// Identity: login.go, accounts.go.
	root.AddCommand(a.loginCmd(), a.logoutCmd(), a.whoamiCmd(), a.accountsCmd(), a.keysCmd(), a.auditCmd())
	return root
}

// runE wraps a command body: it marks the start of the command's own work
// (so later errors are call failures, exit 1) and gives it a context bounded
// by --timeout.
func (a *app) runE(f func(ctx context.Context, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a.running = true
		return f(cmd.Context(), cmd, args)
	}
}

// call bounds one RPC by --timeout.
func (a *app) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, a.timeout)
}

func (a *app) dial() (*grpc.ClientConn, error) {
	if a.conn != nil {
		return a.conn, nil
	}
	tc, err := a.transport()
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(a.addr, grpc.WithTransportCredentials(tc), grpc.WithPerRPCCredentials(&a.creds))
	if err != nil {
		return nil, usagef("--addr %q: %v", a.addr, err)
	}
	a.conn = conn
	if err := a.useCredentials(); err != nil {
		return nil, err
	}
	return conn, nil
}

func (a *app) caseClient() (pb.CaseServiceClient, error) {
	conn, err := a.dial()
	if err != nil {
		return nil, err
	}
	return pb.NewCaseServiceClient(conn), nil
}

func (a *app) clusterClient() (pb.ClusterServiceClient, error) {
	conn, err := a.dial()
	if err != nil {
		return nil, err
	}
	return pb.NewClusterServiceClient(conn), nil
}

// requestID returns the id given with --request-id or a fresh random one,
// which it prints to stderr so the operator can retry the write exactly.
func (a *app) requestID(given string) (string, error) {
	if given != "" {
		return given, nil
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("making a request id: %w", err)
	}
	id := hex.EncodeToString(b[:])
	fmt.Fprintf(a.stderr, "request-id: %s\n", id)
	return id, nil
}
