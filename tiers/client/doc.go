// Package client is how cityhub's own callers reach a replica group: the
// CLI, the load generator, the demo, the federation check, and the
// federation's leader jobs (the relay's deliveries, anti-entropy, evidence
// fetches) calling a neighbour's leader.
//
// It holds three things, each in one place:
//
//   - Classify: what an error means for the caller (Outcome): done, retry
//     here after a backoff, retry on another replica (this one does not
//     lead, there is no leader yet, it cannot be reached or is too slow),
//     the disk reserve (the leader refuses writes for low disk space: back
//     off, honouring the status's RetryInfo, and do NOT try another
//     replica, which would only forward to the same leader), or final (the
//     caller's request is wrong or refused: retrying cannot help).
//   - Policy: the one backoff policy (exponential with a cap and jitter,
//     cenkalti/backoff) with a bound on attempts or the context's deadline,
//     and Do, which retries one call by it.
//   - Replicas: a leader-following caller over a group's replica addresses.
//     It remembers the replica that answered last and tries it first, and
//     moves on to the next one when a replica says it does not lead.
//
// # Request ids
//
// Retrying a write is safe because every write carries a request id and a
// group answers a repeated id with the first result (tiers/fsm). This
// package never invents a request id and never changes a request: the
// caller sets the id once, before the first attempt, and every attempt,
// on whichever replica, sends the same request. A caller that built a new
// request per attempt with a fresh id would turn a retry into a second
// write.
//
// The package links gRPC and tiers/diskspace (for the disk reserve's
// refusal) only: no badger, no raft (layer 2 "support" of the import rule
// in docs/ARCHITECTURE.md). The error table a server answers by is
// tiers/errcode; this package reads the codes that table produces.
package client
