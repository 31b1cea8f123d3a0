package feed_test

import (
	"context"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cityhub/cityhub/tiers/feed"
	"github.com/cityhub/cityhub/tiers/store"
)

// BenchmarkHubFanOut: the hub alone (no raft, no network): a writer
// appends changes to an in-memory store at 500 a second in transactions of
// 5 (an applied chunk), signalling each; 200 watchers follow with Next.
// Lag is from the commit of a change's transaction to a watcher's Next
// returning it. One iteration is one 10 s run:
//
//	go test -run '^$' -bench HubFanOut -benchtime 1x ./tiers/feed/
func BenchmarkHubFanOut(b *testing.B) {
	for i := 0; i < b.N; i++ {
		hubFanOut(b, 200, 500, 10*time.Second)
	}
}

func hubFanOut(b *testing.B, watchers, rate int, dur time.Duration) {
	b.StopTimer()
	s := newSource(b, store.FeedOptions{})
	h := startHub(b, s, feed.Options{})
	total := int(float64(rate) * dur.Seconds())
	const chunk = 5
	committed := make([]time.Time, total+1) // by revision
	var mu sync.RWMutex
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lags := make([][]time.Duration, watchers)
	var wg sync.WaitGroup
	for i := 0; i < watchers; i++ {
		w, err := h.Watch(0)
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.Close()
			for w.Position() < uint64(total) {
				page, err := w.Next(ctx, 256, 0)
				if err != nil {
					return
				}
				now := time.Now()
				mu.RLock()
				for _, ch := range page {
					lags[i] = append(lags[i], now.Sub(committed[ch.Revision]))
				}
				mu.RUnlock()
			}
		}()
	}
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	b.StartTimer()
	interval := time.Second * chunk / time.Duration(rate)
	for k := 0; k < total/chunk; k++ {
		if d := time.Until(start.Add(time.Duration(k) * interval)); d > 0 {
			time.Sleep(d) // pacing the writer, not synchronisation
		}
		s.report(b, chunk)
		now := time.Now()
		mu.Lock()
		for r := k*chunk + 1; r <= (k+1)*chunk; r++ {
			committed[r] = now
		}
		mu.Unlock()
	}
	wg.Wait()
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	var all []time.Duration
	for _, l := range lags {
		all = append(all, l...)
	}
	if len(all) != watchers*total {
		b.Fatalf("%d deliveries, want %d", len(all), watchers*total)
	}
	slices.Sort(all)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	b.ReportMetric(ms(all[len(all)/2]), "lag-p50-ms")
	b.ReportMetric(ms(all[len(all)*99/100]), "lag-p99-ms")
	b.ReportMetric(ms(all[len(all)-1]), "lag-max-ms")
	b.ReportMetric(cpu.Seconds()/time.Since(start).Seconds(), "cpu-cores")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(len(all)), "cpu-ns/delivery")
}
