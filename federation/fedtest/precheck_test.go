package fedtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/node"
)

// TestHolderRefusalCostsNoEntry: an action at a node that handed the case
// down is refused naming the holder, and the refusal adds nothing to that
// node's raft log (the leader decides it before proposing); so does a
// dispatch to a unit hosted above the node.
func TestHolderRefusalCostsNoEntry(t *testing.T) {
	f := New(t, []NodeSpec{
		{Name: "city", Tier: "city", Jurisdiction: "320500", Units: []string{"city-water"}},
		{Name: "d-320505", Tier: "district", Jurisdiction: "320505", Parent: "city", Units: []string{"320505-sanitation"}},
	}, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	city := f.Client("city")
	c := report(ctx, t, city, "p-1", "320505001001007")
	act(ctx, t, city, c.Id, "p-2", pb.Action_ACTION_FILE, pb.Role_ROLE_SHIFT_LEADER, nil)
	d := act(ctx, t, city, c.Id, "p-3", pb.Action_ACTION_DISPATCH, pb.Role_ROLE_DISPATCHER, func(r *pb.ActRequest) { r.Unit = "320505-sanitation" })
	if d.Holder != "d-320505" {
		t.Fatalf("after dispatch: holder %q, want d-320505", d.Holder)
	}
	dist := f.Client("d-320505")
	other := report(ctx, t, dist, "p-4", "320505001001008")
	act(ctx, t, dist, other.Id, "p-5", pb.Action_ACTION_FILE, pb.Role_ROLE_SHIFT_LEADER, nil)
	f.WaitSettled(30 * time.Second)

	lastIndex := func(node string) uint64 {
		g := f.Groups[node]
		return g.Replica(g.WaitLeader(10 * time.Second)).Node.Raft().LastIndex()
	}
	for _, tc := range []struct {
		name, node string
		req        *pb.ActRequest
		want       codes.Code
		mention    string
	}{
		{"accept at the city", "city", &pb.ActRequest{CaseId: c.Id, RequestId: "p-x", Action: pb.Action_ACTION_ACCEPT, Actor: "u", Role: pb.Role_ROLE_HANDLING_UNIT}, codes.FailedPrecondition, "d-320505"},
		{"dispatch above", "d-320505", &pb.ActRequest{CaseId: other.Id, RequestId: "p-y", Action: pb.Action_ACTION_DISPATCH, Actor: "u", Role: pb.Role_ROLE_DISPATCHER, Unit: "city-water"}, codes.InvalidArgument, "city-water"},
	} {
		// The node's own background work (a federation mark, a link's
		// record) may add an entry while the call runs; a refusal that
		// wrote one would move the index on every attempt, so one
		// attempt with the index still is the proof.
		var moved []string
		for attempt := 0; attempt < 3; attempt++ {
			before := lastIndex(tc.node)
			g := f.Groups[tc.node]
			_, err := g.Cases(g.Leader()).Act(ctx, tc.req)
			if status.Code(err) != tc.want || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("%s: %v, want %s naming %s", tc.name, err, tc.want, tc.mention)
			}
			after := lastIndex(tc.node)
			if after == before {
				moved = nil
				break
			}
			moved = append(moved, fmt.Sprintf("%d to %d (%s)", before, after, entriesOf(g.Replica(g.Leader()).Node, before+1, after)))
		}
		if moved != nil {
			t.Fatalf("%s: %s's last index moved on every attempt: %s", tc.name, tc.node, strings.Join(moved, ", "))
		}
	}
}

// entriesOf names what entries from..to of n's raft log hold (a failure's
// message: which command moved the log).
func entriesOf(n *node.Node, from, to uint64) string {
	var out []string
	for i := from; i <= to; i++ {
		l, err := n.LogEntry(i)
		if err != nil {
			out = append(out, err.Error())
			continue
		}
		if l.Type != raft.LogCommand {
			out = append(out, fmt.Sprintf("%d: %v", i, l.Type))
			continue
		}
		var cmd pb.Command
		if err := proto.Unmarshal(l.Data, &cmd); err != nil {
			out = append(out, fmt.Sprintf("%d: undecodable: %v", i, err))
			continue
		}
		out = append(out, fmt.Sprintf("%d: %T by %q, request %q", i, cmd.Body, cmd.StampedBy, cmd.RequestId))
	}
	return strings.Join(out, "; ")
}
