package replica_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// BenchmarkWrites: writes over gRPC to the leader of an in-process
// 3-replica tier (real raft over TCP, raft-wal, badger): reports, an
// allowed action (FILE) on a reported case, a refused action (CLOSE on a
// REPORTED case) and a replayed report, by 1 client and by 64 clients.
// The raft entries each kind adds are reported as entries/op.
//
//	go test -run '^$' -bench Writes -benchtime 2000x ./tiers/replica/
func BenchmarkWrites(b *testing.B) {
	c := testcluster.New(b, 3)
	ctx := context.Background()
	var seq atomic.Int64
	rid := func(kind string) string { return fmt.Sprintf("%s-%d", kind, seq.Add(1)) }
	// Each report in a grid of its own: the API lists a report's possible
	// duplicates (same class and grid), which in one grid would grow
	// with every report of the run.
	var grids atomic.Int64
	newReport := func(id, desc string) *pb.ReportCaseRequest {
		r := report(id, desc)
		r.GridCode = fmt.Sprintf("320582%09d", 110000000+grids.Add(1))
		return r
	}
	cl := func() pb.CaseServiceClient { return c.Cases(c.WaitLeader(10 * time.Second)) }
	// reportN reports n cases with 64 clients and returns their ids.
	reportN := func(b *testing.B, n int) []string {
		ids := make([]string, n)
		var next atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < 64; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cs := cl()
				for k := int(next.Add(1)) - 1; k < n; k = int(next.Add(1)) - 1 {
					resp, err := cs.ReportCase(ctx, newReport(rid("setup"), "setup"))
					if err != nil {
						b.Error(err)
						return
					}
					ids[k] = resp.Case.Id
				}
			}()
		}
		wg.Wait()
		return ids
	}
	fileReq := func(id string) *pb.ActRequest {
		return &pb.ActRequest{CaseId: id, RequestId: rid("file"), Action: pb.Action_ACTION_FILE, Actor: "s", Role: pb.Role_ROLE_SHIFT_LEADER}
	}
	// run times op(i) for i in [0, b.N) with the given number of clients.
	run := func(b *testing.B, clients int, op func(cs pb.CaseServiceClient, i int) error) {
		leader := c.Members[c.WaitLeader(10*time.Second)].R.Node.Raft()
		start := leader.LastIndex()
		b.ResetTimer()
		var next atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < clients; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cs := cl()
				for i := int(next.Add(1)) - 1; i < b.N; i = int(next.Add(1)) - 1 {
					if err := op(cs, i); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		b.StopTimer()
		b.ReportMetric(float64(leader.LastIndex()-start)/float64(b.N), "entries/op")
	}
	for _, clients := range []int{1, 64} {
		b.Run(fmt.Sprintf("report/clients=%d", clients), func(b *testing.B) {
			run(b, clients, func(cs pb.CaseServiceClient, i int) error {
				_, err := cs.ReportCase(ctx, newReport(rid("report"), "暴露垃圾"))
				return err
			})
		})
		b.Run(fmt.Sprintf("file/clients=%d", clients), func(b *testing.B) {
			ids := reportN(b, b.N)
			run(b, clients, func(cs pb.CaseServiceClient, i int) error {
				_, err := cs.Act(ctx, fileReq(ids[i]))
				return err
			})
		})
		b.Run(fmt.Sprintf("refused/clients=%d", clients), func(b *testing.B) {
			ids := reportN(b, 1)
			run(b, clients, func(cs pb.CaseServiceClient, i int) error {
				_, err := cs.Act(ctx, &pb.ActRequest{CaseId: ids[0], RequestId: rid("close"), Action: pb.Action_ACTION_CLOSE, Actor: "s", Role: pb.Role_ROLE_SHIFT_LEADER})
				if err == nil {
					return fmt.Errorf("close of a reported case was not refused")
				}
				return nil
			})
		})
		b.Run(fmt.Sprintf("replay/clients=%d", clients), func(b *testing.B) {
			req := newReport(rid("replayed"), "replayed")
			if _, err := cl().ReportCase(ctx, req); err != nil {
				b.Fatal(err)
			}
			run(b, clients, func(cs pb.CaseServiceClient, i int) error {
				resp, err := cs.ReportCase(ctx, req)
				if err == nil && !resp.Replayed {
					return fmt.Errorf("not replayed")
				}
				return err
			})
		})
	}
}
