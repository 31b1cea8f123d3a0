// Command cityhubd runs one replica of a cityhub tier node.
//
//	cityhubd --config config/examples/tier-3/n1.yaml
//
// Configuration comes from the YAML file, CITYHUB_* environment variables
// and flags (see package config). SIGINT or SIGTERM stops it gracefully.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/cityhub/cityhub/config"
	"github.com/cityhub/cityhub/tiers/replica"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "cityhubd:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := pflag.NewFlagSet("cityhubd", pflag.ContinueOnError)
	path := fs.String("config", "", "YAML configuration file")
	config.BindFlags(fs)
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	cfg, err := config.Load(*path, fs)
	if err != nil {
		return err
	}
	logger := cfg.Logger(os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := replica.Start(ctx, cfg, replica.Options{Logger: logger})
	if err != nil {
		return err
	}
	logger.Info("cityhubd started", "node", cfg.Node.ID, "tier", cfg.Node.Tier, "jurisdiction", cfg.Node.Jurisdiction,
		"raft", cfg.Raft.Addr, "grpc", r.API.GRPCAddr(), "http", r.API.HTTPAddr(), "data", cfg.Node.DataDir)
	<-ctx.Done()
	logger.Info("stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return r.Stop(sctx)
}
