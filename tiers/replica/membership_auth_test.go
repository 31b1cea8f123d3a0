package replica_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cityhub/cityhub/config"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// TestJoinWithAuthentication grows a one-replica group to three with
// raft.join while authentication is on. The new replicas have no login;
// the public ClusterService.Join refuses them, so they ask on the members'
// internal listeners, their group certificate admitting them. The third
// names a follower first, which answers that it does not lead, and the
// leader is asked next. A restart with raft.join still set changes nothing
// (the member is not removed and added again), and the joiners serve the
// cases written before they came.
func TestJoinWithAuthentication(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: run without -short")
	}
	internal, authOn := authenticated(t)
	c := testcluster.New(t, 1, internal, authOn)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	actx := clerkContext(ctx, t, c, 0)
	var written []string
	for k := range 5 {
		r := report(fmt.Sprintf("join-auth-%d", k), fmt.Sprintf("written before the joins %d", k))
		r.Actor, r.Role, r.Source = "", pb.Role_ROLE_UNSPECIFIED, pb.Source_SOURCE_HOTLINE_12345
		resp, err := c.Cases(0).ReportCase(actx, r)
		if err != nil {
			t.Fatal(err)
		}
		written = append(written, resp.Case.Id)
	}

	// Without credentials the public API refuses a join.
	first := c.Members[0].Cfg
	if _, err := c.ClusterAdmin(0).Join(ctx, &pb.JoinRequest{NodeId: "n9", RaftAddr: "127.0.0.1:1", GrpcAddr: "127.0.0.1:2"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("public join without a login: %v, want Unauthenticated", err)
	}
	peerOf := func(cfg config.Config) config.Peer {
		return config.Peer{ID: cfg.Node.ID, RaftAddr: cfg.Raft.Addr, GRPCAddr: cfg.GRPC.Addr, HTTPAddr: cfg.HTTP.Addr, InternalAddr: cfg.Internal.Addr}
	}
	for k := 2; k <= 3; k++ {
		cfg := first
		cfg.Node.ID = fmt.Sprintf("n%d", k)
		cfg.Node.DataDir = t.TempDir()
		cfg.Raft.Addr = testcluster.FreePort(t)
		cfg.Raft.Advertise = cfg.Raft.Addr
		cfg.GRPC.Addr = testcluster.FreePort(t)
		cfg.HTTP.Addr = testcluster.FreePort(t)
		cfg.Internal.Addr = testcluster.FreePort(t)
		cfg.Raft.Bootstrap = false
		cfg.Auth.AdminPasswordFile = ""
		cfg.Raft.Peers = []config.Peer{peerOf(first)}
		cfg.Raft.Join = []string{first.GRPC.Addr}
		if k == 3 {
			// n2, a follower, is named and asked first.
			n2 := c.Members[1].Cfg
			cfg.Raft.Peers = append(cfg.Raft.Peers, peerOf(n2))
			cfg.Raft.Join = []string{n2.GRPC.Addr}
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("config of n%d: %v", k, err)
		}
		c.Members = append(c.Members, &testcluster.Member{ID: cfg.Node.ID, Cfg: cfg})
		c.Start(len(c.Members) - 1)
	}
	l := c.WaitLeader(readyWait)
	voters := func() int {
		n := 0
		for _, s := range c.Replica(l).Node.Status().Servers {
			if s.Suffrage == "Voter" {
				n++
			}
		}
		return n
	}
	testcluster.WaitFor(t, readyWait, "three voters", func() bool { return voters() == 3 })
	cf := c.Replica(l).Node.Raft().GetConfiguration()
	if err := cf.Error(); err != nil {
		t.Fatal(err)
	}
	before := cf.Index()

	// A restart of a joiner with raft.join still set leaves the
	// configuration as it is.
	c.Stop(2)
	c.Start(2)
	waitReady(t, c, 2)
	l = c.WaitLeader(readyWait)
	cf = c.Replica(l).Node.Raft().GetConfiguration()
	if err := cf.Error(); err != nil {
		t.Fatal(err)
	}
	if cf.Index() != before || voters() != 3 {
		t.Fatalf("after n3's restart: configuration index %d (was %d), %d voters; want it unchanged with 3", cf.Index(), before, voters())
	}
	for i := 1; i <= 2; i++ {
		for _, id := range written {
			got, err := c.Cases(i).GetCase(actx, &pb.GetCaseRequest{CaseId: id, Consistency: pb.Consistency_CONSISTENCY_LINEARIZABLE})
			if err != nil || got.Id != id {
				t.Fatalf("read %s through %s: %v", id, c.Members[i].ID, err)
			}
		}
	}
}
