package wire

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
)

// EvidenceSource serves the bytes of a case's evidence to a neighbour
// (the replica: from its own group, or fetched onward toward the node that
// stores them). It decides whether the case is one this node has and
// carries that evidence.
type EvidenceSource interface {
	ServeEvidence(ctx context.Context, from, caseID, sha, holder string, w func(*pb.EvidenceBlob, []byte) error) error
}

// SetEvidence installs the evidence source. Call it before the server is
// registered; without one FetchEvidence answers Unimplemented.
func (s *Server) SetEvidence(src EvidenceSource) { s.evidence = src }

// FetchEvidence streams a case's evidence to a neighbour, authorized as
// every federation call is: the caller is the parent or a child, named by
// its certificate. Any replica may answer (one that lacks the bytes answers
// Unavailable, and the caller tries the next).
func (s *Server) FetchEvidence(req *pb.FetchEvidenceRequest, stream pb.FederationService_FetchEvidenceServer) error {
	ctx := stream.Context()
	if err := s.authorize(ctx, req.GetFrom()); err != nil {
		return err
	}
	if req.GetTo() != s.self {
		return status.Errorf(codes.InvalidArgument, "to: this is node %q, not %q", s.self, req.GetTo())
	}
	if !fsm.ValidSHA256(req.GetSha256()) {
		return status.Error(codes.InvalidArgument, "sha256: 64 lower-case hex digits")
	}
	if req.GetCaseId() == "" || len(req.CaseId) > 64 {
		return status.Error(codes.InvalidArgument, "case_id: required")
	}
	if s.evidence == nil {
		return status.Errorf(codes.Unimplemented, "node %q serves no evidence", s.self)
	}
	first := true
	err := s.evidence.ServeEvidence(ctx, req.From, req.CaseId, req.Sha256, req.Holder, func(b *pb.EvidenceBlob, data []byte) error {
		m := &pb.FetchEvidenceResponse{Data: data}
		if first {
			m.Blob, first = b, false
		}
		return stream.Send(m)
	})
	return callStatus(err)
}
