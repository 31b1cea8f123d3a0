package replica_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/cityhub/cityhub/config"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/client"
	"github.com/cityhub/cityhub/tiers/node"
	"github.com/cityhub/cityhub/tiers/replica"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
	"github.com/cityhub/cityhub/tiers/store"
)

// TestRejoinReplacesDamagedReplica: one replica of a 3-replica tier (raft
// and write forwarding over mutual TLS, authentication on) has its raft
// log's metadata destroyed while stopped; it refuses to start, naming the
// file. Started once with Rejoin (cityhubd --rejoin), it moves its data
// aside, the leader removes it and adds it back over the internal plane (no
// user credentials), raft sends it a snapshot (the leader's log is
// compacted), and it holds every case, the ones written while it was down
// included, and serves.
//
// With marker snapshots (raft.marker_snapshot_cases reached) the leader's
// snapshot holds no state: what it sends is streamed from its live store.
func TestRejoinReplacesDamagedReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster fault test: run without -short")
	}
	t.Run("full snapshots", func(t *testing.T) { testRejoin(t, 0) })
	t.Run("marker snapshots", func(t *testing.T) { testRejoin(t, 100) })
}

func testRejoin(t *testing.T, markerCases uint64) {
	internal, authOn := authenticated(t)
	c := testcluster.New(t, 3, internal, authOn, func(cfg *config.Config) {
		cfg.Raft.TrailingLogs = 20
		cfg.Raft.WALSegmentSize = 64 << 10 // compaction drops whole segments
		cfg.Raft.SnapshotThreshold = 1 << 20
		cfg.Raft.SnapshotInterval = time.Hour
		cfg.Raft.MarkerSnapshotCases = markerCases
	})
	leader := c.WaitLeader(readyWait)
	// A generous bound for the whole test: under -race on a loaded 2-core
	// machine its 360 writes alone took minutes.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	actx := clerkContext(ctx, t, c, leader)

	written := map[string]bool{}
	write := func(from, to int) {
		t.Helper()
		l := c.WaitLeader(readyWait)
		for k := from; k < to; k++ {
			r := report(fmt.Sprintf("rejoin-%d", k), fmt.Sprintf("rejoin case %d: %s", k, strings.Repeat("路面破损 ", 20)))
			r.Actor, r.Role, r.Source = "", pb.Role_ROLE_UNSPECIFIED, pb.Source_SOURCE_HOTLINE_12345
			resp, err := c.Cases(l).ReportCase(actx, r)
			if err != nil {
				t.Fatalf("report %d: %v", k, err)
			}
			written[resp.Case.Id] = true
		}
	}
	write(0, 300)
	f := (leader + 1) % 3
	// Everyone has the first cases; the leader snapshots and compacts its
	// log, so the rejoined replica can only be sent a snapshot.
	waitAllApplied(t, c)
	if err := c.Replica(leader).Node.Raft().Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	leaderSnaps := snapshotDirs(t, c.Members[leader].Cfg.Node.DataDir)
	if len(leaderSnaps) == 0 {
		t.Fatal("the leader holds no snapshot")
	}
	if marker := isMarkerFile(t, filepath.Join(leaderSnaps[len(leaderSnaps)-1], "state.bin")); marker != (markerCases > 0) {
		t.Fatalf("the leader's snapshot is a marker: %v; want %v (raft.marker_snapshot_cases %d, 300 cases)", marker, markerCases > 0, markerCases)
	}
	write(300, 330)
	waitAllApplied(t, c)

	c.Stop(f)
	dir := c.Members[f].Cfg.Node.DataDir
	meta := filepath.Join(dir, "raft", "wal-meta.db")
	if err := os.Remove(meta); err != nil {
		t.Fatal(err)
	}
	err := c.TryStart(f)
	if !errors.Is(err, node.ErrDamaged) || !strings.Contains(err.Error(), meta) || !strings.Contains(err.Error(), "--rejoin") {
		t.Fatalf("start with the raft metadata gone: %v, want a refusal naming %s and --rejoin", err, meta)
	}
	write(330, 360) // while the replica is down

	if err := c.StartWith(f, func(o *replica.Options) { o.Rejoin = true }); err != nil {
		t.Fatalf("rejoin: %v", err)
	}
	for _, d := range []string{"state", "raft", "snapshots"} {
		if m, _ := filepath.Glob(filepath.Join(dir, d+".rejoin-*")); len(m) != 1 {
			t.Fatalf("%s was not moved aside: %v", d, m)
		}
	}
	l := c.WaitLeader(readyWait)
	lr := c.Replica(l)
	testcluster.WaitFor(t, 2*readyWait, c.Members[f].ID+" caught up", func() bool {
		fr := c.Replica(f)
		return fr.Node.AppliedIndex() >= lr.Node.Raft().CommitIndex() && len(casesOf(t, fr.Node.Store())) == len(written)
	})
	got := snapshotDirs(t, dir)
	if len(got) == 0 {
		m, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*", "*"))
		t.Fatalf("the rejoined replica holds no snapshot: raft did not send it one (leader %v; files %v)", lr.Node.Raft().Stats(), m)
	}
	// What it was sent is a full copy, whatever the leader keeps.
	if isMarkerFile(t, filepath.Join(got[len(got)-1], "state.bin")) {
		t.Fatal("the rejoined replica was sent a marker, not the state")
	}
	if m, _ := filepath.Glob(filepath.Join(c.Members[l].Cfg.Node.DataDir, "snapshots", "send-*.tmp")); len(m) > 0 {
		t.Fatalf("the stream sent to the follower was left behind: %v", m)
	}
	want, have := casesOf(t, lr.Node.Store()), casesOf(t, c.Replica(f).Node.Store())
	for id := range written {
		if !proto.Equal(want[id], have[id]) || have[id] == nil {
			t.Fatalf("case %s on the rejoined replica:\n got %v\nwant %v", id, have[id], want[id])
		}
	}
	voters := 0
	for _, s := range lr.Node.Status().Servers {
		if s.Suffrage == "Voter" {
			voters++
		}
	}
	if voters != 3 {
		t.Fatalf("the group has %d voters after the rejoin, want 3: %v", voters, lr.Node.Status().Servers)
	}
	// It serves: its own store (stale), a linearizable read and a write
	// through it.
	waitReady(t, c, f)
	fctx := actx
	var any string
	for id := range written {
		any = id
		break
	}
	for _, lvl := range []pb.Consistency{pb.Consistency_CONSISTENCY_STALE, pb.Consistency_CONSISTENCY_LINEARIZABLE} {
		// A linearizable read goes to the leader, which confirms its
		// leadership with a quorum first: right after the rejoin that can
		// fail as Unavailable, which a client retries (the callers' one
		// policy, bounded at 30 s).
		var got *pb.Case
		rctx, cancel := context.WithTimeout(fctx, 30*time.Second)
		err := client.Do(rctx, client.Policy{}, func(ctx context.Context) (err error) {
			got, err = c.Cases(f).GetCase(ctx, &pb.GetCaseRequest{CaseId: any, Consistency: lvl})
			return err
		})
		cancel()
		if err != nil || got.Id != any {
			t.Fatalf("read %s through the rejoined replica (%v): %v", any, lvl, err)
		}
	}
	r := report("rejoin-after", "after the rejoin")
	r.Actor, r.Role, r.Source = "", pb.Role_ROLE_UNSPECIFIED, pb.Source_SOURCE_HOTLINE_12345
	if resp, err := c.Cases(f).ReportCase(fctx, r); err != nil || written[resp.GetCase().GetId()] {
		t.Fatalf("write through the rejoined replica: %v (case %s)", err, resp.GetCase().GetId())
	}
}

// isMarkerFile says whether a snapshot's state.bin is a marker.
func isMarkerFile(t *testing.T, path string) bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, _, ok, err := store.PeekMarker(bufio.NewReader(f))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return ok
}

// authenticated are the options of a tier with authentication on: the
// group's certificate on the internal plane, and the first administrator's
// password (the one clerkContext logs in with).
func authenticated(t *testing.T) (internalTLS, auth testcluster.Option) {
	t.Helper()
	internalTLS, _ = testcluster.InternalTLS(t, "320582")
	pw := filepath.Join(t.TempDir(), "admin-password")
	if err := os.WriteFile(pw, []byte("rejoin-admin-password"), 0o600); err != nil {
		t.Fatal(err)
	}
	return internalTLS, func(cfg *config.Config) {
		cfg.Auth.Disabled = false
		cfg.Auth.AdminPasswordFile = pw
	}
}

// clerkContext logs in as the first administrator, creates an intake clerk
// and returns ctx with the clerk's token.
func clerkContext(ctx context.Context, t *testing.T, c *testcluster.Cluster, i int) context.Context {
	t.Helper()
	authc := pb.NewAuthServiceClient(c.Conn(i))
	var admin string
	testcluster.WaitFor(t, readyWait, "the administrator's login", func() bool {
		tok, err := authc.Login(ctx, &pb.LoginRequest{Username: "admin", Password: "rejoin-admin-password"})
		if err == nil {
			admin = tok.AccessToken
		}
		return err == nil
	})
	actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+admin)
	if _, err := authc.CreateAccount(actx, &pb.CreateAccountRequest{RequestId: "rejoin-clerk", Name: "clerk", Role: pb.Role_ROLE_INTAKE_CLERK, Password: "rejoin-clerk-password"}); err != nil {
		t.Fatal(err)
	}
	tok, err := authc.Login(ctx, &pb.LoginRequest{Username: "clerk", Password: "rejoin-clerk-password"})
	if err != nil {
		t.Fatal(err)
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok.AccessToken)
}

// waitAllApplied waits until every running replica has applied the
// leader's last entry.
func waitAllApplied(t *testing.T, c *testcluster.Cluster) {
	t.Helper()
	l := c.WaitLeader(readyWait)
	last := c.Replica(l).Node.Raft().LastIndex()
	for _, i := range c.Up() {
		testcluster.WaitFor(t, readyWait, c.Members[i].ID+" applied the writes", func() bool {
			return c.Replica(i).Node.AppliedIndex() >= last
		})
	}
}
