package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/cityhub/cityhub/federation/topology"
	"github.com/cityhub/cityhub/federation/wire"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/client"
	"github.com/cityhub/cityhub/tiers/node"
)

// ErrReceiverBehind reports a neighbour whose high-water mark is below what
// it acknowledged before: it lost state (restored from an older backup,
// say), and the entries between were already trimmed here. The relay then
// moves the neighbour's mark forward explicitly (a delivery with advance)
// and asks anti-entropy to repair the cases of the entries skipped
// (Options.OnJumped); the error stays in the link's status until the
// neighbour's mark is back at or above the acknowledged one. A neighbour
// that does not take the advance (a release before it) stalls the link
// loudly, as before.
var ErrReceiverBehind = errors.New("receiver is behind its own acknowledgement")

// Options configure a Relay.
type Options struct {
	Self     string
	Topology *topology.Topology
	Local    node.Leader
	// Dial returns the gRPC options for calling a neighbour (transport
	// credentials: mTLS expecting the neighbour's name in its certificate,
	// or insecure when configured for local use).
	Dial func(peer string) []grpc.DialOption
	// BatchSize and BatchBytes bound one Deliver call (and so the memory a
	// link holds): at most this many entries and about this many bytes.
	BatchSize  int
	BatchBytes int
	// RetryMin and RetryMax bound the backoff after a failed delivery
	// (tiers/client's policy: doubling, with jitter; after a disk-reserve
	// refusal at least its RetryInfo).
	RetryMin, RetryMax time.Duration
	// ReconnectMax bounds the connections' reconnect backoff, from
	// RetryMin (wire.DialOptions), and RetryMax bounds it too; default
	// 250 ms.
	ReconnectMax time.Duration
	// CallTimeout bounds one Deliver call.
	CallTimeout time.Duration
	Logger      *slog.Logger
	// ProbeInterval is how often an idle link asks the neighbour for its
	// mark (an empty batch): a neighbour restored from a backup is found
	// behind, or learns this node's new incarnation, without waiting for
	// the next entry. Default 5 s.
	ProbeInterval time.Duration
	// OnJumped, when set, is told of a neighbour whose mark skipped
	// entries it never applied (it lost state, or this node was restored
	// and its floor passed the neighbour's mark): the replica starts
	// anti-entropy with it to repair their cases. It must not block.
	OnJumped func(peer string)
}

func (o *Options) defaults() {
	if o.BatchSize <= 0 {
		o.BatchSize = 512
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = 2 << 20
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 50 * time.Millisecond
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 5 * time.Second
	}
	if o.ReconnectMax <= 0 {
		o.ReconnectMax = 250 * time.Millisecond
	}
	o.ReconnectMax = min(o.ReconnectMax, o.RetryMax)
	if o.CallTimeout <= 0 {
		o.CallTimeout = 10 * time.Second
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Relay ships the outbox of each link of one node to the neighbour's
// leader. It is a leader job (Run): only the leader of a settled term
// sends. A new leader starts from the acknowledged mark in the state store,
// so nothing is lost, and the receiver's high-water mark drops what was
// sent twice.
type Relay struct {
	opts  Options
	log   *slog.Logger
	links []*link
}

// link is the sending side of one link.
type link struct {
	peer   string
	dir    string // "parent" or "child"
	client *wire.Peer

	mu      sync.Mutex
	lastErr string
	sending bool
	// hw is the receiver's high-water mark as last reported; trimmed is the
	// mark committed to the outbox through the log.
	hw, trimmed uint64
	trimKick    chan struct{}
}

// New builds the relay for opts.Self's links (its parent and children).
func New(opts Options) (*Relay, error) {
	opts.defaults()
	self, ok := opts.Topology.Node(opts.Self)
	if !ok {
		return nil, errors.New("relay: self is not in the topology")
	}
	r := &Relay{opts: opts, log: opts.Logger.With("component", "relay", "node", opts.Self)}
	for _, peer := range opts.Topology.Neighbours(opts.Self) {
		n, _ := opts.Topology.Node(peer)
		dir := "child"
		if peer == self.Parent {
			dir = "parent"
		}
		r.links = append(r.links, &link{peer: peer, dir: dir, client: wire.NewPeer(peer, n.Replicas, wire.DialOptions(opts.RetryMin, opts.ReconnectMax, opts.Dial(peer)...)), trimKick: make(chan struct{}, 1)})
	}
	return r, nil
}

// retry is the relay's backoff policy (tiers/client's, bounded by
// RetryMin and RetryMax).
func (r *Relay) retry() *client.Backoff {
	return client.Policy{Initial: r.opts.RetryMin, Max: r.opts.RetryMax}.Backoff()
}

// deliver sends req to the neighbour's leader: one round over its
// replicas, each at most once, starting with the one that answered last
// (wire.Peer.Round); the send loop backs off between rounds.
func (l *link) deliver(ctx context.Context, req *pb.DeliverRequest) (*pb.DeliverResponse, error) {
	var resp *pb.DeliverResponse
	err := l.client.Round(ctx, client.Policy{}, func(ctx context.Context, c pb.FederationServiceClient) (err error) {
		resp, err = c.Deliver(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// Lead runs one sender and one trimmer per link until ctx ends. It is a
// leader job (node.AddLeaderJob): it runs on the leader of a settled term
// only, and its context ends with the term.
func (r *Relay) Lead(ctx context.Context) {
	var wg sync.WaitGroup
	for _, l := range r.links {
		wg.Add(2)
		go func() { defer wg.Done(); r.send(ctx, l) }()
		go func() { defer wg.Done(); r.trim(ctx, l) }()
	}
	wg.Wait()
}

// Close closes the relay's connections, once Lead has returned.
func (r *Relay) Close() {
	for _, l := range r.links {
		l.client.Close()
	}
}

// send is the loop of one link for one term: wait for entries, send a
// batch, move the cursor to the mark the receiver answers.
//
// Every batch carries this node's incarnation and the link's acknowledged
// mark (the floor), read with the entries: a receiver that sees a new
// incarnation (this node was restored from a backup and numbers its
// outbox again from there) restarts its mark at the floor. A receiver
// whose mark is below the floor lost state: the next batch asks it to
// advance to the floor, and anti-entropy repairs the rest
// (federation/DESIGN.md, "After a restore").
func (r *Relay) send(ctx context.Context, l *link) {
	local := r.opts.Local
	var cursor uint64 // last sequence number known delivered; 0: read the acked mark
	var advance bool  // the receiver is behind the floor: move it forward
	var lastContact time.Time
	backoff := r.retry()
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	l.setSending(true)
	defer l.setSending(false)
	for ctx.Err() == nil {
		applied := local.Applied()
		// From the start of the outbox when the cursor is unknown: what is
		// acknowledged is trimmed, so the batch starts after the floor.
		b, err := local.Store().NextBatch(l.peer, cursor+1, r.opts.BatchSize, r.opts.BatchBytes)
		if err != nil {
			r.log.Error("read outbox", "peer", l.peer, "error", err)
			r.wait(ctx, nil, backoff.Next(), idle)
			continue
		}
		if cursor == 0 {
			cursor = b.Acked
		}
		// An idle link asks for the neighbour's mark now and then (and
		// at once when it must advance it): an empty batch.
		probe := len(b.Entries) == 0
		if probe && !advance && time.Since(lastContact) < r.opts.ProbeInterval {
			r.wait(ctx, applied, min(500*time.Millisecond, r.opts.ProbeInterval), idle)
			continue
		}
		req := &pb.DeliverRequest{From: r.opts.Self, To: l.peer, Entries: b.Entries, Incarnation: b.Incarnation, Floor: b.Acked, Advance: advance}
		cctx, cancel := context.WithTimeout(ctx, r.opts.CallTimeout)
		resp, err := l.deliver(cctx, req)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			l.setErr(err)
			r.log.Debug("delivery failed", "peer", l.peer, "entries", len(b.Entries), "outcome", client.OutcomeOf(err), "error", err)
			r.backOff(ctx, l, err, backoff.Next(), idle)
			cursor = 0 // re-read the acked mark: leadership may have moved here too
			continue
		}
		lastContact = time.Now()
		if resp.Jumped > 0 {
			r.log.Warn("neighbour's mark skipped entries it never applied: anti-entropy repairs their cases",
				"peer", l.peer, "entries", resp.Jumped, "floor", b.Acked, "incarnation", b.Incarnation, "advance", advance)
			if r.opts.OnJumped != nil {
				r.opts.OnJumped(l.peer)
			}
		}
		if resp.HighWater < b.Acked {
			// The receiver acknowledged entries it no longer has (restored
			// from an old backup, say): they are trimmed here and cannot be
			// resent. Move its mark forward explicitly; if it does not
			// move (a release without advance), say so loudly instead of
			// looping on the gap.
			err := fmt.Errorf("%w: %s answers high-water %d, below the acknowledged %d", ErrReceiverBehind, l.peer, resp.HighWater, b.Acked)
			l.setErr(err)
			if !advance {
				r.log.Warn("neighbour behind its acknowledgement: moving its mark forward", "peer", l.peer, "high_water", resp.HighWater, "acked", b.Acked)
				advance, cursor = true, 0
				r.wait(ctx, nil, r.opts.RetryMin, idle)
				continue
			}
			r.log.Error("link stalled", "peer", l.peer, "error", err)
			r.wait(ctx, nil, r.opts.RetryMax, idle)
			cursor = 0
			continue
		}
		advance = false
		backoff.Reset()
		l.setErr(nil)
		// The receiver's mark is authoritative: it is past the batch when
		// everything applied, and behind it after a gap (the next batch
		// starts right after it). A mark beyond the last entry sent is
		// another life's numbering (this node was restored and its new
		// incarnation is not fixed yet): the cursor stays on this life's
		// entries.
		last := b.LastSeq
		if !probe {
			last = b.Entries[len(b.Entries)-1].Seq
		}
		hw := min(resp.HighWater, last)
		cursor = hw
		if !probe {
			l.ack(hw)
		}
	}
}

// backOff waits after a failed delivery: next (the backoff's delay, or
// a disk-reserve refusal's RetryInfo, client.Wait). When no replica of
// the neighbour could be reached or led (client.RetryElsewhere), it
// ends early, though not before RetryMin, once a connection to one of
// them that was down is ready again: a healed partition resumes with
// gRPC's reconnect, not with gRPC's reconnect and then the rest of this
// backoff (up to twice RetryMax). A refusal of the leader's (disk
// reserve) waits its whole delay.
func (r *Relay) backOff(ctx context.Context, l *link, err error, next time.Duration, t *time.Timer) {
	d := client.Wait(err, next)
	if client.OutcomeOf(err) != client.RetryElsewhere || d <= r.opts.RetryMin {
		r.wait(ctx, nil, d, t)
		return
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := l.client.Reconnected(wctx)
	start := time.Now()
	r.wait(ctx, nil, r.opts.RetryMin, t)
	r.wait(ctx, ready, d-time.Since(start), t)
}

// wait sleeps until ch closes, d passes or ctx ends.
func (r *Relay) wait(ctx context.Context, ch <-chan struct{}, d time.Duration, t *time.Timer) {
	t.Reset(d)
	select {
	case <-ctx.Done():
	case <-ch:
	case <-t.C:
		return
	}
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
}

// trim commits acknowledgements to the outbox through the log, one at a
// time, coalescing the marks that arrive meanwhile.
func (r *Relay) trim(ctx context.Context, l *link) {
	backoff := r.retry()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.trimKick:
		}
		for ctx.Err() == nil {
			l.mu.Lock()
			hw, done := l.hw, l.trimmed
			l.mu.Unlock()
			if hw <= done {
				break
			}
			cctx, cancel := context.WithTimeout(ctx, r.opts.CallTimeout)
			_, err := r.opts.Local.ApplyLocal(cctx, &pb.Command{Body: &pb.Command_TrimOutbox{TrimOutbox: &pb.TrimOutbox{Link: l.peer, Upto: hw}}})
			cancel()
			if err != nil {
				r.log.Debug("trim failed", "peer", l.peer, "upto", hw, "error", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(client.Wait(err, backoff.Next())):
				}
				continue
			}
			backoff.Reset()
			l.mu.Lock()
			l.trimmed = max(l.trimmed, hw)
			l.mu.Unlock()
		}
	}
}

func (l *link) ack(hw uint64) {
	l.mu.Lock()
	if hw > l.hw {
		l.hw = hw
	}
	l.mu.Unlock()
	select {
	case l.trimKick <- struct{}{}:
	default:
	}
}

func (l *link) setErr(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		l.lastErr = ""
		return
	}
	l.lastErr = err.Error()
}

func (l *link) setSending(on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !on && l.sending {
		// Leadership moved away: a later term starts from the stored mark.
		l.hw, l.trimmed = 0, 0
	}
	l.sending = on
}

// Status reports every link of the node, from the state store (any
// replica) and, on the leader, the relay's own view.
func (r *Relay) Status() ([]*pb.LinkStatus, error) {
	now := time.Now()
	var out []*pb.LinkStatus
	for _, l := range r.links {
		ls, err := r.opts.Local.Store().Link(l.peer)
		if err != nil {
			return nil, err
		}
		st := &pb.LinkStatus{
			Peer: l.peer, Direction: l.dir,
			OutLastSeq: ls.Out.LastSeq, OutAcked: ls.Out.Acked, LagEntries: ls.Out.LastSeq - ls.Out.Acked,
			InHighWater: ls.InHighWater,
		}
		if ls.OldestUnacked > 0 {
			st.LagSeconds = max(0, now.Sub(time.UnixMilli(ls.OldestUnacked)).Seconds())
		}
		l.mu.Lock()
		st.LastError, st.Relaying = l.lastErr, l.sending
		l.mu.Unlock()
		out = append(out, st)
	}
	return out, nil
}
