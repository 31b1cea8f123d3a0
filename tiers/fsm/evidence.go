package fsm

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
	"github.com/cityhub/cityhub/tiers/workflow"
)

// MaxChunkBytes bounds one evidence chunk (one log entry's data). The
// leader cuts uploads into evidence.chunk_bytes pieces, at most this.
const MaxChunkBytes = 1 << 20

// MaxEvidencePerCase bounds the references one case carries, whatever the
// configuration asks (evidence.max_per_case is checked by the API below it),
// so a case record stays small enough to travel the links.
const MaxEvidencePerCase = 200

var (
	// ErrEvidenceIncomplete refuses an attach whose chunks are not all
	// stored (a chunk lost on the way: upload again).
	ErrEvidenceIncomplete = errors.New("evidence chunks missing")
	// ErrEvidenceMismatch refuses an attach whose chunks do not hash to
	// the address (their chunks are dropped).
	ErrEvidenceMismatch = errors.New("evidence content does not match its sha256")
	// ErrEvidenceLimit refuses an attach to a case that carries
	// MaxEvidencePerCase references.
	ErrEvidenceLimit = errors.New("case carries the most evidence allowed")
)

// ValidSHA256 reports whether s is a lower-case hex SHA-256.
func ValidSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// attachEvidence applies an AttachEvidence command: a chunk, an attach or a
// purge.
func attachEvidence(tx *store.Tx, cmd *pb.Command, ae *pb.AttachEvidence, fv *fedView, index uint64, fp []byte) (*Result, error) {
	switch op := ae.GetOp().(type) {
	case *pb.AttachEvidence_Chunk:
		return evidenceChunk(tx, op.Chunk)
	case *pb.AttachEvidence_Attach:
		return evidenceAttach(tx, cmd, op.Attach, fv, index, fp)
	case *pb.AttachEvidence_Purge:
		return evidencePurge(tx, cmd, op.Purge)
	}
	return &Result{Err: fmt.Errorf("%w: attach_evidence needs an operation", ErrBadCommand)}, nil
}

func checkChunk(ch *pb.EvidenceChunk) error {
	switch {
	case ch == nil || !ValidSHA256(ch.Sha256):
		return fmt.Errorf("%w: chunk: sha256 must be 64 lower-case hex digits", ErrBadCommand)
	case ch.Count == 0 || ch.Index >= ch.Count:
		return fmt.Errorf("%w: chunk: index %d of %d", ErrBadCommand, ch.GetIndex(), ch.GetCount())
	case len(ch.Data) == 0 || len(ch.Data) > MaxChunkBytes:
		return fmt.Errorf("%w: chunk: %d bytes, 1 to %d allowed", ErrBadCommand, len(ch.Data), MaxChunkBytes)
	}
	return nil
}

// chunkStored reports whether a chunk needs no write: the blob is stored
// whole, or this chunk is.
func chunkStored(tx *store.Tx, ch *pb.EvidenceChunk) (bool, error) {
	b, err := tx.GetEvidenceBlob(ch.Sha256)
	switch {
	case err == nil && !b.Purged:
		return true, nil
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return false, err
	}
	return tx.HasEvidenceChunk(ch.Sha256, ch.Index)
}

// evidenceChunk stores a chunk, once: a retry of the same (sha256, index)
// finds it stored and writes nothing.
func evidenceChunk(tx *store.Tx, ch *pb.EvidenceChunk) (*Result, error) {
	if err := checkChunk(ch); err != nil {
		return &Result{Err: err}, nil
	}
	stored, err := chunkStored(tx, ch)
	if err != nil || stored {
		return &Result{Replayed: stored}, err
	}
	return &Result{}, tx.PutEvidenceChunk(ch.Sha256, ch.Index, ch.Data)
}

func checkAttach(a *pb.EvidenceAttach) error {
	ref := a.GetRef()
	switch {
	case a.GetCaseId() == "" || len(a.CaseId) > 64:
		return fmt.Errorf("%w: attach: case_id required", ErrBadCommand)
	case ref == nil || !ValidSHA256(ref.Sha256):
		return fmt.Errorf("%w: attach: ref.sha256 must be 64 lower-case hex digits", ErrBadCommand)
	case ref.Size <= 0:
		return fmt.Errorf("%w: attach: ref.size must be positive", ErrBadCommand)
	}
	switch a.Storage {
	case pb.EvidenceStorage_EVIDENCE_STORAGE_RAFT:
		if a.Chunks == 0 || a.ChunkSize <= 0 || a.ChunkSize > MaxChunkBytes ||
			int64(a.Chunks) != (ref.Size+a.ChunkSize-1)/a.ChunkSize {
			return fmt.Errorf("%w: attach: %d chunks of %d bytes cannot hold %d bytes", ErrBadCommand, a.Chunks, a.ChunkSize, ref.Size)
		}
	case pb.EvidenceStorage_EVIDENCE_STORAGE_S3:
		if a.ObjectKey == "" || len(a.ObjectKey) > 1024 {
			return fmt.Errorf("%w: attach: object_key required", ErrBadCommand)
		}
	default:
		return fmt.Errorf("%w: attach: storage %s", ErrBadCommand, a.Storage)
	}
	return nil
}

// decideAttach is what Apply and the precheck both decide on an attach:
// the case (held here), whether the blob is stored, and whether the case
// already carries it. It reads and writes nothing.
func decideAttach(tx *store.Tx, getCase func(string) (*pb.Case, error), a *pb.EvidenceAttach, fv *fedView) (old *pb.Case, blob *pb.EvidenceBlob, already bool, refused, err error) {
	if err := checkAttach(a); err != nil {
		return nil, nil, false, err, nil
	}
	old, refused, err = heldCase(getCase, a.CaseId)
	if refused != nil || err != nil {
		return nil, nil, false, refused, err
	}
	if err := fv.checkHolder(old); err != nil {
		return nil, nil, false, err, nil
	}
	blob, err = tx.GetEvidenceBlob(a.Ref.Sha256)
	switch {
	case errors.Is(err, store.ErrNotFound):
		blob = nil
	case err != nil:
		return nil, nil, false, nil, err
	case blob.Purged:
		blob = nil // stored again by this upload
	}
	if slices.ContainsFunc(old.Evidence, func(r *pb.EvidenceRef) bool { return r.Sha256 == a.Ref.Sha256 }) && blob != nil {
		return old, blob, true, nil, nil
	}
	if len(old.Evidence) >= MaxEvidencePerCase {
		return nil, nil, false, fmt.Errorf("%w: case %s has %d", ErrEvidenceLimit, old.Id, len(old.Evidence)), nil
	}
	if blob == nil && a.Storage == pb.EvidenceStorage_EVIDENCE_STORAGE_RAFT {
		for i := uint32(0); i < a.Chunks; i++ {
			ok, err := tx.HasEvidenceChunk(a.Ref.Sha256, i)
			if err != nil {
				return nil, nil, false, nil, err
			}
			if !ok {
				return nil, nil, false, fmt.Errorf("%w: %s chunk %d of %d", ErrEvidenceIncomplete, a.Ref.Sha256, i, a.Chunks), nil
			}
		}
	}
	return old, blob, false, nil, nil
}

// verifyChunks hashes the stored chunks of an attach and checks their
// sizes: every chunk but the last exactly chunk_size, the total the ref's.
func verifyChunks(tx *store.Tx, a *pb.EvidenceAttach) (bool, error) {
	h := sha256.New()
	var total int64
	for i := uint32(0); i < a.Chunks; i++ {
		err := tx.EvidenceChunk(a.Ref.Sha256, i, func(v []byte) error {
			n := int64(len(v))
			if (i+1 < a.Chunks && n != a.ChunkSize) || n == 0 || n > a.ChunkSize {
				total = -1 << 62
			}
			total += n
			_, _ = h.Write(v)
			return nil
		})
		if err != nil {
			return false, err
		}
	}
	return total == a.Ref.Size && hex.EncodeToString(h.Sum(nil)) == a.Ref.Sha256, nil
}

// evidenceAttach records the blob (once per content) and adds the
// reference to the case: a new version, queued on the federation's links
// like any other. Content the case already carries changes nothing.
func evidenceAttach(tx *store.Tx, cmd *pb.Command, a *pb.EvidenceAttach, fv *fedView, index uint64, fp []byte) (*Result, error) {
	old, blob, already, refused, err := decideAttach(tx, tx.GetCase, a, fv)
	if refused != nil || err != nil {
		return &Result{Err: refused}, err
	}
	if already {
		if err := recordEvidenceRequest(tx, cmd, old, fp, index); err != nil {
			return nil, err
		}
		return &Result{Case: old, Replayed: true}, nil
	}
	sha := a.Ref.Sha256
	if blob == nil {
		blob = &pb.EvidenceBlob{Sha256: sha, ContentType: a.Ref.ContentType, Size: a.Ref.Size, Storage: a.Storage, StoredUnixMs: cmd.StampedUnixMs}
		d := store.EvidenceStats{Blobs: 1}
		if old, err := tx.GetEvidenceBlob(sha); err == nil && old.Purged {
			// Stored again after retention removed it: counted once.
			blob.CaseIds = old.CaseIds
			d = store.EvidenceStats{Purged: -1}
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		switch a.Storage {
		case pb.EvidenceStorage_EVIDENCE_STORAGE_RAFT:
			ok, err := verifyChunks(tx, a)
			if err != nil {
				return nil, err
			}
			if !ok {
				// Drop what does not hash to the address, so the next
				// upload of this content stores it afresh.
				if _, err := tx.DeleteEvidenceChunks(sha); err != nil {
					return nil, err
				}
				return &Result{Err: fmt.Errorf("%w: %s (%d bytes in %d chunks)", ErrEvidenceMismatch, sha, a.Ref.Size, a.Chunks)}, nil
			}
			blob.Chunks, blob.ChunkSize = a.Chunks, a.ChunkSize
			d.RaftBytes = a.Ref.Size
		case pb.EvidenceStorage_EVIDENCE_STORAGE_S3:
			blob.ObjectKey = a.ObjectKey
			d.ObjectBytes = a.Ref.Size
		}
		if err := tx.AddEvidenceStats(d); err != nil {
			return nil, err
		}
	}
	if !slices.Contains(blob.CaseIds, old.Id) {
		blob.CaseIds = append(blob.CaseIds, old.Id)
	}
	if err := tx.PutEvidenceBlob(blob); err != nil {
		return nil, err
	}
	if slices.ContainsFunc(old.Evidence, func(r *pb.EvidenceRef) bool { return r.Sha256 == sha }) {
		// Bytes that retention had removed, stored again: the case keeps
		// the reference it has.
		if err := recordEvidenceRequest(tx, cmd, old, fp, index); err != nil {
			return nil, err
		}
		return &Result{Case: old}, nil
	}
	c := proto.Clone(old).(*pb.Case)
	ref := proto.Clone(a.Ref).(*pb.EvidenceRef)
	ref.ContentType, ref.Size = blob.ContentType, blob.Size
	ref.UploadedAt = timestamppb.New(time.UnixMilli(cmd.StampedUnixMs))
	ref.Node = fv.selfName()
	ref.RequestId = cmd.RequestId
	c.Evidence = append(c.Evidence, ref)
	c.Version++
	c.UpdatedAt = ref.UploadedAt
	if err := putCase(tx, old, c, cmd.LocalOffsetS); err != nil {
		return nil, err
	}
	if err := fv.emit(tx, "", fv.selfName(), c, cmd.StampedUnixMs); err != nil {
		return nil, err
	}
	if err := recordEvidenceRequest(tx, cmd, c, fp, index); err != nil {
		return nil, err
	}
	principal := ref.UploadedBy
	if principal == "" {
		principal = "system"
	}
	if err := tx.PutAudit(index, 0, &pb.AuditEvent{
		AtUnixMs: cmd.StampedUnixMs, Principal: principal, Unit: ref.UploaderUnit,
		Action: "EVIDENCE_ATTACH", CaseId: c.Id, Version: c.Version, RequestId: cmd.RequestId, Detail: sha,
	}); err != nil {
		return nil, err
	}
	return &Result{Case: c}, nil
}

func recordEvidenceRequest(tx *store.Tx, cmd *pb.Command, c *pb.Case, fp []byte, index uint64) error {
	if cmd.RequestId == "" {
		return nil
	}
	return tx.PutRequest(cmd.RequestId, &pb.RequestRecord{CaseId: c.Id, Version: c.Version, Fingerprint: fp, LogIndex: index})
}

// evidencePurge removes a blob's bytes kept in the store (retention); the
// metadata and the cases' references stay. The leader removes an object
// store's bytes once this is applied.
func evidencePurge(tx *store.Tx, cmd *pb.Command, p *pb.EvidencePurge) (*Result, error) {
	if p == nil || !ValidSHA256(p.Sha256) {
		return &Result{Err: fmt.Errorf("%w: purge: sha256 must be 64 lower-case hex digits", ErrBadCommand)}, nil
	}
	blob, err := tx.GetEvidenceBlob(p.Sha256)
	if errors.Is(err, store.ErrNotFound) {
		return &Result{Err: fmt.Errorf("evidence %s: %w", p.Sha256, store.ErrNotFound)}, nil
	}
	if err != nil {
		return nil, err
	}
	if blob.Purged {
		return &Result{Replayed: true}, nil
	}
	d := store.EvidenceStats{Purged: 1}
	switch blob.Storage {
	case pb.EvidenceStorage_EVIDENCE_STORAGE_RAFT:
		n, err := tx.DeleteEvidenceChunks(p.Sha256)
		if err != nil {
			return nil, err
		}
		d.RaftBytes = -n
	case pb.EvidenceStorage_EVIDENCE_STORAGE_S3:
		d.ObjectBytes = -blob.Size
	}
	blob.Purged, blob.PurgedUnixMs = true, cmd.StampedUnixMs
	if err := tx.PutEvidenceBlob(blob); err != nil {
		return nil, err
	}
	return &Result{}, tx.AddEvidenceStats(d)
}

// precheckEvidence decides on the leader what Apply would answer without
// writing: a chunk already stored, an attach already done, or one that
// would be refused (unknown case, held elsewhere, chunks missing).
func precheckEvidence(tx *store.Tx, ae *pb.AttachEvidence, fv *fedView, getCase func(string) (*pb.Case, error)) (*Result, error) {
	switch op := ae.GetOp().(type) {
	case *pb.AttachEvidence_Chunk:
		if err := checkChunk(op.Chunk); err != nil {
			return &Result{Err: err}, nil
		}
		stored, err := chunkStored(tx, op.Chunk)
		if err != nil || !stored {
			return nil, err
		}
		return &Result{Replayed: true}, nil
	case *pb.AttachEvidence_Attach:
		old, _, already, refused, err := decideAttach(tx, getCase, op.Attach, fv)
		switch {
		case err != nil:
			return nil, err
		case refused != nil:
			return &Result{Err: refused}, nil
		case already:
			return &Result{Case: old, Replayed: true}, nil
		}
	}
	return nil, nil
}

// checkNamedEvidence refuses an action that names evidence the case does
// not carry (upload it first).
func checkNamedEvidence(c *pb.Case, shas []string) error {
	for _, sha := range shas {
		if !slices.ContainsFunc(c.GetEvidence(), func(r *pb.EvidenceRef) bool { return r.Sha256 == sha }) {
			return &workflow.FieldError{Field: "evidence", Reason: fmt.Sprintf("case %s carries no evidence %s: upload it to the case first", c.GetId(), sha), Err: workflow.ErrInvalidArgument}
		}
	}
	return nil
}
