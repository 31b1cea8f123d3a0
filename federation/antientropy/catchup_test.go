package antientropy

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/store"
)

// A street restored from a backup catches up with its three neighbours on
// its own: the case it held and lost comes back from its parent's mirror,
// its id counter moves past it, and writes resume only once every link
// has completed.
func TestRestoredNodeCatchesUpWithEveryNeighbour(t *testing.T) {
	topo := testTopo(t)
	s1 := newMemLocal(t, topo, "s-1", "")
	ends := map[string]*memLocal{"d-1": newMemLocal(t, topo, "d-1", ""), "c-1": newMemLocal(t, topo, "c-1", ""), "c-2": newMemLocal(t, topo, "c-2", "")}
	var err error
	lost := testCase(42, "320501001", "s-1", 1, 3, "路灯不亮")
	ends["d-1"].put(t, lost)
	if err := s1.st.Update(func(tx *store.Tx) error {
		return tx.PutRestoreState(&pb.RestoreState{Index: 1, Term: 1, CatchingUp: true})
	}); err != nil {
		t.Fatal(err)
	}
	// The restored group's state machine starts on that store.
	if s1.f, err = fsm.New(s1.st, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	// c-2 does not answer at first: the catch-up waits for it.
	down := make(chan struct{})
	var r *Runner
	r, err = New(Options{
		Self: "s-1", Topology: topo, Local: s1, RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Peer: func(name string) Peer {
			h := NewHandler(name, topo, ends[name])
			if name == "c-2" {
				return &gatedPeer{Peer: h, open: down}
			}
			return h
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	lead(t, r)
	waitFor(t, "the lost case back and two neighbours caught up", func() bool {
		rs, _ := s1.st.RestoreState()
		return s1.get(t, lost.Id) != nil && len(rs.CaughtUp) == 2
	})
	if rs, _ := s1.st.RestoreState(); !rs.CatchingUp {
		t.Fatalf("caught up without c-2: %v", rs)
	}
	close(down)
	waitFor(t, "caught up with every neighbour", func() bool {
		rs, _ := s1.st.RestoreState()
		return !rs.CatchingUp
	})
	var next uint64
	if err := s1.st.Update(func(tx *store.Tx) (err error) {
		next, err = tx.NextSeq("320501001", "20261122")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if next != 43 {
		t.Errorf("next sequence number %d, want 43 (past the id that came back)", next)
	}
}

// A kicked neighbour is compared at once, without waiting for a period.
func TestKickRunsAntiEntropyWithThatNeighbour(t *testing.T) {
	topo := testTopo(t)
	s1 := newMemLocal(t, topo, "s-1", "")
	d1 := newMemLocal(t, topo, "d-1", "")
	mirror := testCase(7, "320501", "s-1", 2, 4, "井盖缺失")
	s1.put(t, mirror)
	r, err := New(Options{
		Self: "s-1", Topology: topo, Local: s1, RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond, Interval: time.Hour,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Peer:   func(name string) Peer { return NewHandler(name, topo, map[string]*memLocal{"d-1": d1}[name]) },
	})
	if err != nil {
		t.Fatal(err)
	}
	lead(t, r)
	r.Kick("d-1")
	waitFor(t, "the parent repaired from the kicked run", func() bool { return d1.get(t, mirror.Id) != nil })
}

type gatedPeer struct {
	Peer
	open chan struct{}
}

func (g *gatedPeer) Digest(ctx context.Context, req *pb.DigestRequest) (*pb.DigestResponse, error) {
	select {
	case <-g.open:
		return g.Peer.Digest(ctx, req)
	default:
		return nil, context.DeadlineExceeded
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
