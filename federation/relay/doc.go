// Package relay moves a node's outbox across its links: the sending side
// (Relay: one goroutine per neighbour, active on the group's leader only)
// and the receiving side (Server: the FederationService that applies a
// batch through the receiver's own Raft log). See federation/DESIGN.md for
// the protocol and its failure cases.
package relay
