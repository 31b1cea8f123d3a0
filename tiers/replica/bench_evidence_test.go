package replica_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cityhub/cityhub/config"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/evidence"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// BenchmarkEvidenceUpload2MB: 2 MB photos uploaded over gRPC to the leader
// of an in-process 3-replica tier (real raft over TCP, raft-wal, badger):
// every upload spooled, hashed, sniffed, its chunks committed through the
// log (stored on every replica) and attached to a case. Each photo is
// distinct (no chunk is skipped), by 1 and by 8 clients, at chunk sizes of
// 256 KiB, 512 KiB (the default) and 1 MiB. Reported: MB/s and uploads/s.
//
//	go test -run '^$' -bench EvidenceUpload2MB -benchtime 40x ./tiers/replica/
func BenchmarkEvidenceUpload2MB(b *testing.B) {
	const size = 2 << 20
	for _, chunk := range []int{256 << 10, 512 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("chunk=%dKiB", chunk>>10), func(b *testing.B) {
			c := testcluster.New(b, 3, func(cfg *config.Config) {
				cfg.Node.Jurisdiction = "110105"
				cfg.Node.Tier = config.TierDistrict
				cfg.Evidence.ChunkBytes = chunk
				cfg.Evidence.MaxPerCase = 200
			})
			l := c.WaitLeader(10 * time.Second)
			// Warm-up upload: waits for the version gate (every replica
			// registered log version 2).
			warm := reportOne(b, c, l, fmt.Sprintf("bw-%d", chunk))
			uploadRetry(b, c, l, &pb.UploadEvidenceHeader{CaseId: warm.Id, RequestId: "bw-u", Stage: pb.EvidenceStage_EVIDENCE_STAGE_REPORT}, photoBytes(0, 64<<10))
			for _, clients := range []int{1, 8} {
				b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
					photos := make([][]byte, b.N)
					for i := range photos {
						photos[i] = photoBytes(uint64(chunk*100+clients*1_000_000+i+1), size)
					}
					cases := make([]string, (b.N+149)/150)
					for i := range cases {
						cases[i] = reportOne(b, c, l, fmt.Sprintf("bc-%d-%d-%d", chunk, clients, i)).Id
					}
					cl := pb.NewEvidenceServiceClient(c.Conn(l))
					var next atomic.Int64
					var wg sync.WaitGroup
					b.SetBytes(size)
					b.ResetTimer()
					start := time.Now()
					for w := 0; w < clients; w++ {
						wg.Add(1)
						go func() {
							defer wg.Done()
							for i := int(next.Add(1)) - 1; i < b.N; i = int(next.Add(1)) - 1 {
								ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
								_, err := evidence.UploadStream(ctx, cl, &pb.UploadEvidenceHeader{CaseId: cases[i/150],
									RequestId: fmt.Sprintf("b-%d-%d-%d", chunk, clients, i), Stage: pb.EvidenceStage_EVIDENCE_STAGE_HANDLING,
									Kind: pb.EvidenceKind_EVIDENCE_KIND_AFTER}, bytes.NewReader(photos[i]))
								cancel()
								if err != nil {
									b.Error(err)
									return
								}
							}
						}()
					}
					wg.Wait()
					el := time.Since(start).Seconds()
					b.ReportMetric(float64(b.N)/el, "uploads/s")
				})
			}
		})
	}
}

// photoBytes is size random bytes behind a JPEG header (sniffed as
// image/jpeg): a photo's entropy, nothing to compress.
func photoBytes(seed uint64, size int) []byte {
	r := rand.New(rand.NewPCG(seed, 99))
	b := make([]byte, size)
	for i := 0; i < size; i += 8 {
		v := r.Uint64()
		for k := 0; k < 8 && i+k < size; k++ {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	copy(b, []byte{0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 'J', 'F', 'I', 'F', 0})
	return b
}
