// Package wire is the federation's wire: what crosses a link between two
// tier nodes, apart from what decides what to send.
//
//   - Server: the receiving side, cityhub.v1.FederationService. It
//     authorizes the caller (its certificate names the parent or a child),
//     checks the addressee and that this replica leads, and applies a batch
//     through the receiver's own Raft log (Deliver); it hands the
//     anti-entropy calls to federation/antientropy's handler and serves a
//     shared case's evidence (FetchEvidence) from the replica's source.
//     Errors answer the caller by the one table (tiers/errcode).
//   - Peer: the calling side, a neighbour group's FederationService
//     reached through tiers/client's leader-following caller, and
//     DialOptions, the connections' options.
//
// The sending side (federation/relay: the outbox, batches, marks, trims)
// and anti-entropy (federation/antientropy) both call neighbours through
// Peer. See federation/DESIGN.md for the protocol.
package wire
