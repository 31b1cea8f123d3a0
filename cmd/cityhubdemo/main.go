// Command cityhubdemo runs the main job on the embedded defaults: a
// 3-replica district tier node in one process, on loopback, with a
// generator that keeps reporting realistic cases and walking them through
// their lifecycle, so a newcomer has live data to look at.
//
//	go run ./cmd/cityhubdemo            # or: make run
//
// Ports are those of config/examples/tier-3 (REST 7201-7203, gRPC
// 7101-7103, raft 7001-7003); data goes to data/demo/.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cityhub/cityhub/cmd/internal/casegen"
	"github.com/cityhub/cityhub/config"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/replica"
)

func main() {
	dataDir := flag.String("data", "data/demo", "data directory of the three replicas")
	rate := flag.Float64("rate", 4, "new reports per second")
	duration := flag.Duration("duration", 0, "stop after this long (0: until Ctrl-C)")
	flag.Parse()
	if err := run(*dataDir, *rate, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "cityhubdemo:", err)
		os.Exit(1)
	}
}

func run(dataDir string, rate float64, duration time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfgs := tierConfigs(dataDir)
	var reps []*replica.Replica
	defer func() {
		for _, r := range reps {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = r.Stop(sctx)
			cancel()
		}
	}()
	for _, cfg := range cfgs {
		r, err := replica.Start(ctx, cfg, replica.Options{Logger: logger, RaftLog: io.Discard})
		if err != nil {
			return fmt.Errorf("start %s: %w", cfg.Node.ID, err)
		}
		reps = append(reps, r)
	}
	if _, err := reps[0].Node.WaitForLeader(ctx); err != nil {
		return err
	}
	fmt.Printf(`cityhub demo: a 3-replica district node (jurisdiction %s) is up, data in %s
  REST    http://%s/v1/cases?page_size=5    (also %s, %s)
  metrics http://%s/metrics
  OpenAPI http://%s/openapi.json
  CLI     go run ./cmd/cityhubctl cases list --limit 10
          go run ./cmd/cityhubctl cluster status
Reporting about %.0f cases a second and walking them to the end. Ctrl-C stops.

`, cfgs[0].Node.Jurisdiction, dataDir, cfgs[0].HTTP.Addr, cfgs[1].HTTP.Addr, cfgs[2].HTTP.Addr, cfgs[0].HTTP.Addr, cfgs[0].HTTP.Addr, rate)

	var clients []pb.CaseServiceClient
	for _, cfg := range cfgs {
		cc, err := grpc.NewClient(cfg.GRPC.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer cc.Close()
		clients = append(clients, pb.NewCaseServiceClient(cc))
	}
	seed := uint64(time.Now().UnixNano())
	sim := &simulator{gen: casegen.New(seed, cfgs[0].Node.Jurisdiction, fmt.Sprintf("demo-%x", seed)), clients: clients, rng: rand.New(rand.NewPCG(seed, 1))}
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	report := time.NewTicker(5 * time.Second)
	defer report.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Println("\nstopping; the data stays in", dataDir)
			return nil
		case <-tick.C:
			sim.step(ctx)
		case <-report.C:
			printCounts(reps)
		}
	}
}

// tierConfigs builds the three replicas' configuration from the defaults.
func tierConfigs(dataDir string) []config.Config {
	var peers []config.Peer
	var cfgs []config.Config
	for i := 1; i <= 3; i++ {
		cfg := config.Default()
		cfg.Node.ID = fmt.Sprintf("n%d", i)
		cfg.Node.DataDir = filepath.Join(dataDir, cfg.Node.ID)
		cfg.Raft.Addr = fmt.Sprintf("127.0.0.1:700%d", i)
		cfg.GRPC.Addr = fmt.Sprintf("127.0.0.1:710%d", i)
		cfg.HTTP.Addr = fmt.Sprintf("127.0.0.1:720%d", i)
		cfg.Raft.Bootstrap = true
		cfg.ApplyDerived()
		peers = append(peers, config.Peer{ID: cfg.Node.ID, RaftAddr: cfg.Raft.Addr, GRPCAddr: cfg.GRPC.Addr, HTTPAddr: cfg.HTTP.Addr})
		cfgs = append(cfgs, cfg)
	}
	for i := range cfgs {
		cfgs[i].Raft.Peers = peers
	}
	return cfgs
}

// simulator plays the people: it reports new cases and moves open ones on.
type simulator struct {
	gen     *casegen.Generator
	clients []pb.CaseServiceClient
	rng     *rand.Rand
	open    []*pb.Case
}

func (s *simulator) client() pb.CaseServiceClient { return s.clients[s.rng.IntN(len(s.clients))] }

func (s *simulator) step(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if resp, err := s.client().ReportCase(cctx, s.gen.Report()); err == nil {
		s.open = append(s.open, resp.Case)
	}
	// Move a few open cases one step each.
	for k := 0; k < 3 && len(s.open) > 0; k++ {
		i := s.rng.IntN(len(s.open))
		req := s.gen.Next(s.open[i])
		if req == nil {
			s.open = append(s.open[:i], s.open[i+1:]...)
			continue
		}
		resp, err := s.client().Act(cctx, req)
		if err != nil {
			continue
		}
		s.open[i] = resp.Case
	}
}

func printCounts(reps []*replica.Replica) {
	for _, r := range reps {
		if !r.Node.IsLeader() {
			continue
		}
		counts, err := r.Node.Store().CountByState()
		if err != nil {
			return
		}
		var parts []string
		total := int64(0)
		for st, n := range counts {
			if n > 0 {
				parts = append(parts, fmt.Sprintf("%s=%d", strings.ToLower(strings.TrimPrefix(st.String(), "STATE_")), n))
				total += n
			}
		}
		sort.Strings(parts)
		fmt.Printf("%s  leader %s  %d cases: %s\n", time.Now().Format("15:04:05"), r.Node.ID(), total, strings.Join(parts, " "))
	}
}
