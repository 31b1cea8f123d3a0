package replica_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cityhub/cityhub/config"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
	"github.com/cityhub/cityhub/tiers/store"
)

func report(reqID, desc string) *pb.ReportCaseRequest {
	return &pb.ReportCaseRequest{
		RequestId: reqID, Actor: "insp-1", Role: pb.Role_ROLE_INSPECTOR,
		Source: pb.Source_SOURCE_INSPECTOR, Kind: pb.Kind_KIND_EVENT,
		MajorCode: "01", MinorCode: "02", GridCode: "320582110152102",
		Description: desc,
	}
}

// retryable errors are the ones a client retries with the same request id.
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return true
	}
	return false
}

// allCases reads every case from member i's local store.
func allCases(t *testing.T, c *testcluster.Cluster, i int) []*pb.Case {
	t.Helper()
	var out []*pb.Case
	tok := ""
	for {
		page, next, err := c.Members[i].R.Node.Store().List(store.Query{PageSize: 500, PageToken: tok, WithHistory: true})
		if err != nil {
			t.Fatalf("list on %s: %v", c.Members[i].ID, err)
		}
		out = append(out, page...)
		if next == "" {
			return out
		}
		tok = next
	}
}

// TestWritesSurviveLeaderKill sends 1,000 reports through random replicas
// while the leader is killed mid-stream; every acknowledged report must
// exist exactly once on every replica, including the restarted one.
func TestWritesSurviveLeaderKill(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster fault test: run without -short")
	}
	const total, workers = 1000, 8
	c := testcluster.New(t, 3)
	var (
		next    atomic.Int64
		acked   sync.Map // request id -> case id
		killed  atomic.Bool
		killIdx atomic.Int64
	)
	killIdx.Store(-1)
	// A generous bound, well under make test's per-package timeout: on a
	// loaded 2-core machine with -race the writes took from 2 to more than
	// 10 minutes.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for {
				k := next.Add(1)
				if k > total {
					return
				}
				if k == total/3 && killed.CompareAndSwap(false, true) {
					l := c.Leader()
					for l < 0 && ctx.Err() == nil { // an election going on
						time.Sleep(20 * time.Millisecond)
						l = c.Leader()
					}
					if l < 0 {
						t.Errorf("no leader to kill: %v", ctx.Err())
						return
					}
					killIdx.Store(int64(l))
					c.Kill(l)
				}
				req := report(fmt.Sprintf("req-%04d", k), fmt.Sprintf("case %04d", k))
				for {
					up := c.Up()
					i := up[rng.IntN(len(up))]
					cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
					resp, err := c.Cases(i).ReportCase(cctx, req)
					ccancel()
					if err == nil {
						acked.Store(req.RequestId, resp.Case.Id)
						break
					}
					if !retryable(err) || ctx.Err() != nil {
						t.Errorf("report %s via %s: %v", req.RequestId, c.Members[i].ID, err)
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if !killed.Load() {
		t.Fatal("the leader was never killed")
	}
	c.Start(int(killIdx.Load()))
	leader := c.WaitLeader(2 * time.Minute)
	want := c.Members[leader].R.Node.Raft().LastIndex()
	for _, i := range c.Up() {
		i := i
		// The restarted replica replays its log and takes the entries it
		// missed; under -race on a loaded 2-core machine that took more
		// than the 30 s this once allowed.
		testcluster.WaitFor(t, 5*time.Minute, c.Members[i].ID+" caught up", func() bool {
			return c.Members[i].R.Node.AppliedIndex() >= want
		})
	}
	ackedIDs := map[string]string{}
	acked.Range(func(k, v any) bool { ackedIDs[k.(string)] = v.(string); return true })
	if len(ackedIDs) != total {
		t.Fatalf("%d reports acknowledged, want %d", len(ackedIDs), total)
	}
	for _, i := range c.Up() {
		cases := allCases(t, c, i)
		if len(cases) != total {
			t.Errorf("%s holds %d cases, want exactly %d", c.Members[i].ID, len(cases), total)
		}
		byReq := map[string]int{}
		for _, cs := range cases {
			byReq[cs.History[0].RequestId]++
		}
		for req, id := range ackedIDs {
			if byReq[req] != 1 {
				t.Errorf("%s: request %s (case %s) present %d times", c.Members[i].ID, req, id, byReq[req])
			}
		}
	}
}

// TestFullRestartLosesNothing stops every replica, restarts all from disk
// (with snapshots and log compaction along the way) and checks every case
// and every version came back, and that new ids continue the sequence.
func TestFullRestartLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster restart test: run without -short")
	}
	c := testcluster.New(t, 3, func(cfg *config.Config) {
		cfg.Raft.SnapshotThreshold = 64
		cfg.Raft.SnapshotInterval = 200 * time.Millisecond
		cfg.Raft.TrailingLogs = 16
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var ids []string
	for k := 0; k < 150; k++ {
		resp, err := c.Cases(k%3).ReportCase(ctx, report(fmt.Sprintf("r-%d", k), fmt.Sprintf("restart %d", k)))
		if err != nil {
			t.Fatalf("report %d: %v", k, err)
		}
		ids = append(ids, resp.Case.Id)
		if k%5 == 0 {
			if _, err := c.Cases(0).File(ctx, &pb.ActRequest{CaseId: resp.Case.Id, RequestId: fmt.Sprintf("f-%d", k), Actor: "lead", Role: pb.Role_ROLE_SHIFT_LEADER}); err != nil {
				t.Fatalf("file %d: %v", k, err)
			}
		}
	}
	before := map[string]*pb.Case{}
	for _, cs := range allCases(t, c, c.WaitLeader(20*time.Second)) {
		before[cs.Id] = cs
	}
	// Let every replica apply everything and take a snapshot.
	lead := c.WaitLeader(20 * time.Second)
	last := c.Members[lead].R.Node.Raft().LastIndex()
	for _, i := range c.Up() {
		i := i
		testcluster.WaitFor(t, 20*time.Second, "apply", func() bool { return c.Members[i].R.Node.AppliedIndex() >= last })
	}
	for i := range c.Members {
		c.Stop(i)
	}
	for i := range c.Members {
		c.Start(i)
	}
	c.WaitLeader(20 * time.Second)
	for i := range c.Members {
		i := i
		testcluster.WaitFor(t, 20*time.Second, "replay", func() bool { return c.Members[i].R.Node.AppliedIndex() >= last })
		after := allCases(t, c, i)
		if len(after) != len(before) {
			t.Fatalf("%s: %d cases after restart, want %d", c.Members[i].ID, len(after), len(before))
		}
		for _, cs := range after {
			b := before[cs.Id]
			if b == nil || b.Version != cs.Version || b.State != cs.State || len(b.History) != len(cs.History) {
				t.Fatalf("%s: case %s changed across restart: %v -> %v", c.Members[i].ID, cs.Id, b, cs)
			}
		}
	}
	resp, err := c.Cases(1).ReportCase(ctx, report("after-restart", "after"))
	if err != nil {
		t.Fatalf("report after restart: %v", err)
	}
	for _, id := range ids {
		if id == resp.Case.Id {
			t.Fatalf("id %s reused after restart", id)
		}
	}
}

// TestIdempotentRetryAcrossLeaderChange retries one report through another
// replica after a leadership transfer: the first case comes back, no second.
func TestIdempotentRetryAcrossLeaderChange(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: run without -short")
	}
	c := testcluster.New(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req := report("retry-me", "retry")
	first, err := c.Cases(0).ReportCase(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	old := c.WaitLeader(20 * time.Second)
	if _, err := c.ClusterAdmin(old).TransferLeadership(ctx, &pb.TransferLeadershipRequest{}); err != nil {
		t.Fatalf("transfer: %v", err)
	}
	testcluster.WaitFor(t, 10*time.Second, "new leader", func() bool { l := c.Leader(); return l >= 0 && l != old })
	second, err := c.Cases((old+1)%3).ReportCase(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !second.Replayed || second.Case.Id != first.Case.Id || second.Case.Version != first.Case.Version {
		t.Fatalf("retry: replayed=%v id=%s v%d, want replay of %s v%d", second.Replayed, second.Case.Id, second.Case.Version, first.Case.Id, first.Case.Version)
	}
	// The same id with another body is refused, and writes nothing.
	other := report("retry-me", "something else")
	if _, err := c.Cases(2).ReportCase(ctx, other); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("reused request id: got %v, want AlreadyExists", err)
	}
	list, err := c.Cases(1).ListCases(ctx, &pb.ListCasesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Cases) != 1 {
		t.Fatalf("%d cases, want 1", len(list.Cases))
	}
}

// TestFollowerReadsAndWrites writes through one follower and reads through
// the other at each consistency level.
func TestFollowerReadsAndWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: run without -short")
	}
	c := testcluster.New(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := c.WaitLeader(20 * time.Second)
	f1, f2 := (l+1)%3, (l+2)%3
	resp, err := c.Cases(f1).ReportCase(ctx, report("via-follower", "follower write"))
	if err != nil {
		t.Fatalf("write via follower: %v", err)
	}
	for _, level := range []pb.Consistency{pb.Consistency_CONSISTENCY_UNSPECIFIED, pb.Consistency_CONSISTENCY_LINEARIZABLE, pb.Consistency_CONSISTENCY_LEADER} {
		got, err := c.Cases(f2).GetCase(ctx, &pb.GetCaseRequest{CaseId: resp.Case.Id, Consistency: level})
		if err != nil {
			t.Fatalf("read %v via follower: %v", level, err)
		}
		if got.Version != resp.Case.Version {
			t.Fatalf("read %v: version %d, want %d", level, got.Version, resp.Case.Version)
		}
	}
	testcluster.WaitFor(t, 10*time.Second, "stale read to catch up", func() bool {
		got, err := c.Cases(f2).GetCase(ctx, &pb.GetCaseRequest{CaseId: resp.Case.Id, Consistency: pb.Consistency_CONSISTENCY_STALE})
		return err == nil && got.Version == resp.Case.Version
	})
	if _, err := c.Cases(f2).GetCase(ctx, &pb.GetCaseRequest{CaseId: "320582-20261122-999999"}); status.Code(err) != codes.NotFound {
		t.Fatalf("missing case: %v, want NotFound", err)
	}
}

// TestJoinTransferRemove grows a one-replica group to three through the
// ClusterService, moves leadership and removes a member.
func TestJoinTransferRemove(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: run without -short")
	}
	c := testcluster.New(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Cases(0).ReportCase(ctx, report("before-join", "before join")); err != nil {
		t.Fatal(err)
	}
	for k := 2; k <= 3; k++ {
		cfg := c.Members[0].Cfg
		cfg.Node.ID = fmt.Sprintf("n%d", k)
		cfg.Node.DataDir = t.TempDir()
		cfg.Raft.Addr = testcluster.FreePort(t)
		cfg.Raft.Advertise = cfg.Raft.Addr
		cfg.GRPC.Addr = testcluster.FreePort(t)
		cfg.HTTP.Addr = testcluster.FreePort(t)
		cfg.Internal.Addr = testcluster.FreePort(t)
		cfg.Raft.Bootstrap = false
		cfg.Raft.Join = []string{c.Members[0].Cfg.GRPC.Addr}
		c.Members = append(c.Members, &testcluster.Member{ID: cfg.Node.ID, Cfg: cfg})
		c.Start(len(c.Members) - 1)
	}
	st, err := c.ClusterAdmin(2).GetStatus(ctx, &pb.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 10*time.Second, "three members", func() bool {
		st, err = c.ClusterAdmin(2).GetStatus(ctx, &pb.GetStatusRequest{})
		return err == nil && len(st.Servers) == 3
	})
	// The joiner catches up and has the case written before it joined.
	testcluster.WaitFor(t, 10*time.Second, "the joiner to serve the case", func() bool {
		got, err := c.Cases(2).ListCases(ctx, &pb.ListCasesRequest{Consistency: pb.Consistency_CONSISTENCY_LINEARIZABLE})
		return err == nil && len(got.Cases) == 1
	})
	tr, err := c.ClusterAdmin(1).TransferLeadership(ctx, &pb.TransferLeadershipRequest{NodeId: "n3"})
	if err != nil {
		t.Fatalf("transfer via follower: %v", err)
	}
	if tr.NewLeaderId != "n3" {
		t.Fatalf("new leader %s, want n3", tr.NewLeaderId)
	}
	if _, err := c.ClusterAdmin(0).Remove(ctx, &pb.RemoveRequest{NodeId: "n2"}); err != nil {
		t.Fatalf("remove: %v", err)
	}
	testcluster.WaitFor(t, 10*time.Second, "two members", func() bool {
		st, err = c.ClusterAdmin(2).GetStatus(ctx, &pb.GetStatusRequest{})
		return err == nil && len(st.Servers) == 2
	})
	if _, err := c.ClusterAdmin(0).Remove(ctx, &pb.RemoveRequest{NodeId: "nobody"}); status.Code(err) != codes.NotFound {
		t.Fatalf("remove unknown: %v, want NotFound", err)
	}
}

// TestNoQuorumAnswers: with two of three replicas down, a write without a
// client deadline is refused within the apply timeout instead of hanging,
// and it is a code the client retries on.
func TestNoQuorumAnswers(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster fault test: run without -short")
	}
	c := testcluster.New(t, 3, func(cfg *config.Config) { cfg.Raft.ApplyTimeout = 2 * time.Second })
	survivor := c.WaitLeader(20 * time.Second)
	for i := range c.Members {
		if i != survivor {
			c.Kill(i)
		}
	}
	start := time.Now()
	_, err := c.Cases(survivor).ReportCase(context.Background(), report("no-quorum", "no quorum"))
	if !retryable(err) {
		t.Fatalf("write without quorum: %v, want a retryable code", err)
	}
	// Without the apply timeout the write waits forever; the bound is 15
	// times the timeout, for a loaded machine.
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("write without quorum took %v (apply timeout 2 s)", d)
	}
}

// Every replica registers the log version its binary applies, the
// version gate's input during a rolling upgrade (tiers/node/version.go).
func TestReplicasRegisterTheirLogVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: run without -short")
	}
	c := testcluster.New(t, 3)
	l := c.WaitLeader(20 * time.Second)
	testcluster.WaitFor(t, 20*time.Second, "every replica registered with its log version", func() bool {
		nodes, err := c.Replica(l).Node.Store().Nodes()
		if err != nil || len(nodes) != 3 {
			return false
		}
		for _, ni := range nodes {
			if ni.LogVersion != fsm.LogVersion {
				return false
			}
		}
		return true
	})
}
