// Command cityhubd runs one replica of a cityhub tier node.
//
//	cityhubd --config config/examples/tier-3/n1.yaml
//	cityhubd --version
//
// Configuration comes from the YAML file, CITYHUB_* environment variables
// and flags (see package config). SIGINT or SIGTERM stops it gracefully.
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
	"github.com/cityhub/cityhub/tiers/replica"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "cityhubd:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("cityhubd", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "cityhubd runs one replica of a cityhub tier node.\n\nusage: cityhubd [--config FILE] [flags]\n\n"+
			"Configuration: the YAML file < CITYHUB_* environment variables < flags.\n\nflags:\n%s", fs.FlagUsages())
	}
	path := fs.String("config", "", "YAML configuration file")
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
	r, err := replica.Start(ctx, cfg, replica.Options{Logger: logger})
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
