package fedtest

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/cityhub/cityhub/config"
	"github.com/cityhub/cityhub/federation/ownership"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

// BenchmarkReconcileBacklog (issue 4, acceptance 3) reconciles a district
// system's backlog end to end through the sample city: b.N cases are
// imported into d-320505 (not timed), then the clock runs from the
// Reconcile call at the district until every case the district handed up
// has been moved on by the city's follow loop and every link has drained.
// Run it with
//
//	go test -run '^$' -bench ReconcileBacklog -benchtime 100000x -timeout 30m ./federation/fedtest/
//
// FEDBENCH_RECONCILE_CPUPROFILE=/tmp/rec.prof writes a CPU profile of the
// timed part alone to /tmp/rec.prof.batch500 and .batch100.
//
// ns/op is the end-to-end time per case. The end state is then checked on
// a sample of the cases (not timed).
func BenchmarkReconcileBacklog(b *testing.B) {
	for _, batch := range []int{500, 100} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) { benchReconcile(b, batch) })
	}
}

func benchReconcile(b *testing.B, batch int) {
	ctx := context.Background()
	f := New(b, SampleSpecs(b), 1, SampleCity(b), func(c *config.Config) {
		c.Reconcile.FollowInterval = 100 * time.Millisecond
		c.Deadlines.SweepInterval = time.Hour // the backlog's old deadlines would be marked meanwhile
		c.Log.Level = config.LogLevelWarn
	})
	backlog := Backlog(b, "320505", b.N, 3)
	cat, err := ownership.Sample(f.Topo)
	if err != nil {
		b.Fatal(err)
	}
	loc, _ := time.LoadLocation("Asia/Shanghai")
	handedUp := 0
	for _, ic := range backlog {
		c := ic.Case
		o := cat.Resolve(ownership.Query{Kind: c.Kind, Major: c.MajorCode, Minor: c.MinorCode, Grid: c.GridCode, ComponentID: c.ComponentId, At: c.ReportedAt.AsTime().In(loc)})
		if c.State != pb.State_STATE_HANDLED && !o.Disputed && o.Node == "city" {
			handedUp++
		}
	}
	importStart := time.Now()
	ids := f.Import(ctx, "d-320505", backlog, 1000)
	f.WaitSettled(10 * time.Minute)
	b.Logf("imported %d cases in %v; %d of them city-owned and open (handed up)", len(ids), time.Since(importStart).Round(time.Millisecond), handedUp)

	city := f.Groups["city"]
	cityStore := city.Replica(city.WaitLeader(10 * time.Second)).Node.Store()
	followed := func() int {
		n := 0
		_ = cityStore.View(func(tx *store.Tx) error {
			return tx.ReconcileRecords("follow", func(r *pb.ReconcileRecord) error {
				if r.Outcome == pb.ReconcileOutcome_RECONCILE_OUTCOME_MOVED {
					n++
				}
				return nil
			})
		})
		return n
	}

	if path := os.Getenv("FEDBENCH_RECONCILE_CPUPROFILE"); path != "" {
		// A profile of the reconciliation alone (-cpuprofile would mostly
		// show the import); not to be combined with -cpuprofile.
		pf, err := os.Create(fmt.Sprintf("%s.batch%d", path, batch))
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			b.Fatal(err)
		}
		defer func() { pprof.StopCPUProfile(); pf.Close() }()
	}
	b.ResetTimer()
	start := time.Now()
	rep, err := runReconcile(ctx, b, f, "d-320505", &pb.ReconcileRequest{BatchSize: int32(batch)})
	if err != nil {
		b.Fatal(err)
	}
	runDone := time.Since(start)
	for {
		if ok, _ := f.Settled(); ok && followed() >= handedUp {
			break
		}
		if time.Since(start) > 20*time.Minute {
			b.Fatalf("not done after 20 minutes: followed %d of %d", followed(), handedUp)
		}
		time.Sleep(50 * time.Millisecond)
	}
	total := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/total.Seconds(), "cases/s")
	b.ReportMetric(total.Seconds(), "s-total")
	b.Logf("district run (%d per command): %v, %s; end to end %v (%.0f cases/s)",
		batch, runDone.Round(time.Millisecond), summary(rep), total.Round(time.Millisecond), float64(b.N)/total.Seconds())

	// Check a sample of the end state: every 50th case.
	sample := map[string]expect{}
	for i, ic := range backlog {
		if i%50 != 0 {
			continue
		}
		c := ic.Case
		o := cat.Resolve(ownership.Query{Kind: c.Kind, Major: c.MajorCode, Minor: c.MinorCode, Grid: c.GridCode, ComponentID: c.ComponentId, At: c.ReportedAt.AsTime().In(loc)})
		id := ids[c.LegacyId]
		switch {
		case c.State == pb.State_STATE_HANDLED:
			sample[id] = expect{node: "d-320505", unit: c.OwnerUnit, state: pb.State_STATE_HANDLED}
		case o.Disputed:
			sample[id] = expect{node: "city", review: true, state: pb.State_STATE_FILED}
		default:
			sample[id] = expect{node: o.Node, unit: o.Unit}
		}
	}
	if p := endStateProblem(b, f, sample); p != "" {
		b.Fatal(p)
	}
}
