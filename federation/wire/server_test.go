package wire

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/client"
	"github.com/cityhub/cityhub/tiers/diskspace"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/store"
)

// fakeLocal records what the server proposes instead of running raft.
// A trim is applied to the store.
type fakeLocal struct {
	leader   bool
	st       *store.Store
	mu       sync.Mutex
	proposed []*pb.Command
	hw       uint64
	err      error // when set, ApplyLocal refuses with it (nothing proposed)
}

func (f *fakeLocal) IsLeader() bool { return f.leader }
func (f *fakeLocal) Now() time.Time { return time.Now() }
func (f *fakeLocal) ApplyLocal(_ context.Context, cmd *pb.Command) (*fsm.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	f.proposed = append(f.proposed, cmd)
	if t := cmd.GetTrimOutbox(); t != nil {
		return &fsm.Result{}, f.st.Update(func(tx *store.Tx) error { _, err := tx.Trim(t.Link, t.Upto); return err })
	}
	es := cmd.GetDeliver().GetEntries()
	f.hw = es[len(es)-1].Seq
	return &fsm.Result{HighWater: f.hw}, nil
}
func (f *fakeLocal) Applied() <-chan struct{} { return make(chan struct{}) }
func (f *fakeLocal) Store() *store.Store      { return f.st }

func testServer(t *testing.T, identity PeerIdentity) (*Server, *fakeLocal) {
	t.Helper()
	topo, err := topology.New([]topology.Node{
		{Name: "city", Tier: topology.City, Jurisdiction: "320500", Replicas: []string{"127.0.0.1:7301"}},
		{Name: "d1", Tier: topology.District, Jurisdiction: "320505", Parent: "city", Replicas: []string{"127.0.0.1:7302"}},
		{Name: "s1", Tier: topology.Street, Jurisdiction: "320505001", Parent: "d1", Replicas: []string{"127.0.0.1:7303"}},
		{Name: "d2", Tier: topology.District, Jurisdiction: "320506", Parent: "city", Replicas: []string{"127.0.0.1:7304"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Options{InMemory: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l := &fakeLocal{leader: true, st: st}
	return NewServer("d1", topo, l, identity, slog.New(slog.NewTextHandler(io.Discard, nil))), l
}

func entries(seqs ...uint64) []*pb.LinkEntry {
	var out []*pb.LinkEntry
	for _, s := range seqs {
		out = append(out, &pb.LinkEntry{Seq: s, Case: &pb.Case{Id: "320500-20261122-000001", Version: s}})
	}
	return out
}

func TestDeliverRefusesBadCallsAndProposesNothing(t *testing.T) {
	claims := func(name string) PeerIdentity {
		return func(context.Context) (string, error) { return name, nil }
	}
	for _, tc := range []struct {
		name     string
		identity PeerIdentity
		leader   bool
		req      *pb.DeliverRequest
		want     codes.Code
	}{
		{"not a neighbour (a sibling district)", nil, true, &pb.DeliverRequest{From: "d2", To: "d1", Entries: entries(1)}, codes.PermissionDenied},
		{"not a neighbour (unknown)", nil, true, &pb.DeliverRequest{From: "x", To: "d1", Entries: entries(1)}, codes.PermissionDenied},
		{"certificate names another node", claims("s1"), true, &pb.DeliverRequest{From: "city", To: "d1", Entries: entries(1)}, codes.PermissionDenied},
		{"misrouted", nil, true, &pb.DeliverRequest{From: "city", To: "s1", Entries: entries(1)}, codes.InvalidArgument},
		{"sequence not dense", nil, true, &pb.DeliverRequest{From: "city", To: "d1", Entries: entries(1, 3)}, codes.InvalidArgument},
		{"zero sequence", nil, true, &pb.DeliverRequest{From: "city", To: "d1", Entries: entries(0)}, codes.InvalidArgument},
		{"entry without a case", nil, true, &pb.DeliverRequest{From: "city", To: "d1", Entries: []*pb.LinkEntry{{Seq: 1}}}, codes.InvalidArgument},
		{"follower", nil, false, &pb.DeliverRequest{From: "city", To: "d1", Entries: entries(1)}, codes.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, l := testServer(t, tc.identity)
			l.leader = tc.leader
			_, err := s.Deliver(context.Background(), tc.req)
			if status.Code(err) != tc.want {
				t.Fatalf("Deliver: %v, want %s", err, tc.want)
			}
			if len(l.proposed) != 0 {
				t.Fatalf("a refused call proposed %d commands", len(l.proposed))
			}
		})
	}
}

func TestDeliverProposesOneBatchAndAnswersTheMark(t *testing.T) {
	s, l := testServer(t, func(context.Context) (string, error) { return "s1", nil })
	resp, err := s.Deliver(context.Background(), &pb.DeliverRequest{From: "s1", To: "d1", Entries: entries(4, 5, 6)})
	if err != nil || resp.HighWater != 6 {
		t.Fatalf("Deliver: %v %v", resp, err)
	}
	if len(l.proposed) != 1 || l.proposed[0].GetDeliver().GetFrom() != "s1" || len(l.proposed[0].GetDeliver().GetEntries()) != 3 {
		t.Fatalf("proposed %v", l.proposed)
	}
	// An empty batch asks for the mark and proposes nothing.
	resp, err = s.Deliver(context.Background(), &pb.DeliverRequest{From: "s1", To: "d1"})
	if err != nil || resp.HighWater != 0 || len(l.proposed) != 1 {
		t.Fatalf("empty batch: %v %v, %d proposals", resp, err, len(l.proposed))
	}
}

// The sender's incarnation, floor and advance reach the log only when they
// can move the mark; any other delivery stays a version 1 entry.
func TestDeliverPassesMarkMovesOnlyWhenTheyMatter(t *testing.T) {
	s, l := testServer(t, nil)
	if err := l.st.Update(func(tx *store.Tx) error { return tx.SetInLink("city", 5, 77) }); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		req  *pb.DeliverRequest
		want *pb.DeliverEntries
	}{
		{"same incarnation", &pb.DeliverRequest{Incarnation: 77, Floor: 2}, &pb.DeliverEntries{}},
		{"never restored", &pb.DeliverRequest{Floor: 2}, &pb.DeliverEntries{}},
		{"new incarnation", &pb.DeliverRequest{Incarnation: 99, Floor: 2}, &pb.DeliverEntries{Incarnation: 99, Floor: 2}},
		{"advance below the mark", &pb.DeliverRequest{Incarnation: 77, Floor: 4, Advance: true}, &pb.DeliverEntries{}},
		{"advance above the mark", &pb.DeliverRequest{Incarnation: 77, Floor: 8, Advance: true}, &pb.DeliverEntries{Incarnation: 77, Floor: 8, Advance: true}},
	} {
		tc.req.From, tc.req.To, tc.req.Entries = "city", "d1", entries(9)
		l.proposed = nil
		if _, err := s.Deliver(context.Background(), tc.req); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		d := l.proposed[0].GetDeliver()
		if d.Incarnation != tc.want.Incarnation || d.Floor != tc.want.Floor || d.Advance != tc.want.Advance {
			t.Errorf("%s: proposed incarnation %d floor %d advance %v, want %d %d %v", tc.name, d.Incarnation, d.Floor, d.Advance,
				tc.want.Incarnation, tc.want.Floor, tc.want.Advance)
		}
	}
}

// TestDeliverBelowTheDiskReserve: a leader below its disk reserve answers
// a delivery with a retryable Unavailable that says why (DISK_SPACE_LOW,
// a retry delay), and the sending side's peer does not pass it over to
// another replica as it would "not the leader".
func TestDeliverBelowTheDiskReserve(t *testing.T) {
	s, l := testServer(t, nil)
	l.err = fmt.Errorf("propose: %w", &diskspace.LowError{Dir: "/data/d1", Free: 1 << 20, Reserve: 512 << 20})
	_, err := s.Deliver(context.Background(), &pb.DeliverRequest{From: "city", To: "d1", Entries: entries(1)})
	if status.Code(err) != codes.Unavailable || !diskspace.IsRefusal(err) || !strings.Contains(err.Error(), "below the reserve") {
		t.Fatalf("Deliver below the reserve: %v", err)
	}
	if o := client.Classify(err); o != client.DiskLow {
		t.Fatalf("the refusal's outcome for a caller: %s, want %s (back off, never passed over to another replica)", o, client.DiskLow)
	}
	if o := client.Classify(status.Error(codes.Unavailable, "not the leader")); o != client.RetryElsewhere {
		t.Fatalf("not the leader: %s, want %s", o, client.RetryElsewhere)
	}
}
