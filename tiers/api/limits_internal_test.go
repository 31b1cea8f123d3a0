package api

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func testLimiter(cfg Limits) *limiter {
	return newLimiter(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
}

func TestConcurrencyLimiter(t *testing.T) {
	l := testLimiter(Limits{MaxConcurrent: 3})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if !l.acquire(ctx) {
			t.Fatalf("slot %d refused below the limit", i+1)
		}
	}
	if l.acquire(ctx) {
		t.Fatal("a fourth request was admitted with max_concurrent 3")
	}
	if got := testutil.ToFloat64(l.inflight); got != 3 {
		t.Fatalf("in flight = %v, want 3", got)
	}
	l.release()
	if !l.acquire(ctx) {
		t.Fatal("a slot given back was not reusable")
	}

	// With a queue, a waiting request gets the next slot given back.
	l.cfg.QueueWait = 10 * time.Second // a bound, not a pace: the release comes first
	got := make(chan bool)
	go func() { got <- l.acquire(ctx) }()
	l.release()
	if !<-got {
		t.Fatal("a queued request did not get the slot given back")
	}
	// A queued request ends with its context.
	cctx, cancel := context.WithCancel(ctx)
	go func() { got <- l.acquire(cctx) }()
	cancel()
	if <-got {
		t.Fatal("a queued request whose context ended was admitted")
	}
}

func TestBucketsPerKeyAndBounded(t *testing.T) {
	b := newBuckets(0.001, 2) // one token per 1000 s: nothing refills during the test
	for i := 0; i < 2; i++ {
		if ok, _ := b.take("a"); !ok {
			t.Fatalf("request %d of a refused within its burst", i+1)
		}
	}
	ok, wait := b.take("a")
	if ok || wait < 900*time.Second {
		t.Fatalf("third request of a: ok %v, wait %v; want a refusal with a wait near 1000s", ok, wait)
	}
	if ok, w := b.check("a"); ok || w < 900*time.Second {
		t.Fatalf("check of a: ok %v, wait %v; want empty", ok, w)
	}
	if ok, _ := b.take("b"); !ok {
		t.Fatal("b refused because a is over its rate")
	}
	// check takes nothing.
	for i := 0; i < 5; i++ {
		if ok, _ := b.check("c"); !ok {
			t.Fatalf("check %d of c: empty, but nothing was taken", i+1)
		}
	}

	// Memory is bounded: past max the least recently used bucket goes.
	b.max = 100
	for i := 0; i < 1000; i++ {
		b.take(fmt.Sprintf("caller-%d", i))
	}
	if n := b.len(); n > 100 {
		t.Fatalf("%d buckets kept, want at most 100", n)
	}
	// Idle buckets (refilled: the same as new ones) go first.
	b2 := newBuckets(1000, 1) // refills in 1 ms: idle after 1 s + 1 ms
	b2.get("old", time.Now().Add(-time.Hour))
	b2.get("new", time.Now())
	if n := b2.len(); n != 1 {
		t.Fatalf("%d buckets after an idle one should have gone, want 1", n)
	}
	if newBuckets(0, 10) != nil {
		t.Fatal("a rate of 0 should be no limit")
	}
}

func TestBodyLimitPerRoute(t *testing.T) {
	l := testLimiter(Limits{MaxRequestBytes: 1 << 20, RouteMaxBytes: map[string]int64{
		"/v1/evidence/": 64 << 20, "/v1/evidence/small/": 1 << 10, "/cityhub.v1.EvidenceService/Upload": 32 << 20,
	}})
	for route, want := range map[string]int64{
		"/v1/cases":                          1 << 20,
		"/v1/evidence/abc":                   64 << 20,
		"/v1/evidence/small/x":               1 << 10,
		"/cityhub.v1.EvidenceService/Upload": 32 << 20,
		"/cityhub.v1.CaseService/ReportCase": 1 << 20,
	} {
		if got := l.bodyLimit(route); got != want {
			t.Errorf("bodyLimit(%s) = %d, want %d", route, got, want)
		}
	}
	// The gRPC receive limit is the largest gRPC method's: a REST route's
	// larger limit (the evidence upload) does not raise it for every method.
	if got := l.maxMessage(); got != 32<<20 {
		t.Errorf("maxMessage = %d, want the largest gRPC override", got)
	}
}
