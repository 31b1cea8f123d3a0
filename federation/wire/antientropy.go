package wire

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// AntiEntropyHandler serves the anti-entropy calls of FederationService
// (federation/antientropy.Handler) once the Server has authorized the
// caller exactly as for Deliver, checked the addressee and that this
// replica leads.
type AntiEntropyHandler interface {
	Digest(ctx context.Context, req *pb.DigestRequest) (*pb.DigestResponse, error)
	CaseVersions(ctx context.Context, req *pb.CaseVersionsRequest) (*pb.CaseVersionsResponse, error)
	FetchCases(ctx context.Context, req *pb.FetchCasesRequest) (*pb.FetchCasesResponse, error)
	Repair(ctx context.Context, req *pb.RepairRequest) (*pb.RepairResponse, error)
}

// SetAntiEntropy installs the anti-entropy handler. Call it before the
// server is registered; without one the calls answer Unimplemented.
func (s *Server) SetAntiEntropy(h AntiEntropyHandler) { s.antiEntropy = h }

// antiEntropy checks a call the way Deliver does: the caller is the
// neighbour its certificate names, the call is meant for this node, and
// this replica leads (a follower answers Unavailable, so the caller moves
// on to the next replica).
func (s *Server) antiEntropyCall(ctx context.Context, from, to string) (AntiEntropyHandler, error) {
	if err := s.authorize(ctx, from); err != nil {
		return nil, err
	}
	if to != s.self {
		return nil, status.Errorf(codes.InvalidArgument, "to: this is node %q, not %q", s.self, to)
	}
	if s.antiEntropy == nil {
		return nil, status.Errorf(codes.Unimplemented, "node %q runs no anti-entropy", s.self)
	}
	if !s.local.IsLeader() {
		return nil, status.Errorf(codes.Unavailable, "node %q: this replica is not the leader", s.self)
	}
	return s.antiEntropy, nil
}

// Digest summarises the cases shared with the caller, by bucket.
func (s *Server) Digest(ctx context.Context, req *pb.DigestRequest) (*pb.DigestResponse, error) {
	h, err := s.antiEntropyCall(ctx, req.GetFrom(), req.GetTo())
	if err != nil {
		return nil, err
	}
	resp, err := h.Digest(ctx, req)
	return resp, callStatus(err)
}

// CaseVersions lists the versions of the shared cases in some buckets.
func (s *Server) CaseVersions(ctx context.Context, req *pb.CaseVersionsRequest) (*pb.CaseVersionsResponse, error) {
	h, err := s.antiEntropyCall(ctx, req.GetFrom(), req.GetTo())
	if err != nil {
		return nil, err
	}
	resp, err := h.CaseVersions(ctx, req)
	return resp, callStatus(err)
}

// FetchCases returns stored copies of cases.
func (s *Server) FetchCases(ctx context.Context, req *pb.FetchCasesRequest) (*pb.FetchCasesResponse, error) {
	h, err := s.antiEntropyCall(ctx, req.GetFrom(), req.GetTo())
	if err != nil {
		return nil, err
	}
	resp, err := h.FetchCases(ctx, req)
	return resp, callStatus(err)
}

// Repair applies the caller's authoritative copies and drops through this
// group's log.
func (s *Server) Repair(ctx context.Context, req *pb.RepairRequest) (*pb.RepairResponse, error) {
	h, err := s.antiEntropyCall(ctx, req.GetFrom(), req.GetTo())
	if err != nil {
		return nil, err
	}
	resp, err := h.Repair(ctx, req)
	return resp, callStatus(err)
}
