package evidence

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/store"
)

// Proposer commits a command through the group's log (node.Node; the
// API's Replica). A follower passes it on to the leader.
type Proposer interface {
	Propose(ctx context.Context, cmd *pb.Command) (*fsm.Result, error)
}

// Blobs reads stored blobs (*store.Store).
type Blobs interface {
	EvidenceBlob(sha string) (*pb.EvidenceBlob, error)
	ReadEvidenceChunk(sha string, index uint32) ([]byte, error)
}

// Options configure a Service.
type Options struct {
	Proposer Proposer
	Blobs    Blobs
	// Objects, when set, keeps new blobs in an object store (S3 mode);
	// nil keeps them in the group (chunks through the log).
	Objects ObjectStore
	// ObjectPrefix prefixes object keys ("evidence/").
	ObjectPrefix string
	// ChunkBytes is the size of one chunk entry (at most
	// fsm.MaxChunkBytes); MaxBytes bounds an upload; Types are the content
	// types allowed.
	ChunkBytes int
	MaxBytes   int64
	Types      []string
	// SpoolDir holds uploads while they are hashed ("" is the system's
	// temporary directory).
	SpoolDir string
	// Location reads EXIF times without a zone.
	Location *time.Location
	// Parallel chunk proposals in flight for one upload (default 4): the
	// leader batches them into fewer log writes.
	Parallel int
	Logger   *slog.Logger
}

// Service stores uploads and reads blobs back.
type Service struct {
	o   Options
	log *slog.Logger
}

// New returns a Service.
func New(o Options) *Service {
	if o.ChunkBytes <= 0 || o.ChunkBytes > fsm.MaxChunkBytes {
		o.ChunkBytes = 512 << 10
	}
	if len(o.Types) == 0 {
		o.Types = DefaultTypes
	}
	if o.Parallel <= 0 {
		o.Parallel = 4
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Service{o: o, log: o.Logger.With("component", "evidence")}
}

// MaxBytes is the upload limit.
func (s *Service) MaxBytes() int64 { return s.o.MaxBytes }

// Spool reads an upload into a temporary file, hashing it, and refuses it
// once it passes MaxBytes (ErrTooLarge) or when it is empty (ErrEmpty).
func (s *Service) Spool(r io.Reader) (*Spooled, error) { return Spool(r, s.o.SpoolDir, s.o.MaxBytes) }

// Upload describes one upload (the API checked and authorized it).
type Upload struct {
	CaseID, RequestID string
	Stage             pb.EvidenceStage
	Kind              pb.EvidenceKind
	FileName, Note    string
	Principal, Unit   string
}

// Check sniffs the spooled content's type against the allow-list
// (ErrType) and reads its EXIF: the reference Store will attach.
func (s *Service) Check(up Upload, sp *Spooled) (*pb.EvidenceRef, error) {
	ct, err := Sniff(sp.Head, s.o.Types)
	if err != nil {
		return nil, err
	}
	ref := &pb.EvidenceRef{
		Sha256: sp.SHA256, ContentType: ct, Size: sp.Size, Stage: up.Stage, Kind: up.Kind,
		FileName: up.FileName, Note: up.Note, UploadedBy: up.Principal, UploaderUnit: up.Unit,
	}
	if strings.HasPrefix(ct, "image/") {
		info, err := ReadExif(sp.Head, s.o.Location)
		if err != nil {
			s.log.Debug("unreadable EXIF kept out of the metadata", "sha256", sp.SHA256, "error", err)
		}
		ref.Exif = info
	}
	return ref, nil
}

// Store stores the spooled content and attaches it to the case: in the
// object store, or in chunks through the log (a chunk the group already
// keeps is not sent again), then the attach entry with the upload's
// request id. Content the group keeps already is attached without being
// stored again.
func (s *Service) Store(ctx context.Context, up Upload, ref *pb.EvidenceRef, sp *Spooled) (*pb.CaseResponse, error) {
	attach := &pb.EvidenceAttach{CaseId: up.CaseID, Ref: ref}
	stored := false
	if b, err := s.o.Blobs.EvidenceBlob(ref.Sha256); err == nil && !b.Purged {
		stored = true
		attach.Storage, attach.Chunks, attach.ChunkSize, attach.ObjectKey = b.Storage, b.Chunks, b.ChunkSize, b.ObjectKey
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if !stored {
		var err error
		if s.o.Objects != nil {
			attach.Storage = pb.EvidenceStorage_EVIDENCE_STORAGE_S3
			attach.ObjectKey = s.o.ObjectPrefix + ref.Sha256
			err = s.putObject(ctx, attach.ObjectKey, ref.ContentType, sp)
		} else {
			attach.Storage = pb.EvidenceStorage_EVIDENCE_STORAGE_RAFT
			attach.ChunkSize = int64(s.o.ChunkBytes)
			attach.Chunks = uint32((sp.Size + attach.ChunkSize - 1) / attach.ChunkSize)
			err = s.proposeChunks(ctx, ref.Sha256, attach.Chunks, sp)
		}
		if err != nil {
			return nil, err
		}
	}
	res, err := s.o.Proposer.Propose(ctx, &pb.Command{RequestId: up.RequestID, Body: &pb.Command_AttachEvidence{
		AttachEvidence: &pb.AttachEvidence{Op: &pb.AttachEvidence_Attach{Attach: attach}},
	}})
	if err != nil {
		return nil, err
	}
	return &pb.CaseResponse{Case: res.Case, Replayed: res.Replayed}, nil
}

func (s *Service) putObject(ctx context.Context, key, contentType string, sp *Spooled) error {
	if ok, err := s.o.Objects.Exists(ctx, key); err != nil {
		return err
	} else if ok {
		return nil
	}
	f, err := sp.Open()
	if err != nil {
		return err
	}
	defer f.Close()
	return s.o.Objects.Put(ctx, key, f, sp.Size, contentType)
}

// proposeChunks sends the chunks through the log, Parallel at a time; each
// is idempotent by (sha256, index), so a retry after a failure sends them
// again safely and the state machine keeps one copy.
func (s *Service) proposeChunks(ctx context.Context, sha string, count uint32, sp *Spooled) error {
	f, err := sp.Open()
	if err != nil {
		return err
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	sem := make(chan struct{}, s.o.Parallel)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
			cancel()
		}
		mu.Unlock()
	}
	for i := uint32(0); i < count; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		buf := make([]byte, s.o.ChunkBytes)
		n, err := f.ReadAt(buf, int64(i)*int64(s.o.ChunkBytes))
		if err != nil && !errors.Is(err, io.EOF) {
			<-sem
			fail(fmt.Errorf("read spooled upload: %w", err))
			break
		}
		wg.Add(1)
		go func(i uint32, data []byte) {
			defer wg.Done()
			defer func() { <-sem }()
			_, err := s.o.Proposer.Propose(ctx, &pb.Command{Body: &pb.Command_AttachEvidence{AttachEvidence: &pb.AttachEvidence{
				Op: &pb.AttachEvidence_Chunk{Chunk: &pb.EvidenceChunk{Sha256: sha, Index: i, Count: count, Data: data}},
			}}})
			if err != nil {
				fail(fmt.Errorf("chunk %d of %d: %w", i, count, err))
			}
		}(i, buf[:n])
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// Stream writes the bytes of blob b to w in order: from the group's
// chunks, or from the object store.
func (s *Service) Stream(ctx context.Context, b *pb.EvidenceBlob, w func([]byte) error) error {
	switch {
	case b.Purged:
		return fmt.Errorf("evidence %s: %w: removed by retention", b.Sha256, store.ErrNotFound)
	case b.Storage == pb.EvidenceStorage_EVIDENCE_STORAGE_S3:
		if s.o.Objects == nil {
			return fmt.Errorf("evidence %s is in an object store this node is not configured for (evidence.s3)", b.Sha256)
		}
		rc, err := s.o.Objects.Get(ctx, b.ObjectKey)
		if err != nil {
			return err
		}
		defer rc.Close()
		buf := make([]byte, 256<<10)
		for {
			n, err := io.ReadFull(rc, buf)
			if n > 0 {
				if werr := w(buf[:n]); werr != nil {
					return werr
				}
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil
			}
			if err != nil {
				return err
			}
		}
	default:
		for i := uint32(0); i < b.Chunks; i++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			data, err := s.o.Blobs.ReadEvidenceChunk(b.Sha256, i)
			if err != nil {
				return err
			}
			if err := w(data); err != nil {
				return err
			}
		}
		return nil
	}
}

// DeleteObject removes a purged blob's object (S3 mode).
func (s *Service) DeleteObject(ctx context.Context, b *pb.EvidenceBlob) error {
	if s.o.Objects == nil || b.Storage != pb.EvidenceStorage_EVIDENCE_STORAGE_S3 {
		return nil
	}
	return s.o.Objects.Delete(ctx, b.ObjectKey)
}
