package antientropy

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	"github.com/cityhub/cityhub/federation/wire"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

var (
	benchCases     = flag.Int("ae.cases", 1_000_000, "shared cases on each side of BenchmarkAntiEntropy")
	benchDivergent = flag.Int("ae.divergent", 100, "cases that differ in BenchmarkAntiEntropy")
)

// benchPair is built once per process (minutes for a million cases) and
// removed by TestMain.
var benchPair struct {
	once       sync.Once
	dir        string
	parent     *memLocal
	child      *memLocal
	stateBytes int64
	err        error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchPair.dir != "" {
		_ = benchPair.parent.st.Close()
		_ = benchPair.child.st.Close()
		_ = os.RemoveAll(benchPair.dir)
	}
	os.Exit(code)
}

// fill writes n cases held below s-1 (so shared on d-1–s-1) straight into
// st, in transactions of 2,000 cases; version 4 instead of 3 for the ids in
// newer. It returns the bytes of the stored cases.
func fill(st *store.Store, n int, newer map[int]bool) (int64, error) {
	var total int64
	const batch = 2000
	for start := 0; start < n; start += batch {
		err := st.Update(func(tx *store.Tx) error {
			for i := start; i < min(start+batch, n); i++ {
				v := uint64(3)
				if newer[i] {
					v = 4
				}
				c := testCase(i, "320502", "c-1", 2, v, fmt.Sprintf("垃圾桶满溢，第 %d 号", i))
				total += int64(proto.Size(c))
				if err := tx.PutCase(nil, c); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	return total, nil
}

func buildBenchPair(b *testing.B) {
	benchPair.once.Do(func() {
		start := time.Now()
		dir, err := os.MkdirTemp("", "antientropy-bench-")
		if err != nil {
			benchPair.err = err
			return
		}
		benchPair.dir = dir
		topo := testTopo(b)
		benchPair.parent = openMemLocal(b, topo, "d-1", dir+"/d-1")
		benchPair.child = openMemLocal(b, topo, "s-1", dir+"/s-1")
		newer := map[int]bool{}
		step := *benchCases / max(1, *benchDivergent)
		for k := 0; k < *benchDivergent; k++ {
			newer[k*step+step/2] = true
		}
		var wg sync.WaitGroup
		var errP, errC error
		wg.Add(2)
		go func() { defer wg.Done(); benchPair.stateBytes, errP = fill(benchPair.parent.st, *benchCases, nil) }()
		go func() { defer wg.Done(); _, errC = fill(benchPair.child.st, *benchCases, newer) }()
		wg.Wait()
		if errP != nil || errC != nil {
			benchPair.err = fmt.Errorf("fill: %v, %v", errP, errC)
			return
		}
		b.Logf("built 2 × %d cases (%d divergent) in %v; stored cases on one side: %d bytes", *benchCases, *benchDivergent, time.Since(start).Round(time.Second), benchPair.stateBytes)
	})
	if benchPair.err != nil {
		b.Fatal(benchPair.err)
	}
}

// BenchmarkAntiEntropy measures one full compare-and-find (what a dry run
// does: this end's summary, Digest, CaseVersions for the buckets that
// differ, FetchCases of the peer's copies that may stand, and the decision
// for each case) between two on-disk stores sharing -ae.cases cases of
// which -ae.divergent differ, the parent calling the child's wire.Server
// over in-process gRPC (bufconn: real encoding and gRPC, no network). The
// first comparison of a link (cold: no count from an earlier one, so the
// peer's scan waits for this end's) is logged apart; the timed ones are
// the periodic case, where both ends scan at once.
func BenchmarkAntiEntropy(b *testing.B) {
	buildBenchPair(b)
	topo := testTopo(b)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(8 << 20))
	rs := wire.NewServer("s-1", topo, benchPair.child, nil, quiet)
	rs.SetAntiEntropy(NewHandler("s-1", topo, benchPair.child))
	pb.RegisterFederationServiceServer(srv, rs)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	dial := wire.DialOptions(50*time.Millisecond, time.Second, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	peer := newGRPCPeer("s-1", []string{"127.0.0.1:9004"}, dial, 5*time.Minute)
	defer peer.close()
	l, err := newLink(topo, "d-1", "s-1")
	if err != nil {
		b.Fatal(err)
	}
	compare := func(hint uint64) *comparison {
		c := newComparison(benchPair.parent.st, l, peer, 0, hint)
		if err := c.find(context.Background()); err != nil {
			b.Fatal(err)
		}
		if c.rep.Divergent != uint32(*benchDivergent) || c.rep.SharedHere != uint64(*benchCases) || c.rep.SharedThere != uint64(*benchCases) {
			b.Fatalf("report: %v", c.rep)
		}
		return c
	}
	report := func(what string, c *comparison) {
		exchanged := c.rep.BytesSent + c.rep.BytesReceived
		b.Logf("%s: %.2fs (rounds end at %v); buckets %d (%d differing), divergent %d; sent %d B, received %d B = %.3f%% of the state's %d B",
			what, c.rep.Seconds, c.phases, c.rep.Buckets, c.rep.BucketsDiffering, c.rep.Divergent, c.rep.BytesSent, c.rep.BytesReceived,
			100*float64(exchanged)/float64(benchPair.stateBytes), benchPair.stateBytes)
	}
	cold := compare(0)
	report("cold", cold)
	var last *comparison
	b.ResetTimer()
	for range b.N {
		last = compare(cold.rep.SharedHere)
	}
	b.StopTimer()
	report("periodic", last)
	exchanged := float64(last.rep.BytesSent + last.rep.BytesReceived)
	b.ReportMetric(exchanged, "B-exchanged/op")
	b.ReportMetric(100*exchanged/float64(benchPair.stateBytes), "%-of-state")
}
