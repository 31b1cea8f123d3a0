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
//	cityhubctl cluster status
//	cityhubctl federation status
//	cityhubctl --addr 127.0.0.1:7102 reconcile --dry-run
//	cityhubctl review list
//	cityhubctl owner resolve --kind event --class 0401 --grid 320505001001002
//	cityhubctl certs create --dir data/certs city d-320505 s-320505001
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

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

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

	conn *grpc.ClientConn
	// running is set when a command's own code starts: errors before that
	// (flags, arguments, unknown commands) are usage errors.
	running bool
}

// run executes one command line and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr, now: time.Now}
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

Exit status: 0 success, 1 the call failed, 2 usage error.`,
		SilenceErrors: true,
		SilenceUsage:  true,
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
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.addr, "addr", addr, "gRPC address of any replica (env "+addrEnv+")")
	pf.DurationVar(&a.timeout, "timeout", 10*time.Second, "deadline of each call")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table|json")

	root.AddCommand(a.casesCmd(), a.clusterCmd(), a.catalogueCmd(), a.certsCmd(), a.federationCmd())
	root.AddCommand(a.evaluationCmd()) // report: 综合评价
	root.AddCommand(a.importCmd())     // import: an old system's backlog

	// Ownership (责任清单): reconcile.go, owner.go.
	root.AddCommand(a.reconcileCmd(), a.reviewCmd(), a.ownerCmd())
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
	conn, err := grpc.NewClient(a.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, usagef("--addr %q: %v", a.addr, err)
	}
	a.conn = conn
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
