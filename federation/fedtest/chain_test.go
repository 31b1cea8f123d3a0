package fedtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// chain is the smallest federation with every tier: a city, one district,
// one street and one community, each hosting units.
func chain() []NodeSpec {
	return []NodeSpec{
		{Name: "city", Tier: "city", Jurisdiction: "320500", Units: []string{"city-water", "city-parks"}},
		{Name: "d-320505", Tier: "district", Jurisdiction: "320505", Parent: "city", Units: []string{"320505-sanitation", "320505-roads"}},
		{Name: "s-320505001", Tier: "street", Jurisdiction: "320505001", Parent: "d-320505", Units: []string{"320505001-squad"}},
		{Name: "c-320505001001", Tier: "community", Jurisdiction: "320505001001", Parent: "s-320505001", Units: []string{"320505001001-grid"}},
	}
}

// chainOrder lists the chain's nodes from the city down.
var chainOrder = []string{"city", "d-320505", "s-320505001", "c-320505001001"}

func act(ctx context.Context, t testing.TB, cl *Client, id, rid string, a pb.Action, role pb.Role, mod func(*pb.ActRequest)) *pb.Case {
	t.Helper()
	var out *pb.Case
	err := cl.Do(ctx, func(ctx context.Context, c pb.CaseServiceClient) error {
		req := &pb.ActRequest{CaseId: id, RequestId: rid, Action: a, Actor: "actor-" + role.String(), Role: role, Note: "n"}
		if mod != nil {
			mod(req)
		}
		resp, err := c.Act(ctx, req)
		if err == nil {
			out = resp.Case
		}
		return err
	})
	if err != nil {
		t.Fatalf("%s %s: %v", a, id, err)
	}
	return out
}

func report(ctx context.Context, t testing.TB, cl *Client, rid, grid string) *pb.Case {
	t.Helper()
	var out *pb.Case
	err := cl.Do(ctx, func(ctx context.Context, c pb.CaseServiceClient) error {
		resp, err := c.ReportCase(ctx, &pb.ReportCaseRequest{
			RequestId: rid, Actor: "insp-1", Role: pb.Role_ROLE_INSPECTOR, Source: pb.Source_SOURCE_INSPECTOR,
			Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", GridCode: grid, Description: "暴露垃圾",
		})
		if err == nil {
			out = resp.Case
		}
		return err
	})
	if err != nil {
		t.Fatalf("report %s: %v", rid, err)
	}
	return out
}

// stored reads a case from the store of node's leader (nil when absent).
func (f *Federation) stored(t testing.TB, node, id string) *pb.Case {
	t.Helper()
	g := f.Groups[node]
	l := g.WaitLeader(10 * time.Second)
	r := g.Replica(l)
	if r == nil {
		return nil
	}
	c, err := r.Node.Store().GetCase(id)
	if err != nil {
		return nil
	}
	return c
}

func TestHandOffDownAndStatusUp(t *testing.T) {
	f := New(t, chain(), 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	city := f.Client("city")
	c := report(ctx, t, city, "r-1", "320505001001007")
	if c.Holder != "city" || c.HolderEpoch != 1 {
		t.Fatalf("new case: holder %q epoch %d, want city 1", c.Holder, c.HolderEpoch)
	}
	act(ctx, t, city, c.Id, "r-2", pb.Action_ACTION_FILE, pb.Role_ROLE_SHIFT_LEADER, nil)
	d := act(ctx, t, city, c.Id, "r-3", pb.Action_ACTION_DISPATCH, pb.Role_ROLE_DISPATCHER, func(r *pb.ActRequest) {
		r.Unit, r.TimeLimitMinutes = "320505001001-grid", 240
	})
	if d.Holder != "c-320505001001" || d.HolderEpoch != 2 || d.OwnerTier != pb.Tier_TIER_COMMUNITY {
		t.Fatalf("after dispatch: holder %q epoch %d owner tier %s", d.Holder, d.HolderEpoch, d.OwnerTier)
	}
	// The city no longer holds it: an action there is refused, naming the holder.
	_, err := f.Groups["city"].Cases(0).Act(ctx, &pb.ActRequest{CaseId: c.Id, RequestId: "r-x", Action: pb.Action_ACTION_ACCEPT, Actor: "u", Role: pb.Role_ROLE_HANDLING_UNIT})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "c-320505001001") {
		t.Fatalf("accept at the city: %v, want FailedPrecondition naming the holder", err)
	}
	comm := f.Client("c-320505001001")
	waitFor(t, 20*time.Second, "the community holds the case", func() bool {
		got := f.stored(t, "c-320505001001", c.Id)
		return got != nil && got.Holder == "c-320505001001"
	})
	act(ctx, t, comm, c.Id, "r-4", pb.Action_ACTION_ACCEPT, pb.Role_ROLE_HANDLING_UNIT, nil)
	act(ctx, t, comm, c.Id, "r-5", pb.Action_ACTION_HANDLE, pb.Role_ROLE_HANDLING_UNIT, nil)
	act(ctx, t, comm, c.Id, "r-6", pb.Action_ACTION_CHECK_PASS, pb.Role_ROLE_INSPECTOR, nil)
	final := act(ctx, t, comm, c.Id, "r-7", pb.Action_ACTION_CLOSE, pb.Role_ROLE_SHIFT_LEADER, nil)
	final.AllowedActions, final.WorkingTimeLeft = nil, nil
	f.WaitSettled(30 * time.Second)
	for _, n := range chainOrder {
		got := f.stored(t, n, c.Id)
		if !proto.Equal(got, final) {
			t.Fatalf("%s has\n%v\nwant\n%v", n, got, final)
		}
	}
	if final.State != pb.State_STATE_CLOSED || final.Version != 7 || len(final.History) != 7 {
		t.Fatalf("final: %s version %d, %d history entries", final.State, final.Version, len(final.History))
	}
}

func TestTransferUp(t *testing.T) {
	f := New(t, chain(), 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Reported and filed at the community, which finds it is not its own.
	comm := f.Client("c-320505001001")
	c := report(ctx, t, comm, "t-1", "320505001001003")
	act(ctx, t, comm, c.Id, "t-2", pb.Action_ACTION_FILE, pb.Role_ROLE_SHIFT_LEADER, nil)
	up := act(ctx, t, comm, c.Id, "t-3", pb.Action_ACTION_TRANSFER_UP, pb.Role_ROLE_SHIFT_LEADER, func(r *pb.ActRequest) { r.Note = "city trunk road: 市属" })
	if up.Holder != "s-320505001" || up.State != pb.State_STATE_FILED {
		t.Fatalf("after transfer up: holder %q state %s", up.Holder, up.State)
	}
	street := f.Client("s-320505001")
	waitFor(t, 20*time.Second, "the street holds it", func() bool {
		got := f.stored(t, "s-320505001", c.Id)
		return got != nil && got.Holder == "s-320505001"
	})
	// Up again to the district, which dispatches it to one of its units.
	act(ctx, t, street, c.Id, "t-4", pb.Action_ACTION_TRANSFER_UP, pb.Role_ROLE_DISPATCHER, func(r *pb.ActRequest) { r.Note = "district roads" })
	dist := f.Client("d-320505")
	waitFor(t, 20*time.Second, "the district holds it", func() bool {
		got := f.stored(t, "d-320505", c.Id)
		return got != nil && got.Holder == "d-320505"
	})
	// A dispatch to a unit above this node is refused: transfer up instead.
	err := dist.Do(ctx, func(ctx context.Context, cl pb.CaseServiceClient) error {
		_, err := cl.Act(ctx, &pb.ActRequest{CaseId: c.Id, RequestId: "t-bad", Action: pb.Action_ACTION_DISPATCH, Actor: "d", Role: pb.Role_ROLE_DISPATCHER, Unit: "city-water", TimeLimitMinutes: 60})
		return err
	})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "transfer the case up") {
		t.Fatalf("dispatch to a city unit from the district: %v", err)
	}
	final := act(ctx, t, dist, c.Id, "t-5", pb.Action_ACTION_DISPATCH, pb.Role_ROLE_DISPATCHER, func(r *pb.ActRequest) { r.Unit, r.TimeLimitMinutes = "320505-roads", 60 })
	if final.Holder != "d-320505" || final.HolderEpoch != 3 {
		t.Fatalf("dispatch to the district's own unit: holder %q epoch %d", final.Holder, final.HolderEpoch)
	}
	final.AllowedActions, final.WorkingTimeLeft = nil, nil
	f.WaitSettled(30 * time.Second)
	// The district's ancestor and the reporting community see the final
	// version, and so does the street, on the way to the community.
	for _, n := range chainOrder {
		if got := f.stored(t, n, c.Id); !proto.Equal(got, final) {
			t.Fatalf("%s has\n%v\nwant\n%v", n, got, final)
		}
	}
	// The city, at the root, cannot transfer up.
	act(ctx, t, dist, c.Id, "t-6", pb.Action_ACTION_TRANSFER_UP, pb.Role_ROLE_DISPATCHER, func(r *pb.ActRequest) { r.Note = "city-owned after all" })
	waitFor(t, 20*time.Second, "the city holds it", func() bool {
		got := f.stored(t, "city", c.Id)
		return got != nil && got.Holder == "city"
	})
	err = f.Client("city").Do(ctx, func(ctx context.Context, cl pb.CaseServiceClient) error {
		_, err := cl.Act(ctx, &pb.ActRequest{CaseId: c.Id, RequestId: "t-7", Action: pb.Action_ACTION_TRANSFER_UP, Actor: "c", Role: pb.Role_ROLE_DISPATCHER, Note: "x"})
		return err
	})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("transfer up at the city: %v, want FailedPrecondition", err)
	}
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
