package fsm_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
)

// BenchmarkApplyJoinedReports is what a replica's state machine does for
// each create under 64 clients (BENCHMARKS.md): entries of 18 joined
// reports, stamped and fingerprinted as the leader does, each applied in
// a transaction of its own, the reports spread over a district's 240
// grids. Every replica runs it for every create, so a microsecond here
// is three on the tier.
func BenchmarkApplyJoinedReports(b *testing.B) { benchApplyJoined(b, 18) }

// BenchmarkApplyOneReport is BenchmarkApplyJoinedReports at one client:
// an entry is one ReportCase (the joiner commits a report alone when the
// log is quiet), so the transaction's own keys (the applied index, the
// day's sequence, the counts, the change log's and the audit's pages)
// weigh on it alone.
func BenchmarkApplyOneReport(b *testing.B) { benchApplyJoined(b, 1) }

func benchApplyJoined(b *testing.B, joined int) {
	s := openStore(b)
	f := newFSM(b, s)
	at := time.Date(2001, 9, 9, 9, 0, 0, 0, time.UTC).UnixMilli()
	n := 0
	// Encode every entry first: the leader encodes, a replica decodes.
	entries := make([][]byte, b.N)
	for i := range entries {
		reports := make([]*pb.Command, joined)
		for k := range reports {
			n++
			r := report(fmt.Sprintf("bench-%d", n), at, "垃圾满溢")
			c := r.GetReport().GetCase()
			c.GridCode = fmt.Sprintf("320582%03d%03d%03d", 101+n%4, 1+n/4%3, 1+n/12%20)
			reports[k] = r
		}
		cmd := reports[0] // alone, a report goes into the log as it is
		if joined > 1 {
			cmd = batch(at, reports...)
		}
		fsm.StampFingerprint(cmd)
		entries[i] = encode(b, cmd)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		res := f.ApplyBatch([]*raft.Log{entry(uint64(i+1), entries[i])})
		if r, ok := res[0].(*fsm.Result); !ok || r.Err != nil {
			b.Fatalf("entry %d: %v", i+1, res[0])
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*joined), "µs/report")
}
