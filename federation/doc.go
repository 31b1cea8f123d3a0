// Package federation holds what crosses between cityhub nodes: one node per
// tier (city, district, street, community), each its own Raft group.
//
// Its sub-packages are:
//
//   - topology: the tree of tier nodes, their replicas and hosted units, and
//     routing by grid code, unit id and node name.
//   - protocol: the deterministic part of delivery, called inside Apply:
//     the recipients of a case version, the neighbours it passes through,
//     the newer-copy rule. The outbox and the inbox's high-water marks are
//     written by the tier's state machine (tiers/fsm) in the same
//     transaction as the change they announce.
//   - relay: on the leader only, delivers each link's outbox to the
//     neighbour's leader and trims it on acknowledgement; its Server is the
//     receiving side (FederationService).
//   - ownership: the responsibility catalogue (责任清单) rules that pick the one
//     unit that must act on a case.
//   - reconcile: hand-off of backlog cases to the node and unit that own
//     them, through ordinary workflow actions.
//   - antientropy: comparison of shared cases between a parent and each
//     child, repairing anything delivery missed.
//   - certs: the mTLS identities of nodes.
//   - fedtest: in-process federations for tests.
//
// How the pure packages (topology, protocol, ownership) and the leader-side
// ones (relay, reconcile, antientropy) may import the tier packages is the
// import rule of docs/ARCHITECTURE.md. The protocol and its failure cases
// are in DESIGN.md.
package federation
