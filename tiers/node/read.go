package node

import (
	"context"
	"fmt"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// ReadBarrier makes this node fit to serve a read at the given level, or
// returns ErrNotLeader when only the leader can (the API then forwards).
//
//   - STALE: whatever this replica holds.
//   - LEADER: this node believes it leads (it may be a deposed leader that
//     has not noticed yet).
//   - LINEARIZABLE: a quorum confirms the leadership after the read
//     arrived, and the store has applied every entry the leader had
//     appended by then (including its own no-op of the current term, so
//     every write acknowledged by an earlier leader is visible). The no-op
//     never reaches the FSM: the barrier the leader issues on taking the
//     lead (settle.go) covers it, so an idle group answers without waiting
//     for a write.
func (n *Node) ReadBarrier(ctx context.Context, level pb.Consistency) error {
	switch level {
	case pb.Consistency_CONSISTENCY_STALE:
		return nil
	case pb.Consistency_CONSISTENCY_LEADER:
		if !n.IsLeader() {
			return ErrNotLeader
		}
		return nil
	}
	if !n.IsLeader() {
		return ErrNotLeader
	}
	readIndex := n.raft.LastIndex()
	if err := n.raft.VerifyLeader().Error(); err != nil {
		return fmt.Errorf("%w: verify leadership: %w", ErrNotLeader, err)
	}
	if n.appliedTerm() != n.raft.CurrentTerm() {
		// The term is not settled yet (settle.go): make sure a barrier
		// is on its way, whatever happened to the one issued when this
		// replica took the lead.
		n.kickSettle()
	}
	return n.WaitApplied(ctx, readIndex)
}

// WaitApplied blocks until this replica has applied index (AppliedIndex:
// the store reflects every entry up to it) or ctx ends.
func (n *Node) WaitApplied(ctx context.Context, index uint64) error {
	stop := context.AfterFunc(ctx, func() {
		n.appliedMu.Lock()
		n.appliedCond.Broadcast()
		n.appliedMu.Unlock()
	})
	defer stop()
	n.appliedMu.Lock()
	defer n.appliedMu.Unlock()
	for n.AppliedIndex() < index {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("wait for index %d (applied %d): %w", index, n.AppliedIndex(), err)
		}
		select {
		case <-n.done:
			return ErrShutdown
		default:
		}
		n.appliedCond.Wait()
	}
	return nil
}
