package replica_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cityhub/cityhub/config"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// BenchmarkFeedFanOut (issue 15, acceptance 4): the change feed of an
// in-process 3-replica tier (real raft over TCP, raft-wal, badger, gRPC)
// fanned out to W watchers, each on its own gRPC connection to one of the
// replicas in turn, while a paced writer reports cases to the leader at R
// changes a second for S seconds. Lag is from the time the leader stamped
// into a change's command to the moment a watcher receives it: raft
// commit, apply on the watcher's replica, the hub's read, the send. Every
// watcher must receive every change. One iteration is one whole run:
//
//	go test -run '^$' -bench FeedFanOut -benchtime 1x ./tiers/replica/
//
// FEEDBENCH_RATE (500), FEEDBENCH_SECONDS (20), FEEDBENCH_WATCHERS
// ("1,200": a sub-benchmark each, for the ratio) and FEEDBENCH_DELAYS
// (feed.batch_delay, "0s,20ms") change the load.
func BenchmarkFeedFanOut(b *testing.B) {
	rate := envInt("FEEDBENCH_RATE", 500)
	secs := envInt("FEEDBENCH_SECONDS", 20)
	counts := []int{1, 200}
	if v := os.Getenv("FEEDBENCH_WATCHERS"); v != "" {
		counts = nil
		for _, s := range strings.Split(v, ",") {
			n, err := strconv.Atoi(s)
			if err != nil {
				b.Fatalf("FEEDBENCH_WATCHERS: %v", err)
			}
			counts = append(counts, n)
		}
	}
	delays := []time.Duration{0, 20 * time.Millisecond}
	if v := os.Getenv("FEEDBENCH_DELAYS"); v != "" {
		delays = nil
		for _, s := range strings.Split(v, ",") {
			d, err := time.ParseDuration(s)
			if err != nil {
				b.Fatalf("FEEDBENCH_DELAYS: %v", err)
			}
			delays = append(delays, d)
		}
	}
	for _, d := range delays {
		for _, w := range counts {
			b.Run(fmt.Sprintf("batch_delay=%v/watchers=%d/rate=%d", d, w, rate), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					feedFanOut(b, w, rate, time.Duration(secs)*time.Second, d)
				}
			})
		}
	}
}

func envInt(key string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(key)); err == nil && v > 0 {
		return v
	}
	return def
}

func feedFanOut(b *testing.B, watchers, rate int, dur, delay time.Duration) {
	b.StopTimer()
	c := testcluster.New(b, 3, func(cfg *config.Config) { cfg.Feed.BatchDelay = delay })
	leader := c.WaitLeader(10 * time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The watchers, from now, each on a connection of its own.
	type watcher struct {
		lags []time.Duration
		got  atomic.Int64
	}
	ws := make([]*watcher, watchers)
	var started, wwg sync.WaitGroup
	for i := range ws {
		w := &watcher{}
		ws[i] = w
		conn, err := grpc.NewClient(c.Members[i%3].Cfg.GRPC.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		stream, err := pb.NewFeedServiceClient(conn).WatchCases(ctx, &pb.WatchCasesRequest{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil { // the first heartbeat: the watch is open
			b.Fatal(err)
		}
		started.Add(1)
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			started.Done()
			for {
				m, err := stream.Recv()
				if err != nil {
					return
				}
				now := time.Now()
				for _, ch := range m.Changes {
					w.lags = append(w.lags, now.Sub(ch.At.AsTime()))
				}
				w.got.Add(int64(len(m.Changes)))
			}
		}()
	}
	started.Wait()

	// The paced writer: one report every 1/rate s to the leader, by a
	// pool of senders (a slow commit never holds the pace back).
	total := int(float64(rate) * dur.Seconds())
	ticks := make(chan int, 1024)
	var (
		acked, missed atomic.Int64
		swg           sync.WaitGroup
	)
	cs := c.Cases(leader)
	for s := 0; s < 64; s++ {
		swg.Add(1)
		go func() {
			defer swg.Done()
			for k := range ticks {
				r := report(fmt.Sprintf("fanout-%d", k), "变更流基准 feed benchmark")
				r.GridCode = fmt.Sprintf("320582%09d", 110000000+k) // no duplicate search over one grid
				if _, err := cs.ReportCase(ctx, r); err != nil {
					b.Errorf("report %d: %v", k, err)
					return
				}
				acked.Add(1)
			}
		}()
	}
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	b.StartTimer()
	interval := time.Second / time.Duration(rate)
	for k := 0; k < total; k++ {
		if d := time.Until(start.Add(time.Duration(k) * interval)); d > 0 {
			time.Sleep(d) // pacing the load generator, not synchronisation
		}
		select {
		case ticks <- k:
		default:
			missed.Add(1) // the senders fell behind the pace
			ticks <- k
		}
	}
	close(ticks)
	swg.Wait()
	sent := time.Since(start)
	// Every watcher gets every change (a generous bound).
	deadline := time.Now().Add(2 * time.Minute)
	for _, w := range ws {
		for w.got.Load() < acked.Load() {
			if time.Now().After(deadline) {
				b.Fatalf("a watcher has %d of %d changes", w.got.Load(), acked.Load())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	b.StopTimer()
	var ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	wall := time.Since(start)
	cancel()
	wwg.Wait()

	var lags []time.Duration
	for _, w := range ws {
		lags = append(lags, w.lags...)
	}
	slices.Sort(lags)
	pct := func(p float64) float64 {
		return float64(lags[min(len(lags)-1, int(p*float64(len(lags))))]) / float64(time.Millisecond)
	}
	cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * time.Nanosecond
	b.ReportMetric(float64(acked.Load())/sent.Seconds(), "changes/s")
	b.ReportMetric(pct(0.50), "lag-p50-ms")
	b.ReportMetric(pct(0.99), "lag-p99-ms")
	b.ReportMetric(float64(lags[len(lags)-1])/float64(time.Millisecond), "lag-max-ms")
	b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cpu-cores")
	// The whole process (raft, writer, watchers' clients) per delivery: a
	// figure that a machine shared with other work changes less than lag.
	b.ReportMetric(float64(cpu.Microseconds())/float64(len(lags)), "cpu-us/delivery")
	b.ReportMetric(float64(len(lags)), "deliveries")
	b.ReportMetric(float64(missed.Load()), "late-ticks")
}
