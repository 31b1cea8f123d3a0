package node

import (
	"time"

	"github.com/hashicorp/raft"

	"github.com/cityhub/cityhub/tiers/client"
)

// A new leader's term is settled once this replica has applied an entry of
// that term: every entry an earlier leader committed is then applied too, so
// the store holds every acknowledged write. Until then a linearizable read
// has nothing to wait for in the state machine: the first entry of every
// term is raft's no-op (LogNoop), which raft never hands to the FSM, so
// the FSM's applied index stops one short of the leader's last index and
// only the next command moved it on; on an idle group that was the next
// write, 10-30 s later.
//
// So each time this replica gains leadership, it issues raft.Barrier(). A
// barrier is an entry of the leader's term that raft does not hand to the
// FSM either, but its future completes on raft's FSM goroutine once every
// entry before it is applied (the FSM applies in log order). Its index and
// term are then recorded as applied (position): nothing in the store
// changes, and the store's own applied index (tiers/store, snapshots)
// still names the last entry the FSM wrote.

// position is a log index and the term of the entry there.
type position struct{ index, term uint64 }

// appliedPosition is the last log index this replica has applied and its
// term: the FSM's, or the last completed barrier's when that is later.
func (n *Node) appliedPosition() position {
	idx, term := n.fsm.AppliedIndex(), n.fsm.AppliedTerm()
	if b := n.barrier.Load(); b != nil && b.index > idx {
		return *b
	}
	return position{idx, term}
}

// appliedTerm is the term of the last entry this replica applied. The
// leader's term is settled when it equals raft's current term.
func (n *Node) appliedTerm() uint64 { return n.appliedPosition().term }

// Settled reports whether this replica leads and has applied an entry of
// its term (a linearizable read then waits for nothing but the entries
// appended after it arrived).
func (n *Node) Settled() bool {
	return n.IsLeader() && n.appliedTerm() == n.raft.CurrentTerm()
}

// recordBarrier notes that every entry up to p.index is applied and wakes
// the readers waiting for it. Positions only move forward.
func (n *Node) recordBarrier(p position) {
	for {
		old := n.barrier.Load()
		if old != nil && old.index >= p.index {
			return
		}
		if n.barrier.CompareAndSwap(old, &p) {
			break
		}
	}
	n.notifyApplied()
}

// notifyApplied wakes WaitApplied and the Applied() watchers.
func (n *Node) notifyApplied() {
	n.appliedMu.Lock()
	n.appliedCond.Broadcast()
	close(n.appliedCh)
	n.appliedCh = make(chan struct{})
	n.appliedMu.Unlock()
}

// kickSettle asks the settle loop to look again (a read found the leader
// unsettled). It never blocks.
func (n *Node) kickSettle() {
	select {
	case n.settleKick <- struct{}{}:
	default:
	}
}

// settleLoop settles each term this replica leads, until shutdown.
func (n *Node) settleLoop() {
	leaderCh := n.raft.LeaderCh()
	for {
		n.settle()
		// A settled term starts the leader jobs, a lost one stops them
		// (leader.go).
		n.kickLeadership()
		select {
		case <-n.done:
			return
		case <-leaderCh:
		case <-n.settleKick:
		}
	}
}

// settleRetry is how settle waits between failed barriers: the one retry
// policy (tiers/client), 10 ms doubling to 500 ms.
var settleRetry = client.Policy{Initial: 10 * time.Millisecond, Max: 500 * time.Millisecond}

// settle issues barriers while this replica leads an unsettled term. A
// barrier that fails (no quorum yet, a transfer under way) is retried with
// backoff; losing leadership ends it.
func (n *Node) settle() {
	backoff := settleRetry.Backoff()
	for {
		select {
		case <-n.done:
			return
		default:
		}
		if !n.IsLeader() {
			return
		}
		// A term read before the barrier is appended is at most the
		// barrier's own term: recording it can only understate the
		// position's term (and then the loop issues another barrier).
		term := n.raft.CurrentTerm()
		if n.appliedTerm() >= term {
			return
		}
		f := n.raft.Barrier(n.cfg.ApplyTimeout)
		err := f.Error()
		if err == nil {
			if idx, ok := f.(raft.IndexFuture); ok && idx.Index() > 0 {
				n.recordBarrier(position{index: idx.Index(), term: term})
				continue
			}
			// Unreachable with hashicorp/raft's barrier future; without
			// its index the term stays unsettled until a command applies.
			n.log.Warn("raft barrier without an index: reads wait for the next write")
			return
		}
		n.log.Debug("barrier on gaining leadership failed; retrying", "term", term, "error", err)
		select {
		case <-n.done:
			return
		case <-time.After(backoff.Next()):
		}
	}
}
