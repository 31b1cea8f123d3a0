package overdue_test

import (
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

var (
	benchOnce  sync.Once
	benchStore *store.Store
	benchNow   = time.Date(2026, 11, 23, 10, 0, 0, 0, cst)
)

// openCases fills a store with 1,000,000 open cases whose stage deadlines
// spread over the next 30 days, 10,000 of them already past.
func openCases(b *testing.B) *store.Store {
	benchOnce.Do(func() {
		st, err := store.Open(store.Options{InMemory: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			b.Fatal(err)
		}
		const n, past = 1_000_000, 10_000
		for start := 0; start < n; start += 2000 {
			if err := st.Update(func(tx *store.Tx) error {
				for i := start; i < start+2000; i++ {
					due := benchNow.Add(time.Duration(i-past) * 2 * time.Second) // i < past: before now
					c := &pb.Case{Id: fmt.Sprintf("320582-20261123-%07d", i), State: pb.State_STATE_DISPATCHED, GridCode: "320582110152102",
						OwnerUnit: "u", Deadline: timestamppb.New(due), StageDeadline: timestamppb.New(due)}
					if err := tx.PutCase(nil, c); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
		}
		benchStore = st
	})
	return benchStore
}

// BenchmarkSweepScan measures what a sweep reads: the deadline index up to
// now, among 1,000,000 open cases. It does not grow with the open cases,
// only with those due.
func BenchmarkSweepScan(b *testing.B) {
	st := openCases(b)
	for _, tc := range []struct {
		name string
		now  time.Time
		want int
	}{
		{"due=0", benchNow.Add(-6 * time.Hour), 0},
		{"due=10000", benchNow, 10_000},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				due, err := st.Due(tc.now, 1<<20)
				if err != nil {
					b.Fatal(err)
				}
				if len(due) != tc.want {
					b.Fatalf("%d due, want %d", len(due), tc.want)
				}
			}
			b.StopTimer()
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N), "B/sweep")
		})
	}
}
