package api

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"

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

// TestPeersAnnounceStaticWindows: a replica's connections to its fellows,
// to their client API and to their internal listener, announce the static
// windows (StreamWindow, ConnWindow) in their first frames, so that gRPC
// takes no bandwidth sample (a PING) on a forwarded call's answer. A raw
// listener reads what the connection sends first.
func TestPeersAnnounceStaticWindows(t *testing.T) {
	p := NewPeers()
	defer p.Close()
	for _, tc := range []struct {
		name string
		dial func(string) (*grpc.ClientConn, error)
	}{{"client API", p.conn}, {"internal", p.internalConn}} {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		cc, err := tc.dial(lis.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		cc.Connect()
		_ = lis.(*net.TCPListener).SetDeadline(time.Now().Add(30 * time.Second))
		c, err := lis.Accept()
		if err != nil {
			t.Fatalf("%s: the connection never came: %v", tc.name, err)
		}
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		preface := make([]byte, len(http2.ClientPreface))
		if _, err := io.ReadFull(c, preface); err != nil || string(preface) != http2.ClientPreface {
			t.Fatalf("%s: preface %q: %v", tc.name, preface, err)
		}
		// gRPC's client sends its SETTINGS, then the connection's
		// WINDOW_UPDATE when its window is above HTTP/2's 65,535 bytes.
		fr := http2.NewFramer(c, c)
		f, err := fr.ReadFrame()
		sf, ok := f.(*http2.SettingsFrame)
		if err != nil || !ok {
			t.Fatalf("%s: first frame %T: %v", tc.name, f, err)
		}
		streamWindow, _ := sf.Value(http2.SettingInitialWindowSize) // 0: not announced
		if streamWindow != StreamWindow {
			t.Fatalf("%s: window a call %d (0: not announced), want %d", tc.name, streamWindow, StreamWindow)
		}
		f, err = fr.ReadFrame()
		wu, ok := f.(*http2.WindowUpdateFrame)
		if err != nil || !ok || wu.StreamID != 0 {
			t.Fatalf("%s: second frame %T: %v", tc.name, f, err)
		}
		if connWindow := 65535 + int64(wu.Increment); connWindow != ConnWindow {
			t.Errorf("%s: window of the connection %d, want %d", tc.name, connWindow, ConnWindow)
		}
		c.Close()
		lis.Close()
	}
}
