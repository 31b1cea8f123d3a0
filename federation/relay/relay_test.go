package relay

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

// lowMarkPeer answers every batch with a fixed high-water mark.
type lowMarkPeer struct {
	pb.UnimplementedFederationServiceServer
	mu       sync.Mutex
	calls    int
	first    uint64
	mark     uint64
	advances int // requests that asked to advance the mark
}

func (p *lowMarkPeer) Deliver(_ context.Context, req *pb.DeliverRequest) (*pb.DeliverResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	p.first = req.Entries[0].Seq
	if req.Advance {
		p.advances++
	}
	return &pb.DeliverResponse{HighWater: p.mark}, nil
}

// A neighbour that answers a mark below what it acknowledged before has lost
// state: the relay asks it to advance, and when it does not (a release
// before advance) says so in the link status instead of looping.
func TestRelayReportsAReceiverThatLostState(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peer := &lowMarkPeer{mark: 1}
	gs := grpc.NewServer()
	pb.RegisterFederationServiceServer(gs, peer)
	go gs.Serve(lis)
	defer gs.Stop()

	topo, err := topology.New([]topology.Node{
		{Name: "city", Tier: topology.City, Jurisdiction: "320500", Replicas: []string{lis.Addr().String()}},
		{Name: "d1", Tier: topology.District, Jurisdiction: "320505", Parent: "city", Replicas: []string{"127.0.0.1:1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	local := testLocal(t)
	// d1's outbox toward the city: 5 entries, 3 acknowledged and trimmed.
	if err := local.st.Update(func(tx *store.Tx) error {
		for i := 0; i < 5; i++ {
			if _, err := tx.Enqueue("city", &pb.LinkEntry{Case: &pb.Case{Id: "320505-20261122-000001"}}); err != nil {
				return err
			}
		}
		_, err := tx.Trim("city", 3)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	r, err := New(Options{Self: "d1", Topology: topo, Local: local, RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond,
		Dial: func(string) []grpc.DialOption {
			return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		}})
	if err != nil {
		t.Fatal(err)
	}
	lead(t, r)
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := r.Status()
		if err != nil {
			t.Fatal(err)
		}
		peer.mu.Lock()
		advanced := peer.advances > 1
		peer.mu.Unlock()
		// It asks the neighbour to move its mark forward; one that does
		// not (a release before advance) stalls the link loudly.
		if len(st) == 1 && strings.Contains(st[0].LastError, "below the acknowledged 3") && advanced {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("link status never reported the lost state: %v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	peer.mu.Lock()
	defer peer.mu.Unlock()
	if peer.first != 4 {
		t.Fatalf("the relay started at %d, want 4 (acked + 1)", peer.first)
	}
}

// markPeer applies batches like a receiver: entries at or below its mark
// are skipped, a gap stops the batch; an advance moves a mark below the
// floor up to it and reports the entries jumped.
type markPeer struct {
	pb.UnimplementedFederationServiceServer
	mu     sync.Mutex
	mark   uint64
	inc    uint64   // the sender's incarnation the mark counts
	seen   []uint64 // sequence numbers applied
	jumped uint64
}

func (p *markPeer) Deliver(_ context.Context, req *pb.DeliverRequest) (*pb.DeliverResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	resp := &pb.DeliverResponse{}
	if req.Incarnation != 0 && req.Incarnation != p.inc {
		p.mark, p.inc = req.Floor, req.Incarnation
	} else if req.Advance && req.Floor > p.mark {
		resp.Jumped = req.Floor - p.mark
		p.jumped += resp.Jumped
		p.mark = req.Floor
	}
	for _, e := range req.Entries {
		if e.Seq <= p.mark {
			continue
		}
		if e.Seq != p.mark+1 {
			break
		}
		p.mark = e.Seq
		p.seen = append(p.seen, e.Seq)
	}
	resp.HighWater = p.mark
	return resp, nil
}

func (p *markPeer) state() (uint64, []uint64, uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mark, append([]uint64(nil), p.seen...), p.jumped
}

// startRelay runs d1's relay toward a fake city serving peer, with n
// entries queued of which acked are acknowledged and trimmed.
func startRelay(t *testing.T, peer pb.FederationServiceServer, n int, acked uint64, onJumped func(string)) (*Relay, *fakeLocal) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	pb.RegisterFederationServiceServer(gs, peer)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	topo, err := topology.New([]topology.Node{
		{Name: "city", Tier: topology.City, Jurisdiction: "320500", Replicas: []string{lis.Addr().String()}},
		{Name: "d1", Tier: topology.District, Jurisdiction: "320505", Parent: "city", Replicas: []string{"127.0.0.1:1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	local := testLocal(t)
	enqueue(t, local, n)
	if acked > 0 {
		if err := local.st.Update(func(tx *store.Tx) error { _, err := tx.Trim("city", acked); return err }); err != nil {
			t.Fatal(err)
		}
	}
	r, err := New(Options{Self: "d1", Topology: topo, Local: local, RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond,
		OnJumped: onJumped,
		Dial: func(string) []grpc.DialOption {
			return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		}})
	if err != nil {
		t.Fatal(err)
	}
	lead(t, r)
	return r, local
}

func enqueue(t *testing.T, local *fakeLocal, n int) {
	t.Helper()
	if err := local.st.Update(func(tx *store.Tx) error {
		for i := 0; i < n; i++ {
			if _, err := tx.Enqueue("city", &pb.LinkEntry{Case: &pb.Case{Id: "320505-20261122-000001"}}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A neighbour restored from an old backup (its mark 1, below the 3 it
// acknowledged) is moved forward explicitly: the entries after the floor
// are delivered, the two it lost are reported to anti-entropy, and the
// link's error clears.
func TestRelayAdvancesAReceiverThatLostState(t *testing.T) {
	peer := &markPeer{mark: 1}
	var mu sync.Mutex
	var jumped []string
	r, _ := startRelay(t, peer, 5, 3, func(p string) { mu.Lock(); jumped = append(jumped, p); mu.Unlock() })
	waitUntil(t, "entries 4 and 5 delivered", func() bool { m, _, _ := peer.state(); return m == 5 })
	mark, seen, j := peer.state()
	if len(seen) != 2 || seen[0] != 4 || j != 2 {
		t.Fatalf("receiver: mark %d, applied %v, jumped %d; want 4 and 5 applied after jumping 2", mark, seen, j)
	}
	waitUntil(t, "anti-entropy asked for", func() bool { mu.Lock(); defer mu.Unlock(); return len(jumped) > 0 })
	mu.Lock()
	if len(jumped) != 1 || jumped[0] != "city" {
		t.Errorf("anti-entropy asked for %v, want [city]", jumped)
	}
	mu.Unlock()
	waitUntil(t, "the link's error to clear", func() bool {
		st, err := r.Status()
		return err == nil && st[0].LastError == "" && st[0].OutAcked == 5
	})
}

// A restored sender whose new incarnation is not fixed yet finds the
// receiver's mark beyond its own last entry (another life's numbering):
// its cursor stays on its own entries, and once its incarnation is fixed
// the entries it queues are sent with it (the receiver restarts at the
// floor) instead of being skipped as seen.
func TestRelayCursorStaysOnItsOwnEntries(t *testing.T) {
	peer := &markPeer{mark: 9}
	r, local := startRelay(t, peer, 3, 1, nil)
	waitUntil(t, "the first batch answered", func() bool {
		st, err := r.Status()
		peer.mu.Lock()
		defer peer.mu.Unlock()
		return err == nil && peer.mark == 9 && len(peer.seen) == 0 && st[0].OutAcked == 3
	})
	if err := local.st.Update(func(tx *store.Tx) error {
		if err := tx.PutRestoreState(&pb.RestoreState{Incarnation: 4242}); err != nil {
			return err
		}
		for i := 0; i < 2; i++ {
			if _, err := tx.Enqueue("city", &pb.LinkEntry{Case: &pb.Case{Id: "320505-20261122-000002"}}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "entries 4 and 5 applied", func() bool { m, seen, _ := peer.state(); return m == 5 && len(seen) == 2 && seen[0] == 4 })
	if _, _, j := peer.state(); j != 0 {
		t.Errorf("jumped %d entries, want none", j)
	}
}

// An idle link (everything acknowledged) still finds a neighbour that
// lost state: its probe sees the mark below the floor and advances it.
func TestRelayProbeAdvancesAnIdleLink(t *testing.T) {
	peer := &markPeer{mark: 1}
	jumped := make(chan string, 4)
	r, _ := startRelay(t, peer, 3, 3, func(p string) { jumped <- p })
	waitUntil(t, "the idle neighbour's mark moved to 3", func() bool { m, _, _ := peer.state(); return m == 3 })
	select {
	case p := <-jumped:
		if p != "city" {
			t.Fatalf("anti-entropy asked for %s", p)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("anti-entropy not asked for")
	}
	if _, seen, j := peer.state(); len(seen) != 0 || j != 2 {
		t.Fatalf("applied %v, jumped %d; want nothing applied, 2 jumped", seen, j)
	}
	waitUntil(t, "the link's error to clear", func() bool {
		st, err := r.Status()
		return err == nil && st[0].LastError == ""
	})
}

// A link whose neighbour could not be reached resumes when the
// neighbour's connection is back, not at the end of its backoff: the
// relay has failed nine times (its next wait 4–6 s, doubling from 20
// ms), the neighbour comes up, and every entry is delivered within 3 s,
// where waiting out the backoff would take at least 4 (gRPC's own
// reconnect is fast here: the test's dial options, which come last,
// bound it to 100 ms).
func TestRelayResumesWhenTheNeighbourIsBack(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // the neighbour is down
	topo, err := topology.New([]topology.Node{
		{Name: "city", Tier: topology.City, Jurisdiction: "320500", Replicas: []string{addr}},
		{Name: "d1", Tier: topology.District, Jurisdiction: "320505", Parent: "city", Replicas: []string{"127.0.0.1:1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	local := testLocal(t)
	enqueue(t, local, 5)
	var mu sync.Mutex
	attempts := 0
	count := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		mu.Lock()
		attempts++
		mu.Unlock()
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	r, err := New(Options{Self: "d1", Topology: topo, Local: local, RetryMin: 20 * time.Millisecond, RetryMax: time.Minute,
		Dial: func(string) []grpc.DialOption {
			return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithUnaryInterceptor(count),
				grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 20 * time.Millisecond, Multiplier: 1.6, MaxDelay: 100 * time.Millisecond}})}
		}})
	if err != nil {
		t.Fatal(err)
	}
	lead(t, r)
	waitUntil(t, "nine failed deliveries", func() bool { mu.Lock(); defer mu.Unlock(); return attempts >= 9 })

	if lis, err = net.Listen("tcp", addr); err != nil {
		t.Fatalf("the neighbour's address was taken meanwhile: %v", err)
	}
	peer := &markPeer{}
	gs := grpc.NewServer()
	pb.RegisterFederationServiceServer(gs, peer)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	back := time.Now()
	waitUntil(t, "the entries delivered", func() bool { mark, _, _ := peer.state(); return mark == 5 })
	if took := time.Since(back); took > 3*time.Second {
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("delivered %v after the neighbour came back (%d attempts): the relay waited out its backoff", took, attempts)
	}
}

// TestReconnectBoundDefaults: the connections' reconnect backoff is
// bounded by reconnect_max (250 ms unless set) and never past retry_max,
// so a relay configured to retry every 50 ms does not reconnect slower
// than it retries.
func TestReconnectBoundDefaults(t *testing.T) {
	for _, tc := range []struct {
		retryMax, reconnectMax, want time.Duration
	}{
		{time.Second, 0, 250 * time.Millisecond},
		{time.Second, 100 * time.Millisecond, 100 * time.Millisecond},
		{50 * time.Millisecond, 0, 50 * time.Millisecond},
		{50 * time.Millisecond, 250 * time.Millisecond, 50 * time.Millisecond},
		{0, 0, 250 * time.Millisecond}, // retry_max's own default, 5 s
	} {
		o := Options{RetryMax: tc.retryMax, ReconnectMax: tc.reconnectMax}
		o.defaults()
		if o.ReconnectMax != tc.want {
			t.Errorf("retry_max %v, reconnect_max %v: reconnect bound %v, want %v", tc.retryMax, tc.reconnectMax, o.ReconnectMax, tc.want)
		}
	}
}
