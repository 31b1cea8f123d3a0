// Command cityhubd runs one replica of a cityhub tier node.
//
//	cityhubd --config config/examples/tier-3/n1.yaml
//	cityhubd --config config/examples/tier-3/n3.yaml --rejoin
//	cityhubd --version
//
// Configuration comes from the YAML file, CITYHUB_* environment variables
// and flags (see package config). SIGINT or SIGTERM stops it gracefully.
//
// Before it serves, the replica checks its raft log, snapshots and state
// store against each other (tiers/node, start-up checks): what it cannot
// vouch for it rebuilds from its own snapshot and log, or it refuses to
// start, naming the file, and exits with status 3. --rejoin replaces the
// replica's data from its group: the state, raft log and snapshots are
// moved aside (<name>.rejoin-<time>), the replica starts empty and asks the
// members in raft.peers to take it back; the leader removes it, adds it
// again and sends it a snapshot. Run it once, by hand: a later start
// without it keeps the data it received.
package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	// The node's time zone (node.time_zone, the deadline calendar's) must
	// load on a host or image without /usr/share/zoneinfo.
	_ "time/tzdata"

	"github.com/cityhub/cityhub/cmd/internal/cli"
	"github.com/cityhub/cityhub/cmd/internal/version"
	"github.com/cityhub/cityhub/config"
	"github.com/cityhub/cityhub/tiers/node"
	"github.com/cityhub/cityhub/tiers/replica"
)

func main() {
	os.Exit(cli.Status("cityhubd", run(os.Args[1:], os.Stdout, os.Stderr), os.Stderr))
}

// exitDamaged is the exit status of a replica that refuses to start on
// damaged data (a service manager should not restart it: see
// RestartPreventExitStatus in the README).
const exitDamaged = 3

// run executes one command line; an error's exit status is cli.Status's
// (exitDamaged for damaged data).
func run(args []string, stdout, stderr io.Writer) error {
	var path string
	var rejoin bool
	root := cli.Root("cityhubd", "Run one replica of a cityhub tier node",
		`cityhubd runs one replica of a cityhub tier node.

Configuration: the YAML file < CITYHUB_* environment variables < flags
(only the flags that are set). Exit status: 0 after a graceful stop
(SIGINT, SIGTERM), 1 on an error, 2 on a usage error, 3 when the replica
refuses to start on damaged data.`)
	root.Flags().SortFlags = false
	root.Flags().StringVar(&path, "config", "", "YAML configuration file")
	root.Flags().BoolVar(&rejoin, "rejoin", false, "replace this replica's data from its group: move state, raft log and snapshots aside, start empty and ask raft.peers to take it back (run once)")
	config.BindFlags(root.Flags())
	root.RunE = func(cmd *cobra.Command, _ []string) error {
		return withExitStatus(serve(path, rejoin, cmd.Flags(), stderr))
	}
	return cli.Execute(context.Background(), root, args, stdout, stderr)
}

// withExitStatus gives a refusal to start on damaged data its exit status.
func withExitStatus(err error) error {
	if errors.Is(err, node.ErrDamaged) {
		return cli.Exit(exitDamaged, err)
	}
	return err
}

// serve loads the configuration and runs the replica until SIGINT or SIGTERM.
func serve(path string, rejoin bool, flags *pflag.FlagSet, stderr io.Writer) error {
	cfg, err := config.Load(path, flags)
	if err != nil {
		return err
	}
	logger := cfg.Logger(stderr)
	setGCPercent(cfg.Node.GCPercent, os.Getenv("GOGC"), logger)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := replica.Start(ctx, cfg, replica.Options{Logger: logger, Rejoin: rejoin})
	if err != nil {
		return err
	}
	v := version.Read()
	logger.Info("cityhubd started", "version", v.Version, "revision", v.Revision, "node", cfg.Node.ID, "tier", cfg.Node.Tier, "jurisdiction", cfg.Node.Jurisdiction,
		"raft", cfg.Raft.Addr, "grpc", r.API.GRPCAddr(), "http", r.API.HTTPAddr(), "data", cfg.Node.DataDir)
	<-ctx.Done()
	logger.Info("stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return r.Stop(sctx)
}

// setGCPercent applies node.gc_percent unless GOGC is set (it wins) or
// the setting is 0.
func setGCPercent(percent int, gogc string, logger *slog.Logger) {
	if gogc != "" || percent == 0 {
		return
	}
	before := debug.SetGCPercent(percent)
	logger.Info("garbage collector target set", "gc_percent", percent, "was", before)
}
