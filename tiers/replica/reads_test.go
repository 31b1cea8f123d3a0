package replica_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// readAfterReady is what the issue "Reads hang after a restart" allows a
// linearizable read on an idle group, once /readyz says ready (or once a
// leadership transfer is done).
const readAfterReady = 2 * time.Second

// readyWait bounds the wait for readiness itself: generous, so the tests
// depend on how fast the machine is only through readAfterReady.
const readyWait = 60 * time.Second

// readyz fetches member i's /readyz: its status code and body.
func readyz(c *testcluster.Cluster, i int) (int, map[string]any) {
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get(c.HTTPBase(i) + "/readyz")
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// waitReady waits (readyWait at most) until member i's /readyz answers 200
// and returns when it did.
func waitReady(t *testing.T, c *testcluster.Cluster, i int) time.Time {
	t.Helper()
	var body map[string]any
	testcluster.WaitFor(t, readyWait, c.Members[i].ID+" /readyz 200", func() bool {
		var code int
		code, body = readyz(c, i)
		return code == http.StatusOK
	})
	t.Logf("%s ready: %v", c.Members[i].ID, body)
	return time.Now()
}

// linearizableRead reads id through member i with the default consistency
// (linearizable) and fails the test unless it answers within
// readAfterReady of since. The call itself may wait longer (so a hang shows
// as a duration, not only as a timeout).
func linearizableRead(t *testing.T, c *testcluster.Cluster, i int, id, desc string, since time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	start := time.Now()
	resp, err := c.Cases(i).GetCase(ctx, &pb.GetCaseRequest{CaseId: id})
	took, fromReady := time.Since(start), time.Since(since)
	t.Logf("linearizable read of %s through %s: %v (%v after ready), err %v", id, c.Members[i].ID, took, fromReady, err)
	if err != nil {
		t.Fatalf("read %s through %s: %v after %v", id, c.Members[i].ID, err, took)
	}
	if resp.GetDescription() != desc {
		t.Fatalf("read %s through %s: description %q, want %q", id, c.Members[i].ID, resp.GetDescription(), desc)
	}
	if fromReady > readAfterReady {
		t.Fatalf("read through %s answered %v after readiness (the call took %v), want at most %v", c.Members[i].ID, fromReady, took, readAfterReady)
	}
}

// writeCases reports n cases through the leader and waits until every
// replica has applied them and knows every replica's addresses (so no
// replica registers itself after a restart: the group stays idle); it
// returns the case ids and descriptions.
func writeCases(t *testing.T, c *testcluster.Cluster, n int) (ids, descs []string) {
	t.Helper()
	leader := c.WaitLeader(readyWait)
	for k := 0; k < n; k++ {
		desc := fmt.Sprintf("idle read %d", k)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		resp, err := c.Cases(leader).ReportCase(ctx, report(fmt.Sprintf("idle-%d", k), desc))
		cancel()
		if err != nil {
			t.Fatalf("report %d: %v", k, err)
		}
		ids, descs = append(ids, resp.Case.Id), append(descs, desc)
	}
	last := c.Members[leader].R.Node.Raft().LastIndex()
	for i := range c.Members {
		testcluster.WaitFor(t, readyWait, c.Members[i].ID+" applied the writes", func() bool {
			return c.Members[i].R.Node.AppliedIndex() >= last
		})
		testcluster.WaitFor(t, readyWait, c.Members[i].ID+" knows every replica", func() bool {
			nodes, err := c.Members[i].R.Node.Store().Nodes()
			return err == nil && len(nodes) == len(c.Members)
		})
	}
	return ids, descs
}

func restartAll(c *testcluster.Cluster) {
	for i := range c.Members {
		c.Stop(i)
	}
	for i := range c.Members {
		c.Start(i)
	}
}

// TestReadAfterRestartAnswers: every replica of an idle group stops and
// starts again (a night's restart); once /readyz says ready, a
// linearizable read, through the leader or through a follower, answers
// within readAfterReady, with no write in between. Before, the new
// leader's no-op entry never reached the state machine, so the read waited
// for the next write while /readyz said ready.
func TestReadAfterRestartAnswers(t *testing.T) {
	c := testcluster.New(t, 3)
	ids, descs := writeCases(t, c, 3)
	for k, via := range []string{"leader", "follower"} {
		t.Run("via "+via, func(t *testing.T) {
			restartAll(c)
			leader := c.WaitLeader(readyWait)
			i := leader
			if via == "follower" {
				i = (leader + 1) % len(c.Members)
			}
			ready := waitReady(t, c, i)
			linearizableRead(t, c, i, ids[k], descs[k], ready)
		})
	}
}

// TestReadAfterTransferAnswers: after a leadership transfer on an idle
// group, a linearizable read answers within readAfterReady of the
// transfer's end, through the new leader and through a follower.
func TestReadAfterTransferAnswers(t *testing.T) {
	c := testcluster.New(t, 3)
	ids, descs := writeCases(t, c, 2)
	for k, via := range []string{"leader", "follower"} {
		t.Run("via "+via, func(t *testing.T) {
			old := c.WaitLeader(readyWait)
			ctx, cancel := context.WithTimeout(context.Background(), readyWait)
			resp, err := c.ClusterAdmin(old).TransferLeadership(ctx, &pb.TransferLeadershipRequest{})
			cancel()
			if err != nil {
				t.Fatalf("transfer leadership from %s: %v", c.Members[old].ID, err)
			}
			done := time.Now()
			t.Logf("leadership moved from %s to %s", c.Members[old].ID, resp.GetNewLeaderId())
			i := -1
			for j, m := range c.Members {
				if (via == "leader") == (m.ID == resp.GetNewLeaderId()) {
					i = j
					break
				}
			}
			linearizableRead(t, c, i, ids[k], descs[k], done)
		})
	}
}

// TestReadAfterRestartAnswersSingle is TestReadAfterRestartAnswers for a
// group of one replica (the demo's default).
func TestReadAfterRestartAnswersSingle(t *testing.T) {
	c := testcluster.New(t, 1)
	ids, descs := writeCases(t, c, 1)
	restartAll(c)
	ready := waitReady(t, c, 0)
	linearizableRead(t, c, 0, ids[0], descs[0], ready)
}
