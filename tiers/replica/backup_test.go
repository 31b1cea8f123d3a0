package replica_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/backup"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// reportRetrying reports through member i until the write is acknowledged.
func reportRetrying(ctx context.Context, c *testcluster.Cluster, i int, rid string) (*pb.Case, error) {
	for {
		resp, err := c.Cases(i).ReportCase(ctx, report(rid, "backup "+rid))
		if err == nil {
			return resp.Case, nil
		}
		if !retryable(err) || ctx.Err() != nil {
			return nil, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A snapshot saved under load from a follower, the group destroyed and
// restored from it: every write acknowledged before the save is on every
// restored replica, the backup's count matches, and the new group takes
// writes (at indexes above the backup's, which its state machine must not
// skip), through a leader change too.
func TestSnapshotSaveDestroyRestore(t *testing.T) {
	c := testcluster.New(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for i := 0; i < 40; i++ {
		if _, err := reportRetrying(ctx, c, i%3, fmt.Sprintf("pre-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// Load: writers keep reporting through every replica during the save.
	var (
		acked   sync.Map // request id -> case id
		stop    atomic.Bool
		wg      sync.WaitGroup
		counter atomic.Int64
	)
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				rid := fmt.Sprintf("load-%d", counter.Add(1))
				if cs, err := reportRetrying(ctx, c, w, rid); err == nil {
					acked.Store(rid, cs.Id)
				}
			}
		}()
	}
	testcluster.WaitFor(t, time.Minute, "writes under way", func() bool { return counter.Load() > 20 })
	before := map[string]string{}
	acked.Range(func(k, v any) bool { before[k.(string)] = v.(string); return true })
	leader := c.WaitLeader(10 * time.Second)
	path := filepath.Join(t.TempDir(), "group.snap")
	saved, err := backup.SaveFile(ctx, c.ClusterAdmin(leader), &pb.SaveSnapshotRequest{}, path)
	if err != nil {
		t.Fatalf("save: %v", err)
	}
	stop.Store(true)
	wg.Wait()
	if saved.Info.FromLeader || saved.Info.NodeId == c.Members[leader].ID {
		t.Errorf("snapshot taken on %s (leader: %v); a follower was available", saved.Info.NodeId, saved.Info.FromLeader)
	}
	if saved.Info.Index < saved.Info.MinIndex || saved.Info.MinIndex == 0 {
		t.Errorf("snapshot at index %d, floor %d", saved.Info.Index, saved.Info.MinIndex)
	}
	st, err := backup.InspectFile(path)
	if err != nil || !st.ChecksumOK || st.SideFile != "ok" || st.Cases != saved.Cases || st.Cases < 40+len(before) {
		t.Fatalf("status of the saved file: %+v, %v (saved %d cases, %d acknowledged before)", st, err, saved.Cases, len(before))
	}

	c.Destroy()
	restored := c.RestoreFrom(path)
	if restored[0].CatchingUp {
		t.Errorf("a group outside a federation waits to catch up")
	}
	for i := range c.Members {
		r := c.Replica(i)
		for rid, id := range before {
			got, err := r.Node.Store().GetCase(id)
			if err != nil || got.History[0].RequestId != rid {
				t.Fatalf("%s: case %s of %s acknowledged before the save: %v", c.Members[i].ID, id, rid, err)
			}
		}
		if n := len(allCases(t, c, i)); n != st.Cases {
			t.Errorf("%s holds %d cases, the backup %d", c.Members[i].ID, n, st.Cases)
		}
		// The state was rebuilt at the backup's index. The new group may
		// have written since it started (its leader's first entries): every
		// entry above that index is the new group's, of a later term.
		rs, err := r.Node.Store().RestoreState()
		if err != nil || rs == nil || rs.Index != saved.Info.Index || rs.Term != saved.Info.Term {
			t.Errorf("%s: restore record %v, %v; the backup is at index %d, term %d", c.Members[i].ID, rs, err, saved.Info.Index, saved.Info.Term)
		}
		idx := r.Node.StateIndex()
		if idx < saved.Info.Index {
			t.Errorf("%s starts at state index %d, below the backup's %d", c.Members[i].ID, idx, saved.Info.Index)
		}
		for j := saved.Info.Index + 1; j <= idx; j++ {
			if e, err := r.Node.LogEntry(j); err != nil || e.Term <= saved.Info.Term {
				t.Errorf("%s: entry %d above the backup's index: %v, %v (the backup's term %d)", c.Members[i].ID, j, e, err, saved.Info.Term)
			}
		}
	}
	// The new group writes above the backup's index, on every replica.
	after, err := reportRetrying(ctx, c, 0, "after-restore")
	if err != nil {
		t.Fatalf("write after the restore: %v", err)
	}
	testcluster.WaitFor(t, time.Minute, "the new write on every replica", func() bool {
		for i := range c.Members {
			if _, err := c.Replica(i).Node.Store().GetCase(after.Id); err != nil {
				return false
			}
		}
		return true
	})
	if term := c.Replica(c.WaitLeader(10 * time.Second)).Node.Raft().CurrentTerm(); term <= saved.Info.Term {
		t.Errorf("the new group's term %d is not above the backup's %d", term, saved.Info.Term)
	}
	// A leader change: the next leader writes on.
	old := c.WaitLeader(10 * time.Second)
	c.Kill(old)
	next, err := reportRetrying(ctx, c, (old+1)%3, "after-failover")
	if err != nil {
		t.Fatalf("write after a leader change: %v", err)
	}
	c.Start(old)
	testcluster.WaitFor(t, time.Minute, "the restarted replica to catch up", func() bool {
		r := c.Replica(old)
		_, err := r.Node.Store().GetCase(next.Id)
		return err == nil
	})
}

// The save asked of a follower is taken there; --leader takes it on the
// leader.
func TestSnapshotSourceFollowerOrLeader(t *testing.T) {
	c := testcluster.New(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := reportRetrying(ctx, c, 0, "one"); err != nil {
		t.Fatal(err)
	}
	leader := c.WaitLeader(10 * time.Second)
	follower := (leader + 1) % 3
	dir := t.TempDir()
	s, err := backup.SaveFile(ctx, c.ClusterAdmin(follower), &pb.SaveSnapshotRequest{}, filepath.Join(dir, "f.snap"))
	if err != nil || s.Info.NodeId != c.Members[follower].ID || s.Info.FromLeader || s.Cases != 1 {
		t.Fatalf("asked of follower %s: %+v, %v", c.Members[follower].ID, s, err)
	}
	s, err = backup.SaveFile(ctx, c.ClusterAdmin(follower), &pb.SaveSnapshotRequest{Leader: true}, filepath.Join(dir, "l.snap"))
	if err != nil || !s.Info.FromLeader || s.Info.NodeId != c.Members[leader].ID {
		t.Fatalf("--leader: %+v, %v", s, err)
	}
}
