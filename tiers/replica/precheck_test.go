package replica_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// lastIndexes is every running member's raft last index.
func lastIndexes(c *testcluster.Cluster) map[string]uint64 {
	out := map[string]uint64{}
	for _, i := range c.Up() {
		out[c.Members[i].ID] = c.Members[i].R.Node.Raft().LastIndex()
	}
	return out
}

// quietIndexes waits until every member holds the same last index and it
// stays put for a while (nothing else is being written), and returns it.
// The first wait of a cluster also outlasts the replicas' registration
// (RegisterNode, retried for a while after start).
func quietIndexes(t *testing.T, c *testcluster.Cluster) uint64 {
	return quietFor(t, c, 3)
}

func quietFor(t *testing.T, c *testcluster.Cluster, rounds int) uint64 {
	t.Helper()
	var (
		last   uint64
		stable int
	)
	testcluster.WaitFor(t, 10*time.Second, "raft logs at rest", func() bool {
		idx := lastIndexes(c)
		var v uint64
		for _, x := range idx {
			if v != 0 && x != v {
				stable = 0
				return false
			}
			v = x
		}
		if v == last {
			stable++
		} else {
			last, stable = v, 0
		}
		return stable >= rounds
	})
	return last
}

// TestRefusalsAndReplaysCostNoEntry: on 1 and 3 replicas, and on 3 through
// the leader and through a follower (which forwards to the leader), each
// request the leader can decide from its state is answered with the right
// code and leaves every replica's raft log as it was; an allowed action
// still costs exactly one entry.
func TestRefusalsAndReplaysCostNoEntry(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: run without -short")
	}
	for _, replicas := range []int{1, 3} {
		t.Run(fmt.Sprintf("replicas=%d", replicas), func(t *testing.T) {
			c := testcluster.New(t, replicas)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			leader := c.Leader()
			via := []int{leader}
			if replicas > 1 {
				via = append(via, (leader+1)%replicas)
			}
			for _, from := range via {
				name := "leader"
				if from != leader {
					name = "follower"
				}
				t.Run("via "+name, func(t *testing.T) {
					cl := c.Cases(from)
					rid := func(s string) string { return fmt.Sprintf("%s-%d-%s", name, replicas, s) }
					before := quietFor(t, c, 25)
					rep := report(rid("report"), "暴露垃圾 "+name)
					first, err := cl.ReportCase(ctx, rep)
					if err != nil {
						t.Fatal(err)
					}
					id := first.Case.Id
					if got := quietIndexes(t, c); got != before+1 {
						t.Fatalf("a report moved the last index from %d to %d, want +1", before, got)
					}
					act := func(s string, a pb.Action, role pb.Role, mod func(*pb.ActRequest)) *pb.ActRequest {
						r := &pb.ActRequest{CaseId: id, RequestId: rid(s), Action: a, Actor: "staff-1", Role: role, Note: "n"}
						if mod != nil {
							mod(r)
						}
						return r
					}
					unknown := id[:len(id)-6] + "999999"
					for _, tc := range []struct {
						name string
						call func() (*pb.CaseResponse, error)
						want codes.Code
					}{
						{"unknown case", func() (*pb.CaseResponse, error) {
							return cl.Act(ctx, act("unknown", pb.Action_ACTION_FILE, pb.Role_ROLE_SHIFT_LEADER, func(r *pb.ActRequest) { r.CaseId = unknown }))
						}, codes.NotFound},
						{"wrong role", func() (*pb.CaseResponse, error) {
							return cl.Act(ctx, act("role", pb.Action_ACTION_FILE, pb.Role_ROLE_CITIZEN, nil))
						}, codes.PermissionDenied},
						{"not allowed from the state", func() (*pb.CaseResponse, error) {
							return cl.Act(ctx, act("state", pb.Action_ACTION_CLOSE, pb.Role_ROLE_SHIFT_LEADER, nil))
						}, codes.FailedPrecondition},
						{"expected version", func() (*pb.CaseResponse, error) {
							return cl.Act(ctx, act("version", pb.Action_ACTION_FILE, pb.Role_ROLE_SHIFT_LEADER, func(r *pb.ActRequest) { r.ExpectedVersion = 7 }))
						}, codes.Aborted},
						{"report by a role that may not", func() (*pb.CaseResponse, error) {
							r := report(rid("bad-role"), "x")
							r.Role = pb.Role_ROLE_HANDLING_UNIT
							return cl.ReportCase(ctx, r)
						}, codes.PermissionDenied},
						{"request id reused with another body", func() (*pb.CaseResponse, error) {
							return cl.ReportCase(ctx, report(rep.RequestId, "another body"))
						}, codes.AlreadyExists},
					} {
						at := quietIndexes(t, c)
						resp, err := tc.call()
						if status.Code(err) != tc.want {
							t.Fatalf("%s: got %v (%v), want %s", tc.name, status.Code(err), err, tc.want)
						}
						if resp != nil {
							t.Fatalf("%s: refused with a response %v", tc.name, resp)
						}
						if got := lastIndexes(c); !allAt(got, at) {
							t.Fatalf("%s: last indexes %v, want all at %d", tc.name, got, at)
						}
					}

					// A retried report is replayed from the store.
					at := quietIndexes(t, c)
					again, err := cl.ReportCase(ctx, rep)
					if err != nil || !again.Replayed || again.Case.GetId() != id {
						t.Fatalf("report retry: %v, %v", again, err)
					}
					if got := lastIndexes(c); !allAt(got, at) {
						t.Fatalf("report replay: last indexes %v, want all at %d", got, at)
					}

					// An allowed action costs one entry; its retry none.
					file := act("file", pb.Action_ACTION_FILE, pb.Role_ROLE_SHIFT_LEADER, func(r *pb.ActRequest) { r.ExpectedVersion = 1 })
					filed, err := cl.Act(ctx, file)
					if err != nil || filed.Replayed || filed.Case.GetState() != pb.State_STATE_FILED {
						t.Fatalf("file: %v, %v", filed, err)
					}
					if got := quietIndexes(t, c); got != at+1 {
						t.Fatalf("an allowed action moved the last index from %d to %d, want +1", at, got)
					}
					at++
					again, err = cl.Act(ctx, file)
					if err != nil || !again.Replayed || again.Case.GetVersion() != filed.Case.GetVersion() {
						t.Fatalf("file retry: %v, %v", again, err)
					}
					if got := lastIndexes(c); !allAt(got, at) {
						t.Fatalf("action replay: last indexes %v, want all at %d", got, at)
					}
				})
			}
		})
	}
}

func allAt(idx map[string]uint64, want uint64) bool {
	for _, v := range idx {
		if v != want {
			return false
		}
	}
	return true
}

// TestPrecheckAfterLeaderChange: a new leader answers replays from its
// store at once (what it applied is committed); refusals go through the
// log until it has applied an entry of its own term (before that its store
// may lack writes the old leader acknowledged). The barrier it issues on
// taking the lead (tiers/node/settle.go) is that entry: once it is applied,
// with no write in between, refusals cost no entry again.
func TestPrecheckAfterLeaderChange(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: run without -short")
	}
	c := testcluster.New(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep := report("change-1", "before the change")
	first, err := c.Cases(c.Leader()).ReportCase(ctx, rep)
	if err != nil {
		t.Fatal(err)
	}
	quietFor(t, c, 25)
	old := c.Leader()
	if _, err := c.ClusterAdmin(old).TransferLeadership(ctx, &pb.TransferLeadershipRequest{}); err != nil {
		t.Fatalf("transfer: %v", err)
	}
	testcluster.WaitFor(t, 10*time.Second, "new leader", func() bool { l := c.Leader(); return l >= 0 && l != old })
	leader := c.Leader()
	cl := c.Cases(leader)
	testcluster.WaitFor(t, 10*time.Second, "the new leader's term settled", func() bool {
		return c.Members[leader].R.Node.Settled()
	})

	at := quietIndexes(t, c)
	again, err := cl.ReportCase(ctx, rep)
	if err != nil || !again.Replayed || again.Case.GetId() != first.Case.Id {
		t.Fatalf("replay at the new leader: %v, %v", again, err)
	}
	if got := lastIndexes(c); !allAt(got, at) {
		t.Fatalf("replay at the new leader: last indexes %v, want all at %d", got, at)
	}
	closeReq := func(rid string) *pb.ActRequest {
		return &pb.ActRequest{CaseId: first.Case.Id, RequestId: rid, Action: pb.Action_ACTION_CLOSE, Actor: "s", Role: pb.Role_ROLE_SHIFT_LEADER}
	}
	if _, err := cl.Act(ctx, closeReq("change-2")); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("first refusal at the new leader: %v, want FailedPrecondition", err)
	}
	if got := lastIndexes(c); !allAt(got, at) {
		t.Fatalf("first refusal of the settled term: last indexes %v, want all at %d", got, at)
	}
	if _, err := cl.Act(ctx, closeReq("change-3")); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("second refusal at the new leader: %v, want FailedPrecondition", err)
	}
	if got := lastIndexes(c); !allAt(got, at) {
		t.Fatalf("second refusal: last indexes %v, want all at %d", got, at)
	}
}
