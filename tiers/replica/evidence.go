package replica

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cityhub/cityhub/config"
	"github.com/cityhub/cityhub/federation/wire"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/client"
	"github.com/cityhub/cityhub/tiers/evidence"
	"github.com/cityhub/cityhub/tiers/node"
	"github.com/cityhub/cityhub/tiers/store"
)

// nodeBlobs reads blobs from the node's current store.
type nodeBlobs struct{ n *node.Node }

func (b nodeBlobs) EvidenceBlob(sha string) (*pb.EvidenceBlob, error) {
	return b.n.Store().EvidenceBlob(sha)
}

func (b nodeBlobs) ReadEvidenceChunk(sha string, i uint32) ([]byte, error) {
	return b.n.Store().ReadEvidenceChunk(sha, i)
}

// newEvidence builds the replica's evidence service from evidence.*: the
// bytes in the group (chunks through the log) or in the configured bucket.
func newEvidence(ctx context.Context, cfg config.Config, n *node.Node, logger *slog.Logger) (*evidence.Service, error) {
	e := cfg.Evidence
	var objects evidence.ObjectStore
	if e.Store == config.EvidenceStoreS3 {
		secret, err := os.ReadFile(e.S3.SecretKeyFile)
		if err != nil {
			return nil, fmt.Errorf("evidence.s3.secret_key_file: %w", err)
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		s3, err := evidence.NewS3(cctx, evidence.S3Config{
			Endpoint: e.S3.Endpoint, Bucket: e.S3.Bucket, Prefix: e.S3.Prefix, Region: e.S3.Region,
			AccessKey: e.S3.AccessKey, SecretKey: strings.TrimSpace(string(secret)), UseTLS: e.S3.TLS,
		})
		if err != nil {
			return nil, err
		}
		objects = s3
	}
	return evidence.New(evidence.Options{
		Proposer: n, Blobs: nodeBlobs{n}, Objects: objects, ObjectPrefix: e.S3.Prefix,
		ChunkBytes: e.ChunkBytes, MaxBytes: e.MaxBytes, Types: e.Types, SpoolDir: e.SpoolDir,
		Location: cfg.Location(), Logger: logger,
	}), nil
}

// --- the federation's side: serving and fetching evidence over the links ---

// evidenceLinks fetch evidence from neighbours (FederationService.
// FetchEvidence) and serve it to them.
type evidenceLinks struct {
	f   *federation
	svc *evidence.Service

	mu    sync.Mutex
	peers map[string]*wire.Peer
}

func (e *evidenceLinks) peer(name string) (*wire.Peer, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p, ok := e.peers[name]; ok {
		return p, nil
	}
	n, ok := e.f.topo.Node(name)
	if !ok {
		return nil, fmt.Errorf("node %q is not in the topology", name)
	}
	p := wire.NewPeer(name, n.Replicas, e.f.dial(name))
	e.peers[name] = p
	return p, nil
}

func (e *evidenceLinks) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.peers {
		p.Close()
	}
}

// fetchTimeout bounds one fetch from a neighbour's replica.
const fetchTimeout = 60 * time.Second

// FetchEvidence implements api.EvidenceFetcher: the bytes of sha (attached
// to caseID) from the neighbour toward holder, which serves them from its
// group or fetches them onward. The content is checked against its address
// before any of it is written to w.
func (e *evidenceLinks) FetchEvidence(ctx context.Context, caseID, sha, holder string, w func(*pb.EvidenceBlob, []byte) error) error {
	next, _, err := e.f.topo.Route(e.f.self, holder)
	if err != nil || next == "" {
		return status.Errorf(codes.NotFound, "evidence %s: no route from %s to %s: %v", sha, e.f.self, holder, err)
	}
	p, err := e.peer(next)
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	var (
		blob   *pb.EvidenceBlob
		pieces [][]byte
	)
	err = p.Round(ctx, client.Policy{}, func(ctx context.Context, c pb.FederationServiceClient) error {
		blob, pieces = nil, nil
		ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		defer cancel()
		st, err := c.FetchEvidence(ctx, &pb.FetchEvidenceRequest{From: e.f.self, To: next, CaseId: caseID, Sha256: sha, Holder: holder})
		if err != nil {
			return err
		}
		h := sha256.New()
		var total int64
		for {
			m, err := st.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			if m.Blob != nil && blob == nil {
				blob = m.Blob
			}
			total += int64(len(m.Data))
			if e.svc != nil && total > e.svc.MaxBytes() && e.svc.MaxBytes() > 0 {
				return status.Errorf(codes.ResourceExhausted, "evidence %s from %s: more than %d bytes", sha, next, e.svc.MaxBytes())
			}
			_, _ = h.Write(m.Data)
			pieces = append(pieces, m.Data)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != sha {
			// A replica that serves other bytes is passed over.
			return status.Errorf(codes.Unavailable, "evidence from %s hashes to %s, not %s", next, got, sha)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, d := range pieces {
		if err := w(blob, d); err != nil {
			return err
		}
	}
	return nil
}

// ServeEvidence implements wire.EvidenceSource: a neighbour asks for the
// bytes of evidence attached to a case this node has. They come from this
// group when it keeps them, else from the next node toward holder.
func (e *evidenceLinks) ServeEvidence(ctx context.Context, from, caseID, sha, holder string, w func(*pb.EvidenceBlob, []byte) error) error {
	n := e.f.node
	c, err := n.Store().GetCase(caseID)
	var ref *pb.EvidenceRef
	if err == nil {
		if i := slices.IndexFunc(c.Evidence, func(r *pb.EvidenceRef) bool { return r.Sha256 == sha }); i >= 0 {
			ref = c.Evidence[i]
		}
	}
	if errors.Is(err, store.ErrNotFound) || (err == nil && ref == nil) {
		if !n.IsLeader() {
			return status.Errorf(codes.Unavailable, "node %s: this replica does not have case %s with evidence %s yet", e.f.self, caseID, sha)
		}
		return status.Errorf(codes.NotFound, "node %s has no case %s carrying evidence %s", e.f.self, caseID, sha)
	}
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	blob, err := n.Store().EvidenceBlob(sha)
	switch {
	case err == nil && blob.Purged:
		return status.Errorf(codes.NotFound, "evidence %s was removed by retention", sha)
	case err == nil:
		if e.svc == nil {
			return status.Errorf(codes.Unavailable, "node %s keeps no evidence service", e.f.self)
		}
		return e.svc.Stream(ctx, blob, func(d []byte) error {
			for len(d) > 0 {
				k := min(len(d), 1<<20)
				if err := w(blob, d[:k]); err != nil {
					return err
				}
				d = d[k:]
			}
			return nil
		})
	case !errors.Is(err, store.ErrNotFound):
		return status.Error(codes.Internal, err.Error())
	}
	// Onward toward the node this node's copy of the case names, not the
	// caller's word.
	holder = ref.Node
	if holder == "" || holder == e.f.self {
		return status.Errorf(codes.Unavailable, "node %s: this replica does not keep evidence %s", e.f.self, sha)
	}
	if holder == from {
		return status.Errorf(codes.NotFound, "evidence %s: %s asked for what it stores itself", sha, from)
	}
	return e.FetchEvidence(ctx, caseID, sha, holder, w)
}
