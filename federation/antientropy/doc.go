// Package antientropy finds and repairs the differences between the copies
// of the cases a parent and a child share: records lost or damaged behind
// the state machine's back (a disk, a bug, a restore from an old backup),
// which the delivery protocol alone never notices.
//
// A case is shared on a link when both ends are on the delivery path of its
// version (Copies, Shared). The initiator of a comparison (the parent, for
// the periodic run) and its peer each summarise the cases they share into
// buckets by case id (Digest), list the versions in the buckets that differ
// (CaseVersions), fetch the copies they need (FetchCases), and repair from
// the side nearer the holder (Decide): the initiator through its own Raft
// log, the peer through its leader's (Repair). Both sides read only the
// digest index the store keeps beside every case, so a comparison costs one
// scan of that index per round and bytes in proportion to what differs.
//
// See federation/DESIGN.md, "Anti-entropy", for the protocol and its limits.
package antientropy
