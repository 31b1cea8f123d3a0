package main

import (
	"strings"
	"testing"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/catalogue"
)

func TestPercentile(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = ms(i + 1) // 1ms..100ms
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one p50", []time.Duration{ms(7)}, 50, ms(7)},
		{"one p99", []time.Duration{ms(7)}, 99, ms(7)},
		{"two p50", []time.Duration{ms(1), ms(2)}, 50, ms(1)},
		{"two p51", []time.Duration{ms(1), ms(2)}, 51, ms(2)},
		{"hundred p50", hundred, 50, ms(50)},
		{"hundred p90", hundred, 90, ms(90)},
		{"hundred p99", hundred, 99, ms(99)},
		{"hundred p99.5", hundred, 99.5, ms(100)},
		{"hundred p100", hundred, 100, ms(100)},
		{"hundred tiny p", hundred, 0.001, ms(1)},
		{"ten p90", hundred[:10], 90, ms(9)},
		{"ten p99", hundred[:10], 99, ms(10)},
	} {
		if got := percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("%s: percentile(%d values, %v) = %v, want %v", tc.name, len(tc.sorted), tc.p, got, tc.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	lat := []time.Duration{4 * time.Millisecond, time.Millisecond, 3 * time.Millisecond, 2 * time.Millisecond}
	var r result
	summarize(&r, lat, map[string]int{"Unavailable": 2, "HTTP 503": 1}, 2*time.Second)
	if r.OK != 4 || r.Failed != 3 || r.Throughput != 2 {
		t.Errorf("ok %d failed %d throughput %v, want 4, 3, 2", r.OK, r.Failed, r.Throughput)
	}
	if r.P50 != 2 || r.P90 != 4 || r.P99 != 4 || r.Max != 4 {
		t.Errorf("p50 %v p90 %v p99 %v max %v, want 2, 4, 4, 4 ms", r.P50, r.P90, r.P99, r.Max)
	}
}

func TestGeneratorValid(t *testing.T) {
	cat := catalogue.Default()
	ids := map[string]bool{}
	kinds := map[pb.Kind]int{}
	classes := map[string]bool{}
	for client := range 4 {
		g := newGenerator("test", client, "320582", 42, false)
		for range 2000 {
			r := g.next()
			if ids[r.RequestId] {
				t.Fatalf("duplicate request id %s", r.RequestId)
			}
			ids[r.RequestId] = true
			if !strings.HasPrefix(r.GridCode, "320582") {
				t.Errorf("%s: grid %s outside 320582", r.RequestId, r.GridCode)
			}
			if err := catalogue.ValidateGridCode(r.GridCode); err != nil {
				t.Errorf("%s: %v", r.RequestId, err)
			}
			if err := cat.ValidateClass(r.Kind, r.MajorCode, r.MinorCode, r.ComponentId, r.GridCode); err != nil {
				t.Errorf("%s: %v", r.RequestId, err)
			}
			if r.Kind == pb.Kind_KIND_COMPONENT {
				want := r.GridCode[:6] + r.MajorCode + r.MinorCode
				if len(r.ComponentId) != 16 || !strings.HasPrefix(r.ComponentId, want) {
					t.Errorf("%s: component id %q, want 16 digits starting %s", r.RequestId, r.ComponentId, want)
				}
			} else if r.ComponentId != "" {
				t.Errorf("%s: event with component id %q", r.RequestId, r.ComponentId)
			}
			if r.Actor == "" || r.Role == pb.Role_ROLE_UNSPECIFIED || r.Source == pb.Source_SOURCE_UNSPECIFIED || r.Description == "" {
				t.Errorf("%s: incomplete report %v", r.RequestId, r)
			}
			kinds[r.Kind]++
			classes[r.Kind.String()+r.MajorCode+r.MinorCode] = true
		}
	}
	if kinds[pb.Kind_KIND_EVENT] == 0 || kinds[pb.Kind_KIND_COMPONENT] == 0 || len(classes) < 8 {
		t.Errorf("mix too narrow: kinds %v, %d classes", kinds, len(classes))
	}
}
