// Package store keeps a tier node's state machine in badger: cases, their
// secondary indexes, request records for idempotency, the node registry and
// the Raft applied index, all written in one transaction per log entry (or
// per batch of entries) by the FSM.
//
// See DESIGN.md for the key layout and why it looks the way it does.
package store
