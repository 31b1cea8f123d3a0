package main

import (
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// report prints the figures of a run that passed every check: the cases
// walked and their holders, report-to-close latencies, retried calls by
// code, the time the links took to drain and the copies to converge.
func (d *driver) report(runs, extra []*caseRun, walked, settled, converged time.Duration) {
	var lat []time.Duration
	perHolder := map[string]int{}
	for _, r := range runs {
		lat = append(lat, r.closed.Sub(r.reported))
		perHolder[r.holder.name]++
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration {
		return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(time.Millisecond)
	}
	var holders []string
	for _, g := range d.o.nodes {
		holders = append(holders, fmt.Sprintf("%s=%d", g.name, perHolder[g.name]))
	}
	var codesSeen []string
	var total int64
	d.retries.Range(func(k, v any) bool {
		n := v.(*atomic.Int64).Load()
		total += n
		codesSeen = append(codesSeen, fmt.Sprintf("%s=%d", k, n))
		return true
	})
	sort.Strings(codesSeen)
	fmt.Printf("cityhubfedcheck: %d cases walked to closure in %v (held by %s), %d further cases checked\n",
		len(runs), walked.Round(time.Millisecond), strings.Join(holders, " "), len(extra))
	fmt.Printf("cityhubfedcheck: report→close p50 %v p99 %v max %v; retried calls %d (%s); %d reads checked\n",
		pct(0.5), pct(0.99), lat[len(lat)-1].Round(time.Millisecond), total, strings.Join(codesSeen, " "), d.reads.Load())
	fmt.Printf("cityhubfedcheck: links drained %v after the last close; every copy checked against the holder's in %v more\n",
		settled.Round(time.Millisecond), (converged - settled).Round(time.Millisecond))
	fmt.Println("cityhubfedcheck: 1 passed, 0 failed")
}
