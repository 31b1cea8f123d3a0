// Package federation holds what crosses between cityhub nodes: one node per
// tier (city, district, street, community), each its own Raft group.
//
// Its sub-packages are:
//
//   - topology: the tree of tier nodes, their replicas and hosted units, and
//     routing by grid code, unit id and node name (exists).
//   - outbox and relay: entries written in the same state-machine transaction
//     as the change they announce, numbered densely per link and relayed by
//     the leader only (planned).
//   - inbox: receipt of relayed entries, storing the per-link high-water mark
//     in the receiver's own state machine so delivery is idempotent (planned).
//   - ownership: the responsibility catalogue (责任清单) rules that pick the one
//     unit that must act on a case (planned).
//   - reconciler: hand-off of backlog cases that piled up before the tiers
//     were connected (planned).
//   - anti-entropy: periodic comparison of case mirrors between nodes to
//     repair anything delivery missed (planned).
package federation
