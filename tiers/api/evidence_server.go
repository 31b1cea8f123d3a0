package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/auth"
	"github.com/cityhub/cityhub/tiers/evidence"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/store"
)

// EvidenceFetcher reads evidence whose bytes another node of the
// federation stores (the replica's federation: FetchEvidence toward the
// holder through the links).
type EvidenceFetcher interface {
	FetchEvidence(ctx context.Context, caseID, sha, holder string, w func(*pb.EvidenceBlob, []byte) error) error
}

// MaxUploadPiece bounds one data message of a gRPC upload stream.
const MaxUploadPiece = 1 << 20

// evidenceCatchUp bounds how long a replica waits for its own copy of a
// case's evidence (an upload another replica just took) before it answers.
const evidenceCatchUp = 3 * time.Second

// EvidenceServer implements cityhub.v1.EvidenceService and its REST routes.
type EvidenceServer struct {
	pb.UnimplementedEvidenceServiceServer
	replica    Replica
	svc        *evidence.Service // nil: evidence is off
	fetch      EvidenceFetcher   // nil outside a federation
	self       string            // this node's topology name ("" outside a federation)
	maxPerCase int
	g          *guard
	log        *slog.Logger
	uploads    *prometheus.CounterVec
	upBytes    prometheus.Counter
}

func newEvidenceServer(opts Options, g *guard, log *slog.Logger, reg prometheus.Registerer) *EvidenceServer {
	s := &EvidenceServer{
		replica: opts.Replica, svc: opts.Evidence, fetch: opts.EvidenceFetcher, self: opts.FederationNode,
		maxPerCase: opts.EvidenceMaxPerCase, g: g, log: log.With("component", "evidence"),
		uploads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cityhub_evidence_uploads_total", Help: "Evidence uploads by outcome (stored, attached: content the group kept already, replayed, refused).",
		}, []string{"outcome"}),
		upBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cityhub_evidence_upload_bytes_total", Help: "Bytes of evidence uploads accepted.",
		}),
	}
	if s.maxPerCase <= 0 || s.maxPerCase > fsm.MaxEvidencePerCase {
		s.maxPerCase = fsm.MaxEvidencePerCase
	}
	reg.MustRegister(s.uploads, s.upBytes, &evidenceCollector{st: opts.Replica})
	return s
}

// --- upload ---

func checkUploadHeader(h *pb.UploadEvidenceHeader, maxBytes int64) error {
	if h == nil {
		return invalid("header", "the first message of an upload carries its header")
	}
	if err := checkCaseID(h.CaseId); err != nil {
		return err
	}
	if err := checkRequestID(h.RequestId); err != nil {
		return err
	}
	if _, ok := pb.EvidenceStage_name[int32(h.Stage)]; !ok || h.Stage == pb.EvidenceStage_EVIDENCE_STAGE_UNSPECIFIED {
		return invalid("stage", "one of REPORT, HANDLING, CHECK (上报、处置、核查)")
	}
	if _, ok := pb.EvidenceKind_name[int32(h.Kind)]; !ok {
		return invalid("kind", "one of BEFORE, AFTER, OTHER")
	}
	if !printable(h.FileName, 255) {
		return invalid("file_name", "at most 255 printable characters")
	}
	if !printable(h.Note, 500) {
		return invalid("note", "at most 500 printable characters")
	}
	if h.Size < 0 {
		return invalid("size", "must not be negative")
	}
	if maxBytes > 0 && h.Size > maxBytes {
		return tooLarge("size", maxBytes)
	}
	return nil
}

func printable(s string, max int) bool {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > max {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) < 0
}

// tooLarge is the ResourceExhausted status naming field.
func tooLarge(field string, max int64) error {
	return fieldStatus(codes.ResourceExhausted, field, fmt.Sprintf("larger than %d bytes (evidence.max_bytes)", max))
}

func fieldStatus(code codes.Code, field, reason string) error {
	st := status.New(code, field+": "+reason)
	if d, err := st.WithDetails(fieldViolation(field, reason)); err == nil {
		st = d
	}
	return st.Err()
}

// upload authorizes, spools, checks and stores one upload. Everything it
// refuses is refused before a chunk is proposed.
func (s *EvidenceServer) upload(ctx context.Context, h *pb.UploadEvidenceHeader, body io.Reader) (*pb.UploadEvidenceResponse, error) {
	if s.svc == nil {
		return nil, toStatus(errEvidenceOff)
	}
	if err := checkUploadHeader(h, s.svc.MaxBytes()); err != nil {
		return nil, s.refused(toStatus(err))
	}
	p := s.g.principal(ctx)
	if err := s.g.require(ctx, auth.EvidenceUpload, nil); err != nil {
		return nil, s.refused(err)
	}
	c, err := s.caseHere(ctx, h.CaseId, func(c *pb.Case) bool { return mayOn(p, auth.EvidenceUpload, c) })
	if err != nil {
		return nil, s.refused(toStatus(err))
	}
	if err := s.g.require(ctx, auth.EvidenceUpload, c); err != nil {
		return nil, s.refused(err)
	}
	if c.Holder != "" && s.self != "" && c.Holder != s.self {
		return nil, s.refused(toStatus(&fsm.NotHolderError{CaseID: c.Id, Holder: c.Holder}))
	}
	sp, err := s.svc.Spool(body)
	if err != nil {
		return nil, s.refused(s.bodyStatus(err))
	}
	defer sp.Remove()
	up := evidence.Upload{CaseID: h.CaseId, RequestID: h.RequestId, Stage: h.Stage, Kind: h.Kind, FileName: h.FileName, Note: h.Note}
	if p != nil {
		up.Principal, up.Unit = p.ID, p.Unit
	}
	ref, err := s.svc.Check(up, sp)
	if err != nil {
		return nil, s.refused(fieldStatus(codes.InvalidArgument, "content_type", err.Error()))
	}
	has := slices.ContainsFunc(c.Evidence, func(r *pb.EvidenceRef) bool { return r.Sha256 == ref.Sha256 })
	if !has && len(c.Evidence) >= s.maxPerCase {
		return nil, s.refused(fieldStatus(codes.FailedPrecondition, "case_id", fmt.Sprintf("%v: case %s has %d", errEvidencePerCase, c.Id, len(c.Evidence))))
	}
	resp, err := s.svc.Store(ctx, up, ref, sp)
	if err != nil {
		return nil, s.refused(toStatus(err))
	}
	out := &pb.UploadEvidenceResponse{Case: resp.Case, Replayed: resp.Replayed}
	for _, r := range resp.GetCase().GetEvidence() {
		if r.Sha256 == ref.Sha256 {
			out.Evidence = r
		}
	}
	switch {
	case resp.Replayed:
		s.uploads.WithLabelValues("replayed").Inc()
	default:
		s.uploads.WithLabelValues("stored").Inc()
		s.upBytes.Add(float64(sp.Size))
	}
	withAllowed(out.Case)
	if cs := (&CaseServer{g: s.g}); out.Case != nil {
		cs.redact(ctx, out.Case)
	}
	return out, nil
}

func (s *EvidenceServer) refused(err error) error {
	s.uploads.WithLabelValues("refused").Inc()
	return err
}

// bodyStatus is the status of a body the spool refused.
func (s *EvidenceServer) bodyStatus(err error) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, evidence.ErrTooLarge), errors.As(err, &mbe):
		return tooLarge("data", s.svc.MaxBytes())
	case errors.Is(err, evidence.ErrEmpty):
		return fieldStatus(codes.InvalidArgument, "data", "the upload has no content")
	}
	if st, ok := status.FromError(err); ok {
		return st.Err()
	}
	return toStatus(err)
}

// Upload takes a client stream: the header, then the bytes.
func (s *EvidenceServer) Upload(stream pb.EvidenceService_UploadServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	resp, err := s.upload(stream.Context(), first.GetHeader(), &uploadStream{stream: stream})
	if err != nil {
		return err
	}
	return stream.SendAndClose(resp)
}

// uploadStream reads the data messages of an upload stream as a body.
type uploadStream struct {
	stream pb.EvidenceService_UploadServer
	buf    []byte
	done   bool
}

func (u *uploadStream) Read(p []byte) (int, error) {
	for len(u.buf) == 0 {
		if u.done {
			return 0, io.EOF
		}
		m, err := u.stream.Recv()
		if errors.Is(err, io.EOF) {
			u.done = true
			return 0, io.EOF
		}
		if err != nil {
			return 0, err
		}
		d, ok := m.Part.(*pb.UploadEvidenceRequest_Data)
		if !ok {
			return 0, fieldStatus(codes.InvalidArgument, "data", "only the first message carries a header")
		}
		if len(d.Data) > MaxUploadPiece {
			return 0, fieldStatus(codes.InvalidArgument, "data", fmt.Sprintf("a piece of %d bytes; at most %d per message", len(d.Data), MaxUploadPiece))
		}
		u.buf = d.Data
	}
	n := copy(p, u.buf)
	u.buf = u.buf[n:]
	return n, nil
}

// --- reads ---

// caseHere reads case id from this replica's store. On a follower a case
// that is missing or not yet as wanted (an upload or a report another
// replica just took) is read again until the store catches up
// (evidenceCatchUp at most).
func (s *EvidenceServer) caseHere(ctx context.Context, id string, ok func(*pb.Case) bool) (*pb.Case, error) {
	deadline := time.Now().Add(evidenceCatchUp)
	for {
		c, err := s.replica.Store().GetCase(id)
		if err == nil && ok(c) {
			return c, nil
		}
		if (err != nil && !errors.Is(err, store.ErrNotFound)) || !time.Now().Before(deadline) {
			return c, err
		}
		select {
		case <-ctx.Done():
			return c, err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// mayOn reports whether p may use perm on c (anyone, with authentication
// off).
func mayOn(p *auth.Principal, perm auth.Permission, c *pb.Case) bool {
	return p == nil || auth.Authorize(p, perm, c) == nil
}

// readable returns the case and its evidence sha when the caller may read
// the case.
func (s *EvidenceServer) readable(ctx context.Context, caseID, sha string) (*pb.Case, *pb.EvidenceRef, error) {
	if err := checkCaseID(caseID); err != nil {
		return nil, nil, toStatus(err)
	}
	if sha != "" && !fsm.ValidSHA256(sha) {
		return nil, nil, toStatus(invalid("sha256", "64 lower-case hex digits"))
	}
	if err := s.g.require(ctx, auth.CaseRead, nil); err != nil {
		return nil, nil, err
	}
	refOf := func(c *pb.Case) *pb.EvidenceRef {
		for _, r := range c.GetEvidence() {
			if r.Sha256 == sha {
				return r
			}
		}
		return nil
	}
	p := s.g.principal(ctx)
	c, err := s.caseHere(ctx, caseID, func(c *pb.Case) bool {
		return mayOn(p, auth.CaseRead, c) && (sha == "" || refOf(c) != nil)
	})
	if err != nil {
		return nil, nil, toStatus(err)
	}
	if err := s.g.require(ctx, auth.CaseRead, c); err != nil {
		return nil, nil, err
	}
	if sha == "" {
		return c, nil, nil
	}
	ref := refOf(c)
	if ref == nil {
		return nil, nil, toStatus(fmt.Errorf("%w: %s on case %s: %w", errEvidenceNotOnCase, sha, caseID, store.ErrNotFound))
	}
	return c, ref, nil
}

// stream writes the bytes of ref (attached to case c) to w: from this
// group, or through the federation from the node that stores them.
func (s *EvidenceServer) stream(ctx context.Context, c *pb.Case, ref *pb.EvidenceRef, w func([]byte) error) error {
	local := ref.Node == "" || ref.Node == s.self
	var blob *pb.EvidenceBlob
	deadline := time.Now().Add(evidenceCatchUp)
	for {
		b, err := s.replica.Store().EvidenceBlob(ref.Sha256)
		if err == nil {
			blob = b
			break
		}
		if !errors.Is(err, store.ErrNotFound) {
			return toStatus(err)
		}
		if !local || !time.Now().Before(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return toStatus(ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if blob != nil && s.svc != nil {
		return toStatus(s.svc.Stream(ctx, blob, w))
	}
	if local || s.fetch == nil {
		return toStatus(fmt.Errorf("%w: %s: %w", errEvidenceNotHere, ref.Sha256, store.ErrNotFound))
	}
	err := s.fetch.FetchEvidence(ctx, c.Id, ref.Sha256, ref.Node, func(_ *pb.EvidenceBlob, data []byte) error { return w(data) })
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return err
		}
		return status.Errorf(codes.Unavailable, "fetch evidence %s from %s: %v", ref.Sha256, ref.Node, err)
	}
	return nil
}

// GetEvidence streams the reference, then the bytes.
func (s *EvidenceServer) GetEvidence(r *pb.GetEvidenceRequest, stream pb.EvidenceService_GetEvidenceServer) error {
	if r.Sha256 == "" {
		return toStatus(invalid("sha256", "required"))
	}
	c, ref, err := s.readable(stream.Context(), r.CaseId, r.Sha256)
	if err != nil {
		return err
	}
	first := true
	send := func(data []byte) error {
		m := &pb.EvidenceData{Data: data}
		if first {
			m.Evidence, first = ref, false
		}
		return stream.Send(m)
	}
	if err := s.stream(stream.Context(), c, ref, func(b []byte) error {
		for len(b) > 0 { // pieces well under the client's message limit
			n := min(len(b), MaxUploadPiece)
			if err := send(b[:n]); err != nil {
				return err
			}
			b = b[n:]
		}
		return nil
	}); err != nil {
		return err
	}
	if first {
		return send(nil)
	}
	return nil
}

// ListEvidence lists a case's evidence.
func (s *EvidenceServer) ListEvidence(ctx context.Context, r *pb.ListEvidenceRequest) (*pb.ListEvidenceResponse, error) {
	c, _, err := s.readable(ctx, r.CaseId, "")
	if err != nil {
		return nil, err
	}
	return &pb.ListEvidenceResponse{Evidence: c.Evidence}, nil
}

// evidenceCollector exports the evidence counters of this replica's store.
type evidenceCollector struct {
	st interface{ Store() *store.Store }
}

var (
	evidenceBlobsDesc  = prometheus.NewDesc("cityhub_evidence_blobs", "Distinct evidence contents recorded by the group (purged ones too).", nil, nil)
	evidenceBytesDesc  = prometheus.NewDesc("cityhub_evidence_stored_bytes", "Bytes of evidence kept, by storage (raft: on every replica; s3: in the bucket).", []string{"storage"}, nil)
	evidencePurgedDesc = prometheus.NewDesc("cityhub_evidence_purged", "Evidence contents whose bytes retention removed.", nil, nil)
)

func (c *evidenceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- evidenceBlobsDesc
	ch <- evidenceBytesDesc
	ch <- evidencePurgedDesc
}

func (c *evidenceCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.st.Store()
	if st == nil {
		return
	}
	es, err := st.EvidenceStats()
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(evidenceBlobsDesc, prometheus.GaugeValue, float64(es.Blobs))
	ch <- prometheus.MustNewConstMetric(evidenceBytesDesc, prometheus.GaugeValue, float64(es.RaftBytes), "raft")
	ch <- prometheus.MustNewConstMetric(evidenceBytesDesc, prometheus.GaugeValue, float64(es.ObjectBytes), "s3")
	ch <- prometheus.MustNewConstMetric(evidencePurgedDesc, prometheus.GaugeValue, float64(es.Purged))
}
