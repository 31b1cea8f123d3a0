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
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	// The node's time zone (node.time_zone, the deadline calendar's) must
	// load on a host or image without /usr/share/zoneinfo.
	_ "time/tzdata"

	"github.com/cityhub/cityhub/cmd/internal/version"
	"github.com/cityhub/cityhub/config"
	"github.com/cityhub/cityhub/tiers/node"
	"github.com/cityhub/cityhub/tiers/replica"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "cityhubd:", err)
		if errors.Is(err, node.ErrDamaged) {
			os.Exit(exitDamaged)
		}
		os.Exit(1)
	}
}

// exitDamaged is the exit status of a replica that refuses to start on
// damaged data (a service manager should not restart it: see
// RestartPreventExitStatus in the README).
const exitDamaged = 3

func run(args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("cityhubd", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "cityhubd runs one replica of a cityhub tier node.\n\nusage: cityhubd [--config FILE] [flags]\n\n"+
			"Configuration: the YAML file < CITYHUB_* environment variables < flags.\n\nflags:\n%s", fs.FlagUsages())
	}
	path := fs.String("config", "", "YAML configuration file")
	rejoin := fs.Bool("rejoin", false, "replace this replica's data from its group: move state, raft log and snapshots aside, start empty and ask raft.peers to take it back (run once)")
	showVersion := fs.Bool("version", false, "print the version (module version, VCS revision and time, toolchain) and exit")
	config.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil // --help printed the usage: not a failure
		}
		return err
	}
	if *showVersion {
		version.Print(stdout, "cityhubd")
		return nil
	}
	cfg, err := config.Load(*path, fs)
	if err != nil {
		return err
	}
	logger := cfg.Logger(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := replica.Start(ctx, cfg, replica.Options{Logger: logger, Rejoin: *rejoin})
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
