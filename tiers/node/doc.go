// Package node runs one replica of a tier node: it wires the raft log store,
// the snapshot store, the transport and the FSM into hashicorp/raft, stamps
// commands on the leader, forwards writes from followers to the leader, and
// offers reads at three consistency levels.
//
// See DESIGN.md for the life of a write and the read levels.
package node
