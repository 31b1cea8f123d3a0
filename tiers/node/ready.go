package node

import (
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// Readiness says whether a linearizable read would answer now on this
// replica (/readyz).
type Readiness struct {
	Ready bool
	// Reason says why not ("" when ready).
	Reason string
	// Term is raft's current term; AppliedTerm the term of the last entry
	// this replica applied (the leader's term is settled when they match).
	Term, AppliedTerm uint64
	// AppliedIndex and CommitIndex as the decision saw them.
	AppliedIndex, CommitIndex uint64
	// State is raft's state (Leader, Follower, …) and Leader the leader's
	// id ("" when none is known).
	State, Leader string
}

// Readiness reports whether a linearizable read would answer now here:
//
//   - the leader: its term is settled (it has applied an entry of its
//     term, settle.go), so a read waits only for entries appended after it;
//   - a follower (it forwards linearizable reads to the leader): it has
//     heard from the leader within raft's heartbeat timeout, knows the
//     leader's API address, has seen an entry of the leader's term
//     committed (the leader's no-op: the leader's barrier commits with it
//     or just after) and has applied all but maxLag of what it knows is
//     committed (for the reads it serves itself).
func (n *Node) Readiness(maxLag uint64) Readiness {
	term := n.raft.CurrentTerm()
	applied := n.appliedPosition()
	commit := n.raft.CommitIndex()
	laddr, lid := n.raft.LeaderWithID()
	r := Readiness{Term: term, AppliedTerm: applied.term, AppliedIndex: applied.index, CommitIndex: commit,
		State: n.raft.State().String(), Leader: string(lid)}
	switch {
	case lid == "":
		r.Reason = "no leader known"
	case n.IsLeader():
		if applied.term != term {
			r.Reason = "the leader has not applied an entry of its term yet"
			n.kickSettle() // a probe must not wait for a read to settle the term
		}
	case time.Since(n.raft.LastContact()) > n.heartbeat:
		r.Reason = "no contact with the leader for longer than the heartbeat timeout"
	case n.grpcAddrOf(string(lid), string(laddr)) == "":
		r.Reason = "the leader's API address is unknown"
	case !n.committedInTerm(commit, term):
		r.Reason = "no entry of the leader's term is committed here yet"
	case applied.index+maxLag < commit:
		r.Reason = "still applying committed entries"
	}
	r.Ready = r.Reason == ""
	return r
}

// committedInTerm reports whether the entry at commit, this replica's
// commit index, belongs to term.
func (n *Node) committedInTerm(commit, term uint64) bool {
	if commit == 0 {
		return false
	}
	var l raft.Log
	if err := n.logCache.GetLog(commit, &l); err == nil {
		return l.Term == term
	}
	// The entry went into a snapshot (one installed from the leader):
	// raft's last entry, snapshot included, is then the committed one.
	st := n.raft.Stats()
	return n.raft.LastIndex() == commit && st["last_log_term"] == strconv.FormatUint(term, 10)
}
