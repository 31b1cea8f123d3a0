package antientropy

import (
	"context"
	"slices"
	"sync"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/client"
)

// Runs the federation asks for after a restore (federation/DESIGN.md,
// "After a restore"), besides the periodic one:
//
//   - Catch-up: a group restored from a backup refuses writes until it has
//     run anti-entropy with every neighbour. Its leader runs with the
//     neighbours it still waits for and, for each link that completed,
//     records it through the log (RepairCases with caught_up).
//   - Kicks: the relay found a neighbour's mark skipping entries it never
//     applied (OnJumped); the leader compares with that neighbour now.
//
// Both retry with backoff (RetryMin to RetryMax) until the link completes.

// kicks is the set of neighbours waiting for a run.
type kicks struct {
	mu    sync.Mutex
	peers map[string]bool
	ch    chan struct{}
}

func newKicks() *kicks { return &kicks{peers: map[string]bool{}, ch: make(chan struct{}, 1)} }

// Kick asks for a run with peer as soon as possible (on the leader). It
// never blocks; unknown peers are ignored.
func (r *Runner) Kick(peer string) {
	if !r.opts.Topology.IsNeighbour(r.opts.Self, peer) {
		return
	}
	r.kicks.mu.Lock()
	r.kicks.peers[peer] = true
	r.kicks.mu.Unlock()
	select {
	case r.kicks.ch <- struct{}{}:
	default:
	}
}

func (k *kicks) list() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for p := range k.peers {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

func (k *kicks) done(peer string) {
	k.mu.Lock()
	delete(k.peers, peer)
	k.mu.Unlock()
}

// waitingFor lists the neighbours a restored group has not caught up
// with (nil when it is not catching up).
func (r *Runner) waitingFor() ([]string, error) {
	rs, err := r.opts.Local.Store().RestoreState()
	if err != nil || !rs.GetCatchingUp() {
		return nil, err
	}
	var out []string
	for _, n := range r.opts.Topology.Neighbours(r.opts.Self) {
		if !slices.Contains(rs.CaughtUp, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// followUp runs the catch-up and the kicked comparisons until ctx ends.
func (r *Runner) followUp(ctx context.Context) {
	backoff := client.Policy{Initial: r.opts.RetryMin, Max: r.opts.RetryMax}.Backoff()
	idle := 500 * time.Millisecond
	for {
		wait := idle
		if failed, ran := r.followUpOnce(ctx); failed {
			wait = backoff.Next()
		} else if ran {
			backoff.Reset()
			wait = 0
		}
		if wait == 0 {
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.kicks.ch:
		case <-t.C:
		}
		t.Stop()
	}
}

// followUpOnce runs with the neighbours due: it reports whether a link
// failed and whether it ran at all.
func (r *Runner) followUpOnce(ctx context.Context) (failed, ran bool) {
	waiting, err := r.waitingFor()
	if err != nil {
		r.log.Warn("read restore state", "error", err)
		return true, false
	}
	peers := r.kicks.list()
	for _, p := range waiting {
		if !slices.Contains(peers, p) {
			peers = append(peers, p)
		}
	}
	if len(peers) == 0 || ctx.Err() != nil {
		return false, false
	}
	resp, err := r.Run(ctx, peers, false)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Debug("anti-entropy after a restore", "peers", peers, "error", err)
		}
		return true, true
	}
	for _, l := range resp.Links {
		if l.Error != "" {
			failed = true
			continue
		}
		r.kicks.done(l.Peer)
		if !slices.Contains(waiting, l.Peer) {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, r.opts.CallTimeout)
		_, err := r.opts.Local.ApplyLocal(cctx, &pb.Command{Body: &pb.Command_Repair{Repair: &pb.RepairCases{From: l.Peer, CaughtUp: true}}})
		cancel()
		if err != nil {
			failed = true
			r.log.Debug("record catch-up", "peer", l.Peer, "error", err)
			continue
		}
		r.log.Info("restored node caught up with a neighbour", "peer", l.Peer, "repaired", l.Repaired)
	}
	return failed, true
}
