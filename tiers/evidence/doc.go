// Package evidence keeps the photos and files of cases (证据照片: before and
// after, at report, handling and check): content-addressed by SHA-256,
// their type sniffed from the content against an allow-list, their size
// bounded, EXIF time and position read as metadata.
//
// An upload is spooled to a temporary file while it is hashed (a body is
// never held whole in memory), then stored in one of two ways:
//
//   - embedded (evidence.store: raft, the default): the bytes go through
//     the group's Raft log in chunks (AttachEvidence chunk entries, one per
//     evidence.chunk_bytes), so every replica keeps them and losing one
//     replica loses nothing; the attach entry then checks the chunks hash
//     to the address and adds the reference to the case;
//   - object store (evidence.store: s3): the bytes go to an S3-compatible
//     bucket (minio-go) before the attach is proposed; only the metadata
//     goes through the log.
//
// Either way a reference (EvidenceRef) is added to the case, a new version
// that the federation carries to every tier that mirrors the case; those
// tiers read the bytes through the federation (FederationService.
// FetchEvidence) from the node that stores them. See DESIGN.md.
package evidence
