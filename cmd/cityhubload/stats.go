package main

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"syscall"
	"time"
)

// percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value such that at least p percent of
// the values are less than or equal to it. It returns 0 for no values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	return sorted[min(max(rank, 1), n)-1]
}

// result is what one run measured.
type result struct {
	Proto      string         `json:"proto"`
	Addrs      []string       `json:"addrs"`
	Clients    int            `json:"clients"`
	Warmup     float64        `json:"warmup_s"`
	Elapsed    float64        `json:"elapsed_s"` // measured window
	OK         int            `json:"ok"`
	Failed     int            `json:"failed"`
	Throughput float64        `json:"throughput_rps"` // successful requests per second
	P50        float64        `json:"p50_ms"`
	P90        float64        `json:"p90_ms"`
	P99        float64        `json:"p99_ms"`
	Max        float64        `json:"max_ms"`
	Errors     map[string]int `json:"errors,omitempty"` // by gRPC code or HTTP status
	// CPU is the user and system seconds this program used over the whole
	// run, warmup and connecting included: on a machine it shares with
	// the system under test, the load generator's share of the cores.
	CPU float64 `json:"cpu_s"`
}

// summarize fills in the figures from the latencies of the successful
// requests (sorted in place), the error counts and the measured window.
func summarize(r *result, lat []time.Duration, errs map[string]int, elapsed time.Duration) {
	slices.Sort(lat)
	r.OK = len(lat)
	r.Failed = 0
	for _, n := range errs {
		r.Failed += n
	}
	r.Errors = errs
	r.Elapsed = elapsed.Seconds()
	if elapsed > 0 {
		r.Throughput = float64(r.OK) / elapsed.Seconds()
	}
	r.P50, r.P90, r.P99 = ms(percentile(lat, 50)), ms(percentile(lat, 90)), ms(percentile(lat, 99))
	if len(lat) > 0 {
		r.Max = ms(lat[len(lat)-1])
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// print writes the result as a human-readable table.
func (r *result) print(w io.Writer) {
	fmt.Fprintf(w, "cityhubload: %s, %d clients over %s, %.1fs measured after %.1fs warmup\n",
		r.Proto, r.Clients, strings.Join(r.Addrs, ","), r.Elapsed, r.Warmup)
	fmt.Fprintf(w, "  %-12s %10d\n", "ok", r.OK)
	fmt.Fprintf(w, "  %-12s %10d\n", "failed", r.Failed)
	fmt.Fprintf(w, "  %-12s %10.1f req/s\n", "throughput", r.Throughput)
	for _, row := range []struct {
		name string
		v    float64
	}{{"p50", r.P50}, {"p90", r.P90}, {"p99", r.P99}, {"max", r.Max}} {
		fmt.Fprintf(w, "  %-12s %10.3f ms\n", row.name, row.v)
	}
	for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
		fmt.Fprintf(w, "  error %-20s %d\n", k, r.Errors[k])
	}
}

// processCPU is the user and system seconds this process has used so far
// (0 where getrusage fails).
func processCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
