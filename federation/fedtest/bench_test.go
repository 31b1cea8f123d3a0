package fedtest

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cityhub/cityhub/config"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Federation benchmarks (issue 3, acceptance 3). Run with
//
//	go test -run '^$' -bench HandOff -benchtime 200x ./federation/fedtest/
//	go test -run '^$' -bench BacklogDrain -benchtime 10000x ./federation/fedtest/
//
// BenchmarkHandOffLatency times one iteration per hand-off. In
// BenchmarkBacklogDrain b.N is the size of the backlog (cases), so ns/op is
// the drain time per case.

// handOffResults keeps p50 and p99 (ms) of each replica count, for the
// ratio the 3-replica run reports.
var handOffResults sync.Map // replicas -> [2]float64

// BenchmarkHandOffLatency measures how long a case dispatched at the city
// to a community unit takes to reach the community: from the dispatch call
// at the city's leader until the community leader's store holds the case
// with the community as holder (three links: city → district → street →
// community, each delivery a commit in the receiver's raft log).
func BenchmarkHandOffLatency(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) { benchHandOff(b, n) })
	}
}

func benchHandOff(b *testing.B, replicas int) {
	f := New(b, chain(), replicas)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	city := f.Groups["city"]
	comm := f.Groups["c-320505001001"]
	cityLeader := city.WaitLeader(10 * time.Second)
	commLeader := comm.WaitLeader(10 * time.Second)
	commNode := comm.Members[commLeader].R.Node
	cl := f.Client("city")
	// A first hand-off outside the timing opens every link's connection.
	warm := report(ctx, b, cl, "warm-r", "320505001001007")
	act(ctx, b, cl, warm.Id, "warm-f", pb.Action_ACTION_FILE, pb.Role_ROLE_SHIFT_LEADER, nil)
	act(ctx, b, cl, warm.Id, "warm-d", pb.Action_ACTION_DISPATCH, pb.Role_ROLE_DISPATCHER, func(r *pb.ActRequest) {
		r.Unit, r.TimeLimitMinutes = "320505001001-grid", 240
	})
	f.WaitSettled(30 * time.Second)

	var lat []time.Duration
	i := 0
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		i++
		c := report(ctx, b, cl, fmt.Sprintf("h-%d-r", i), "320505001001007")
		act(ctx, b, cl, c.Id, fmt.Sprintf("h-%d-f", i), pb.Action_ACTION_FILE, pb.Role_ROLE_SHIFT_LEADER, nil)
		if city.Leader() != cityLeader || comm.Leader() != commLeader {
			b.Fatalf("leadership moved during the benchmark (city %d→%d, community %d→%d)", cityLeader, city.Leader(), commLeader, comm.Leader())
		}
		b.StartTimer()

		start := time.Now()
		_, err := city.Cases(cityLeader).Act(ctx, &pb.ActRequest{
			CaseId: c.Id, RequestId: fmt.Sprintf("h-%d-d", i), Action: pb.Action_ACTION_DISPATCH,
			Actor: "dispatcher", Role: pb.Role_ROLE_DISPATCHER, Unit: "320505001001-grid", TimeLimitMinutes: 240,
		})
		if err != nil {
			b.Fatalf("dispatch %s: %v", c.Id, err)
		}
		// Wait on the community leader's apply notifications: the channel
		// is taken before the store is read, so no apply goes unnoticed.
		deadline := time.After(20 * time.Second)
		for {
			applied := commNode.Applied()
			got, err := commNode.Store().GetCase(c.Id)
			if err == nil && got.Holder == "c-320505001001" {
				break
			}
			select {
			case <-applied:
			case <-deadline:
				b.Fatalf("case %s did not reach the community within 20 s", c.Id)
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	p50, p99, mx := percentile(lat, 50), percentile(lat, 99), slices.Max(lat)
	b.ReportMetric(ms(p50), "p50-ms")
	b.ReportMetric(ms(p99), "p99-ms")
	b.ReportMetric(ms(mx), "max-ms")
	// The ratio to the 1-replica run before this one, from the same process.
	handOffResults.Store(replicas, [2]float64{ms(p50), ms(p99)})
	if one, ok := handOffResults.Load(1); ok && replicas != 1 {
		r := one.([2]float64)
		b.ReportMetric(ms(p50)/r[0], "p50-ratio-to-1-replica")
		b.ReportMetric(ms(p99)/r[1], "p99-ratio-to-1-replica")
	}
	b.Logf("%d hand-offs, %d replicas per group: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms",
		len(lat), replicas, ms(p50), ms(percentile(lat, 90)), ms(p99), ms(mx))
}

// BenchmarkBacklogDrain measures how fast the city→district link drains a
// backlog built up while the link was cut: b.N cases are reported, filed
// and dispatched at the city to a district unit during a partition (one
// outbox entry each; untimed), then the link heals and the clock runs until
// the district has applied every entry and the city has trimmed its outbox.
// City and district run 3 replicas each; the street and community are left
// out, as no entry of this benchmark travels to them.
func BenchmarkBacklogDrain(b *testing.B) {
	// Retries every 50 ms at most while the link is cut, so the relay is
	// not asleep in a long backoff when it heals; the last run keeps the
	// default retry delays (50 ms doubling to 5 s), as deployed.
	for _, r := range []struct {
		name     string
		batch    int
		retryMax time.Duration
	}{
		{"batch=64", 64, 50 * time.Millisecond},
		{"batch=512", 512, 50 * time.Millisecond},
		{"batch=512/default-retry", 512, 0},
	} {
		b.Run(r.name, func(b *testing.B) { benchDrain(b, r.batch, r.retryMax) })
	}
}

func benchDrain(b *testing.B, batch int, retryMax time.Duration) {
	f := New(b, chain()[:2], 3, func(c *config.Config) {
		c.Federation.BatchSize = batch
		if retryMax > 0 {
			c.Federation.RetryMax = retryMax
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	city, dist := f.Groups["city"], f.Groups["d-320505"]
	cityLeader := city.WaitLeader(10 * time.Second)
	distLeader := dist.WaitLeader(10 * time.Second)
	f.Net.Partition("city", "d-320505")

	// The backlog, from many concurrent clients at the city's leader.
	const clients = 64
	cases := city.Cases(cityLeader)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	created := time.Now()
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := next.Add(1)
				if k > int64(b.N) {
					return
				}
				if err := reportFileDispatch(ctx, cases, fmt.Sprintf("q-%d", k), "320505-sanitation"); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	createdIn := time.Since(created)
	if city.Leader() != cityLeader || dist.Leader() != distLeader {
		b.Fatalf("leadership moved while the backlog was built")
	}
	out := linkStatus(b, f, "city", "d-320505")
	if out.LagEntries < uint64(b.N) {
		b.Fatalf("backlog: %d entries waiting on city→district, want at least %d", out.LagEntries, b.N)
	}
	last := out.OutLastSeq
	startHW := linkStatus(b, f, "d-320505", "city").InHighWater
	b.Logf("backlog of %d cases (%d entries) built in %v (%.0f cases/s, 3 writes each)", b.N, out.LagEntries, createdIn.Round(time.Millisecond), float64(b.N)/createdIn.Seconds())

	cityNode, distNode := city.Members[cityLeader].R.Node, dist.Members[distLeader].R.Node
	if path := os.Getenv("FEDBENCH_DRAIN_CPUPROFILE"); path != "" {
		// A profile of the drain alone (-cpuprofile would mostly show the
		// backlog being built); not to be combined with -cpuprofile.
		pf, err := os.Create(fmt.Sprintf("%s.batch%d.retry%v", path, batch, retryMax))
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			b.Fatal(err)
		}
		defer func() { pprof.StopCPUProfile(); pf.Close() }()
	}
	b.ResetTimer()
	healed := time.Now()
	f.Net.Heal("city", "d-320505")
	var first, delivered, trimmed time.Duration
	deadline := time.After(5 * time.Minute)
	for trimmed == 0 {
		ca, da := cityNode.Applied(), distNode.Applied()
		hw := linkStatus(b, f, "d-320505", "city").InHighWater
		now := time.Since(healed)
		if first == 0 && hw > startHW {
			first = now
		}
		if delivered == 0 && hw >= last {
			delivered = now
		}
		if delivered != 0 && linkStatus(b, f, "city", "d-320505").LagEntries == 0 {
			trimmed = now
			break
		}
		select {
		case <-ca:
		case <-da:
		case <-time.After(5 * time.Millisecond):
		case <-deadline:
			b.Fatalf("link not drained 5 min after healing: district high water %d of %d", hw, last)
		}
	}
	b.StopTimer()
	rate := float64(b.N) / trimmed.Seconds()
	b.ReportMetric(rate, "cases/s")
	b.ReportMetric(float64(b.N)/(delivered-first).Seconds(), "steady-cases/s")
	b.ReportMetric(ms(first), "reconnect-ms")
	b.Logf("batch %d, %d cases: first delivery %v after heal, all applied at the district after %v, outbox trimmed after %v: %.0f cases/s (%.0f cases/s from first to last delivery)",
		batch, b.N, first.Round(time.Millisecond), delivered.Round(time.Millisecond), trimmed.Round(time.Millisecond), rate, float64(b.N)/(delivered-first).Seconds())
}

// reportFileDispatch makes one case at the city and dispatches it to unit.
func reportFileDispatch(ctx context.Context, c pb.CaseServiceClient, rid, unit string) error {
	resp, err := c.ReportCase(ctx, &pb.ReportCaseRequest{
		RequestId: rid + "-r", Actor: "insp-1", Role: pb.Role_ROLE_INSPECTOR, Source: pb.Source_SOURCE_INSPECTOR,
		Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", GridCode: "320505001001007", Description: "暴露垃圾",
	})
	if err != nil {
		return fmt.Errorf("report %s: %w", rid, err)
	}
	id := resp.Case.Id
	if _, err := c.Act(ctx, &pb.ActRequest{CaseId: id, RequestId: rid + "-f", Action: pb.Action_ACTION_FILE, Actor: "sl", Role: pb.Role_ROLE_SHIFT_LEADER}); err != nil {
		return fmt.Errorf("file %s: %w", id, err)
	}
	if _, err := c.Act(ctx, &pb.ActRequest{CaseId: id, RequestId: rid + "-d", Action: pb.Action_ACTION_DISPATCH, Actor: "d", Role: pb.Role_ROLE_DISPATCHER, Unit: unit, TimeLimitMinutes: 240}); err != nil {
		return fmt.Errorf("dispatch %s: %w", id, err)
	}
	return nil
}

// linkStatus is node's leader's view of its link to peer.
func linkStatus(b testing.TB, f *Federation, node, peer string) *pb.LinkStatus {
	b.Helper()
	g := f.Groups[node]
	l := g.Leader()
	if l < 0 {
		b.Fatalf("%s has no leader", node)
	}
	st, err := g.Members[l].R.FederationStatus()
	if err != nil {
		b.Fatalf("federation status of %s: %v", node, err)
	}
	for _, ls := range st.Links {
		if ls.Peer == peer {
			return ls
		}
	}
	b.Fatalf("%s has no link to %s", node, peer)
	return nil
}

// percentile is the nearest-rank p-th percentile of d.
func percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	k := (p*len(s) + 99) / 100
	return s[max(k-1, 0)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
