// Command etcdbench is the anchor of cityhub's write benchmark
// (scripts/bench-tier.sh, BENCHMARKS.md): etcd, 3 members as separate
// processes on loopback, measured with the same closed loop as
// cmd/cityhubload.
//
//	etcdbench member --name m1 --dir data/m1 --client 127.0.0.1:12379 --peer 127.0.0.1:12380 \
//	    --cluster m1=127.0.0.1:12380,m2=127.0.0.1:22380,m3=127.0.0.1:32380
//	etcdbench load --endpoints 127.0.0.1:12379,127.0.0.1:22379,127.0.0.1:32379 --clients 64 --duration 10s --warmup 3s
//
// member runs one etcd member (go.etcd.io/etcd/server/v3/embed, defaults:
// an fsync per batch of the WAL, snapshots every 10,000 entries) until
// SIGINT or SIGTERM. load finds the leader, then N clients, each with one
// request in flight, put 256-byte values under fresh keys through one
// client connection to the leader (cityhubload sends its creates to the
// leader over one connection too); requests that start during the warmup
// are not recorded. It prints throughput and latency percentiles, as a
// table or as cityhubload's JSON.
//
// It is a module of its own (its go.mod): etcd's server pins versions of
// gRPC and OpenTelemetry that cityhub does not need to follow. Build it
// with `make etcdbench`.
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: etcdbench member|load [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "member":
		err = member(os.Args[2:])
	case "load":
		err = load(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: member or load", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcdbench:", err)
		os.Exit(1)
	}
}

func member(args []string) error {
	fs := flag.NewFlagSet("member", flag.ExitOnError)
	name := fs.String("name", "m1", "member name")
	dir := fs.String("dir", "", "data directory (required)")
	client := fs.String("client", "127.0.0.1:2379", "client address (host:port)")
	peer := fs.String("peer", "127.0.0.1:2380", "peer address (host:port)")
	cluster := fs.String("cluster", "", "initial cluster: name=host:port,... (required)")
	fs.Parse(args)
	if *dir == "" || *cluster == "" {
		return errors.New("member: --dir and --cluster are required")
	}
	cfg := embed.NewConfig()
	cfg.Name = *name
	cfg.Dir = *dir
	cfg.LogLevel = "error"
	cu, err := url.Parse("http://" + *client)
	if err != nil {
		return err
	}
	pu, err := url.Parse("http://" + *peer)
	if err != nil {
		return err
	}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	var ic []string
	for _, m := range strings.Split(*cluster, ",") {
		n, addr, ok := strings.Cut(m, "=")
		if !ok {
			return fmt.Errorf("member: --cluster entry %q is not name=host:port", m)
		}
		ic = append(ic, n+"=http://"+addr)
	}
	cfg.InitialCluster = strings.Join(ic, ",")
	cfg.InitialClusterToken = "etcdbench"
	cfg.ClusterState = embed.ClusterStateFlagNew
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}
	defer e.Close()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-e.Server.ReadyNotify():
		log.Printf("etcd member %s ready (client %s)", *name, *client)
	case err := <-e.Err():
		return err
	case <-sig:
		return nil
	}
	select {
	case err := <-e.Err():
		return err
	case <-sig:
		return nil
	}
}

// result is cityhubload's JSON shape.
type result struct {
	Proto      string         `json:"proto"`
	Addrs      []string       `json:"addrs"`
	Clients    int            `json:"clients"`
	Warmup     float64        `json:"warmup_s"`
	Elapsed    float64        `json:"elapsed_s"`
	OK         int            `json:"ok"`
	Failed     int            `json:"failed"`
	Throughput float64        `json:"throughput_rps"`
	P50        float64        `json:"p50_ms"`
	P90        float64        `json:"p90_ms"`
	P99        float64        `json:"p99_ms"`
	Max        float64        `json:"max_ms"`
	Errors     map[string]int `json:"errors,omitempty"`
	CPU        float64        `json:"cpu_s"` // this program's user+system seconds, the whole run
}

func load(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	endpoints := fs.String("endpoints", "127.0.0.1:12379,127.0.0.1:22379,127.0.0.1:32379", "client addresses of the members")
	clients := fs.Int("clients", 1, "concurrent clients, each with one put in flight")
	duration := fs.Duration("duration", 10*time.Second, "measured time, after the warmup")
	warmup := fs.Duration("warmup", 0, "load before measuring starts")
	size := fs.Int("size", 256, "value size in bytes")
	timeout := fs.Duration("timeout", 10*time.Second, "per-request timeout")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	fs.Parse(args)
	eps := strings.Split(*endpoints, ",")
	leader, err := findLeader(eps)
	if err != nil {
		return err
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{leader}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	value := make([]byte, *size)
	rand.Read(value)
	val := string(value)
	run := fmt.Sprintf("%d", time.Now().UnixNano())

	start := time.Now()
	measureFrom := start.Add(*warmup)
	end := measureFrom.Add(*duration)
	var (
		mu   sync.Mutex
		lat  []time.Duration
		errs = map[string]int{}
		wg   sync.WaitGroup
	)
	for c := 0; c < *clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			myErrs := map[string]int{}
			for n := 0; ; n++ {
				t0 := time.Now()
				if !t0.Before(end) {
					break
				}
				ctx, cancel := context.WithTimeout(context.Background(), *timeout)
				_, err := cli.Put(ctx, fmt.Sprintf("bench/%s/%d/%d", run, c, n), val)
				cancel()
				d := time.Since(t0)
				if t0.Before(measureFrom) || t0.Add(d).After(end) {
					continue
				}
				if err != nil {
					myErrs[errName(err)]++
					continue
				}
				mine = append(mine, d)
			}
			mu.Lock()
			lat = append(lat, mine...)
			for k, v := range myErrs {
				errs[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	r := result{Proto: "etcd", Addrs: []string{leader}, Clients: *clients, Warmup: warmup.Seconds(), Elapsed: duration.Seconds(), Errors: errs}
	slices.Sort(lat)
	r.OK = len(lat)
	for _, n := range errs {
		r.Failed += n
	}
	r.Throughput = float64(r.OK) / duration.Seconds()
	r.P50, r.P90, r.P99 = ms(percentile(lat, 50)), ms(percentile(lat, 90)), ms(percentile(lat, 99))
	if len(lat) > 0 {
		r.Max = ms(lat[len(lat)-1])
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		r.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	r.print(os.Stdout)
	return nil
}

// findLeader asks each endpoint for its status and returns the leader's
// client address.
func findLeader(eps []string) (string, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return "", err
	}
	defer cli.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, ep := range eps {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			st, err := cli.Status(ctx, ep)
			cancel()
			if err == nil && st.Leader != 0 && st.Leader == st.Header.MemberId {
				return ep, nil
			}
		}
		if time.Now().After(deadline) {
			return "", errors.New("no etcd leader among " + strings.Join(eps, ","))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func errName(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "DeadlineExceeded"
	default:
		s := err.Error()
		if len(s) > 40 {
			s = s[:40]
		}
		return s
	}
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	return sorted[min(max(rank, 1), n)-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (r *result) print(w io.Writer) {
	fmt.Fprintf(w, "etcdbench: %d clients to %s, %.1fs measured after %.1fs warmup\n", r.Clients, strings.Join(r.Addrs, ","), r.Elapsed, r.Warmup)
	fmt.Fprintf(w, "  %-12s %10d\n", "ok", r.OK)
	fmt.Fprintf(w, "  %-12s %10d\n", "failed", r.Failed)
	fmt.Fprintf(w, "  %-12s %10.1f req/s\n", "throughput", r.Throughput)
	for _, row := range []struct {
		name string
		v    float64
	}{{"p50", r.P50}, {"p90", r.P90}, {"p99", r.P99}, {"max", r.Max}} {
		fmt.Fprintf(w, "  %-12s %10.3f ms\n", row.name, row.v)
	}
	for k, v := range r.Errors {
		fmt.Fprintf(w, "  error %-20s %d\n", k, v)
	}
}
