package replica_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/cityhub/cityhub/config"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/errcode"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/node"
	"github.com/cityhub/cityhub/tiers/replica"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// TestMixedVersionGroup is a rolling upgrade half-way: one replica of
// three still runs a release whose log version is 1. A command of log
// version 2 (an evidence chunk, command 23) is refused by the leader before
// it is proposed, whichever replica leads (nothing reaches the log), commands
// of version 1 go on, and every replica holds the same state. Once the old replica is upgraded (restarted at this release's
// version) the same command is proposed and every replica applies it.
func TestMixedVersionGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: run without -short")
	}
	if fsm.LogVersion < 2 {
		t.Skip("no command newer than version 1")
	}
	const old = 2 // member n3
	c := testcluster.NewWith(t, 3, func(cfg config.Config) replica.Options {
		if cfg.Node.ID == "n3" {
			return replica.Options{LogVersion: 1}
		}
		return replica.Options{}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	wait := func(what string, cond func() bool) { testcluster.WaitFor(t, time.Minute, what, cond) }
	registered := func(want uint32) func() bool {
		return func() bool {
			l := c.Leader()
			if l < 0 {
				return false
			}
			nodes, err := c.Replica(l).Node.Store().Nodes()
			if err != nil || len(nodes) != 3 {
				return false
			}
			for _, ni := range nodes {
				v := fsm.EffectiveVersion(ni.LogVersion)
				if ni.NodeId == "n3" && v != want || ni.NodeId != "n3" && v != fsm.LogVersion {
					return false
				}
			}
			return true
		}
	}
	wait("every replica registered, n3 at log version 1", registered(1))

	data := []byte("photo of a broken manhole cover")
	sum := sha256.Sum256(data)
	chunk := func(reqID string) *pb.Command {
		return &pb.Command{RequestId: reqID, Body: &pb.Command_AttachEvidence{AttachEvidence: &pb.AttachEvidence{
			Op: &pb.AttachEvidence_Chunk{Chunk: &pb.EvidenceChunk{Sha256: hex.EncodeToString(sum[:]), Index: 0, Count: 1, Data: data}}}}}
	}
	if got := fsm.RequiredVersion(chunk("x")); got != 2 {
		t.Fatalf("an evidence chunk needs log version %d, want 2", got)
	}

	// Refused on whichever replica leads: one of this release (whose gate
	// finds n3's registration) and the old one (which does not know the
	// command at all).
	for _, to := range []int{0, 1, old} {
		if l := c.WaitLeader(30 * time.Second); l != to {
			if _, err := c.ClusterAdmin(l).TransferLeadership(ctx, &pb.TransferLeadershipRequest{NodeId: c.Members[to].ID}); err != nil {
				t.Fatalf("transfer %d → %d: %v", l, to, err)
			}
			wait(fmt.Sprintf("replica %d leads a settled term", to), func() bool { return c.Replica(to).Node.LeaderTerm() != 0 })
		}
		// The replicas all run this binary underneath, so a chunk that
		// reached the log would be stored by them: sameState below finds
		// none.
		_, err := c.Replica(to).Node.ApplyLocal(ctx, chunk(fmt.Sprintf("chunk-on-%d", to)))
		if !errors.Is(err, node.ErrUpgradeInProgress) || errcode.Code(err) != codes.Unavailable {
			t.Fatalf("leader %d: %v (code %v), want the version gate's refusal (Unavailable)", to, err, errcode.Code(err))
		}
	}
	// Version 1 commands go on meanwhile.
	for i := range 3 {
		if _, err := c.Cases(i).ReportCase(ctx, report(fmt.Sprintf("mixed-%d", i), "mixed group")); err != nil {
			t.Fatalf("report through %d: %v", i, err)
		}
	}
	sameState := func(what string) {
		t.Helper()
		wait(what, func() bool {
			l := c.Leader()
			if l < 0 {
				return false
			}
			idx := c.Replica(l).Node.AppliedIndex()
			for _, i := range c.Up() {
				if c.Replica(i).Node.AppliedIndex() != idx {
					return false
				}
			}
			return true
		})
		want := allCases(t, c, 0)
		for _, i := range c.Up()[1:] {
			got := allCases(t, c, i)
			if len(got) != len(want) {
				t.Fatalf("%s: replica %d holds %d cases, replica 0 %d", what, i, len(got), len(want))
			}
			for k := range got {
				if !proto.Equal(got[k], want[k]) {
					t.Fatalf("%s: replica %d differs on %s", what, i, got[k].Id)
				}
			}
		}
		for _, i := range c.Up() {
			if _, err := c.Replica(i).Node.Store().ReadEvidenceChunk(hex.EncodeToString(sum[:]), 0); err == nil {
				t.Fatalf("%s: replica %d stored the refused chunk", what, i)
			}
		}
	}
	sameState("every replica at the same index with the same cases")

	// The upgrade: the old replica restarts at this release's version.
	c.Stop(old)
	if err := c.StartWith(old, func(o *replica.Options) { o.LogVersion = 0 }); err != nil {
		t.Fatal(err)
	}
	wait("n3 registered at this release's log version", registered(fsm.LogVersion))
	l := c.WaitLeader(30 * time.Second)
	if _, err := c.Replica(l).Node.ApplyLocal(ctx, chunk("chunk-after-upgrade")); err != nil {
		t.Fatalf("after the upgrade: %v", err)
	}
	wait("every replica applied the chunk", func() bool {
		for i := range 3 {
			if _, err := c.Replica(i).Node.Store().ReadEvidenceChunk(hex.EncodeToString(sum[:]), 0); err != nil {
				return false
			}
		}
		return true
	})
}
