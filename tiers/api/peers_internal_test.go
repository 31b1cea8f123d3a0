package api

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cityhub/cityhub/tiers/node"
)

// leaderOnly is a replica that answers Leader only: the leader's id, and
// its API address once Leader has been asked addrAfter times (never when
// negative).
type leaderOnly struct {
	Replica
	id        string
	addrAfter int32
	calls     atomic.Int32
}

func (r *leaderOnly) Leader() (string, string) {
	n := r.calls.Add(1)
	if r.addrAfter >= 0 && n > r.addrAfter {
		return r.id, "127.0.0.1:1"
	}
	return r.id, ""
}

// TestLeaderConnWaitsForTheLeadersAddress: a replica that has just joined
// knows its leader by id before it has applied the leader's registration;
// a call it forwards waits for the address rather than failing at once
// (TestJoinTransferRemove transferred leadership through such a replica
// and was refused "no raft leader"), and still fails when it never comes
// or no leader is known.
func TestLeaderConnWaitsForTheLeadersAddress(t *testing.T) {
	p := NewPeers()
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	late := &leaderOnly{id: "n1", addrAfter: 3}
	if c, err := p.leaderConn(ctx, late); err != nil || c == nil {
		t.Fatalf("address known after 3 asks: %v, %v", c, err)
	}
	if n := late.calls.Load(); n != 4 {
		t.Fatalf("Leader asked %d times, want 4", n)
	}

	never := &leaderOnly{id: "n1", addrAfter: -1}
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelShort()
	if _, err := p.leaderConn(short, never); !errors.Is(err, node.ErrNoLeader) {
		t.Fatalf("address never known: %v, want ErrNoLeader", err)
	}
	if n := never.calls.Load(); n < 2 {
		t.Fatalf("Leader asked %d times before giving up, want it asked again", n)
	}

	none := &leaderOnly{id: "", addrAfter: -1}
	if _, err := p.leaderConn(ctx, none); !errors.Is(err, node.ErrNoLeader) {
		t.Fatalf("no leader: %v, want ErrNoLeader", err)
	}
	if n := none.calls.Load(); n != 1 {
		t.Fatalf("no leader: Leader asked %d times, want 1 (nothing to wait for)", n)
	}
}
