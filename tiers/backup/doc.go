// Package backup saves a tier node's state to a file and builds a new
// group's data directories from one: the library behind `cityhubctl
// snapshot save | status | restore`.
//
// A backup file is:
//
//	"cityhub-backup-v1\n"
//	uvarint length, SnapshotInfo (protobuf): who took it, index, term, ...
//	the state store's snapshot stream (tiers/store: records and a CRC-32C)
//	SHA-256 of everything before it (32 bytes)
//
// and beside it FILE.sha256, the SHA-256 of the whole file in sha256sum's
// format. Restore writes, for one replica of the new group, a state store
// holding the backup's state, a raft snapshot of it at the backup's index
// and term with the new group's configuration, and a stable store whose
// current term is that term: raft starts the new group's log right after
// the backup's index (the state machine skips entries at or below the
// index it holds), the way hashicorp/raft's RecoverCluster leaves a
// replica. See docs/ARCHITECTURE.md and federation/DESIGN.md ("After a
// restore").
package backup
