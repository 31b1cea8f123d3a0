package fsm_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/store"
)

func chunkCmd(sha string, i, n uint32, data []byte) *pb.Command {
	return &pb.Command{StampedUnixMs: stamp, Body: &pb.Command_AttachEvidence{AttachEvidence: &pb.AttachEvidence{
		Op: &pb.AttachEvidence_Chunk{Chunk: &pb.EvidenceChunk{Sha256: sha, Index: i, Count: n, Data: data}}}}}
}

func attachCmd(reqID, caseID, sha string, size int64, chunks uint32, chunkSize int64, at int64) *pb.Command {
	return &pb.Command{RequestId: reqID, StampedUnixMs: at, Body: &pb.Command_AttachEvidence{AttachEvidence: &pb.AttachEvidence{
		Op: &pb.AttachEvidence_Attach{Attach: &pb.EvidenceAttach{
			CaseId: caseID, Storage: pb.EvidenceStorage_EVIDENCE_STORAGE_RAFT, Chunks: chunks, ChunkSize: chunkSize,
			Ref: &pb.EvidenceRef{Sha256: sha, ContentType: "image/jpeg", Size: size, Stage: pb.EvidenceStage_EVIDENCE_STAGE_REPORT,
				Kind: pb.EvidenceKind_EVIDENCE_KIND_BEFORE, UploadedBy: "acct:insp"}}}}}}
}

func shaOf(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// Chunks are stored once by (sha256, index); the attach checks them against
// the address, records the blob once and adds the reference to the case as
// a new version; a second attach of the same content changes nothing.
func TestEvidenceChunksAttachOnce(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	c := mustApply(t, f, 1, report("r1", stamp, "暴露垃圾")).Case
	data := bytes.Repeat([]byte("photo-bytes-"), 1000) // 12,000 bytes
	sha := shaOf(data)
	const cs = 5000
	idx := uint64(2)
	apply := func(cmd *pb.Command) *fsm.Result { idx++; return mustApply(t, f, idx, cmd) }
	// The attach before every chunk is stored is refused and writes nothing.
	idx++
	refused(t, f, idx, attachCmd("up-1", c.Id, sha, int64(len(data)), 3, cs, stamp+minute), fsm.ErrEvidenceIncomplete)
	for i := 0; i < 3; i++ {
		apply(chunkCmd(sha, uint32(i), 3, data[i*cs:min(len(data), (i+1)*cs)]))
	}
	// A retried chunk is not stored twice.
	if r := apply(chunkCmd(sha, 1, 3, data[cs:2*cs])); !r.Replayed {
		t.Errorf("a retried chunk was applied again: %+v", r)
	}
	r := apply(attachCmd("up-1", c.Id, sha, int64(len(data)), 3, cs, stamp+minute))
	if r.Case.Version != c.Version+1 || len(r.Case.Evidence) != 1 {
		t.Fatalf("after attach: version %d, %d refs", r.Case.Version, len(r.Case.Evidence))
	}
	ref := r.Case.Evidence[0]
	if ref.Sha256 != sha || ref.UploadedAt.AsTime().UnixMilli() != stamp+minute || ref.RequestId != "up-1" || ref.UploadedBy != "acct:insp" {
		t.Errorf("ref %v", ref)
	}
	// The same request again: the first result.
	if r := apply(attachCmd("up-1", c.Id, sha, int64(len(data)), 3, cs, stamp+2*minute)); !r.Replayed || r.Case.Version != c.Version+1 {
		t.Errorf("retry of up-1: %+v", r)
	}
	// The same content under another request id: attached already.
	if r := apply(attachCmd("up-2", c.Id, sha, int64(len(data)), 3, cs, stamp+2*minute)); !r.Replayed || len(r.Case.Evidence) != 1 || r.Case.Version != c.Version+1 {
		t.Errorf("second upload of the same content: %+v", r)
	}
	st, err := s.EvidenceStats()
	if err != nil || st.Blobs != 1 || st.RaftBytes != int64(len(data)) {
		t.Errorf("stats %+v %v, want 1 blob of %d bytes", st, err, len(data))
	}
	var got []byte
	for i := uint32(0); i < 3; i++ {
		b, err := s.ReadEvidenceChunk(sha, i)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b...)
	}
	if !bytes.Equal(got, data) {
		t.Error("stored chunks differ from the upload")
	}
	// The same content on a second case: no chunk needed, one blob.
	c2 := apply(report("r2", stamp, "另一处")).Case
	if r := apply(attachCmd("up-3", c2.Id, sha, int64(len(data)), 3, cs, stamp+3*minute)); len(r.Case.Evidence) != 1 {
		t.Errorf("attach to a second case: %+v", r)
	}
	b, _ := s.EvidenceBlob(sha)
	if len(b.CaseIds) != 2 || b.CaseIds[1] != c2.Id {
		t.Errorf("blob cases %v", b.CaseIds)
	}
	if st, _ := s.EvidenceStats(); st.Blobs != 1 {
		t.Errorf("blobs %d after a second case, want 1", st.Blobs)
	}
	// Retention removes the bytes, keeps the metadata.
	apply(&pb.Command{StampedUnixMs: stamp + 4*minute, Body: &pb.Command_AttachEvidence{AttachEvidence: &pb.AttachEvidence{Op: &pb.AttachEvidence_Purge{Purge: &pb.EvidencePurge{Sha256: sha}}}}})
	if b, _ := s.EvidenceBlob(sha); !b.Purged {
		t.Error("not purged")
	}
	if _, err := s.ReadEvidenceChunk(sha, 0); err == nil {
		t.Error("a purged chunk is still stored")
	}
	if st, _ := s.EvidenceStats(); st.RaftBytes != 0 || st.Purged != 1 {
		t.Errorf("stats after purge %+v", st)
	}
}

// Chunks that do not hash to the address are refused at the attach and
// dropped, so an upload of the right bytes stores them afresh.
func TestEvidenceMismatchIsRefusedAndDropped(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	c := mustApply(t, f, 1, report("r1", stamp, "暴露垃圾")).Case
	data := []byte("the real photo bytes")
	sha := shaOf(data)
	mustApply(t, f, 2, chunkCmd(sha, 0, 1, []byte("other bytes, same len")))
	refused(t, f, 3, attachCmd("up-1", c.Id, sha, int64(len(data)), 1, 1024, stamp), fsm.ErrEvidenceMismatch)
	if _, err := s.ReadEvidenceChunk(sha, 0); err == nil {
		t.Error("the mismatched chunk was kept")
	}
	mustApply(t, f, 4, chunkCmd(sha, 0, 1, data))
	if r := mustApply(t, f, 5, attachCmd("up-2", c.Id, sha, int64(len(data)), 1, 1024, stamp)); len(r.Case.Evidence) != 1 {
		t.Errorf("attach after a correct upload: %+v", r)
	}
}

// Malformed evidence commands are refused, never panic, and leave no
// record behind.
func TestEvidenceBadCommands(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	c := mustApply(t, f, 1, report("r1", stamp, "x")).Case
	sha := shaOf([]byte("x"))
	bad := []*pb.Command{
		{Body: &pb.Command_AttachEvidence{AttachEvidence: &pb.AttachEvidence{}}},
		chunkCmd("NOT-HEX", 0, 1, []byte("x")),
		chunkCmd(sha, 1, 1, []byte("x")),
		chunkCmd(sha, 0, 1, nil),
		chunkCmd(sha, 0, 1, make([]byte, fsm.MaxChunkBytes+1)),
		attachCmd("a1", c.Id, sha, 1, 2, 1024, stamp),   // 2 chunks cannot hold 1 byte
		attachCmd("a2", c.Id, "abc", 1, 1, 1024, stamp), // not a sha
		attachCmd("a3", "", sha, 1, 1, 1024, stamp),     // no case
		attachCmd("a4", c.Id, sha, 0, 1, 1024, stamp),   // no size
		attachCmd("a5", c.Id, sha, 1, 1, 1<<21, stamp),  // chunk too large
	}
	before := records(t, s, true)
	for i, cmd := range bad {
		refused(t, f, uint64(2+i), cmd, fsm.ErrBadCommand)
	}
	// An unknown case.
	refused(t, f, 20, attachCmd("a6", caseID(99), sha, 1, 1, 1024, stamp), store.ErrNotFound)
	sameRecords(t, "after refused evidence commands", before, records(t, s, true))
}

// Content whose bytes retention removed, uploaded again to the case that
// carries it: the bytes are stored again, the case keeps its one reference.
func TestEvidenceStoredAgainAfterPurge(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	c := mustApply(t, f, 1, report("r1", stamp, "x")).Case
	data := []byte("a photo's bytes")
	sha := shaOf(data)
	mustApply(t, f, 2, chunkCmd(sha, 0, 1, data))
	v := mustApply(t, f, 3, attachCmd("u1", c.Id, sha, int64(len(data)), 1, 1024, stamp)).Case.Version
	mustApply(t, f, 4, &pb.Command{StampedUnixMs: stamp, Body: &pb.Command_AttachEvidence{AttachEvidence: &pb.AttachEvidence{Op: &pb.AttachEvidence_Purge{Purge: &pb.EvidencePurge{Sha256: sha}}}}})
	mustApply(t, f, 5, chunkCmd(sha, 0, 1, data))
	r := mustApply(t, f, 6, attachCmd("u2", c.Id, sha, int64(len(data)), 1, 1024, stamp))
	if len(r.Case.Evidence) != 1 || r.Case.Version != v {
		t.Errorf("after storing again: %d refs, version %d (was %d)", len(r.Case.Evidence), r.Case.Version, v)
	}
	if b, _ := s.EvidenceBlob(sha); b.Purged {
		t.Error("still purged")
	}
	if st, _ := s.EvidenceStats(); st.Blobs != 1 || st.Purged != 0 || st.RaftBytes != int64(len(data)) {
		t.Errorf("stats %+v", st)
	}
}
