package antientropy

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cityhub/cityhub/federation/topology"
	"github.com/cityhub/cityhub/federation/wire"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/node"
	"github.com/cityhub/cityhub/tiers/store"
)

const (
	// MaxFetch bounds the ids of one FetchCases call.
	MaxFetch = 1024
	// MaxRepair bounds the copies and drops of one Repair call.
	MaxRepair = 4096
)

// Handler is the peer's side of anti-entropy: the Digest, CaseVersions,
// FetchCases and Repair calls of FederationService. The relay's Server
// authorizes the caller (certificate, neighbour), checks the addressee and
// that this replica leads, then hands the call here (wire.Server.
// SetAntiEntropy). Reads come from the leader's store; a repair is
// proposed through the leader's Raft log as RepairCases.
type Handler struct {
	self  string
	topo  *topology.Topology
	local node.Leader
}

var _ wire.AntiEntropyHandler = (*Handler)(nil)

// NewHandler returns node self's side of anti-entropy.
func NewHandler(self string, topo *topology.Topology, local node.Leader) *Handler {
	return &Handler{self: self, topo: topo, local: local}
}

func (h *Handler) link(from string, buckets uint32, checkBuckets bool) (*link, error) {
	l, err := newLink(h.topo, h.self, from)
	if err != nil {
		return nil, status.Errorf(codes.PermissionDenied, "from: %v", err)
	}
	if checkBuckets && !ValidBuckets(buckets) {
		return nil, status.Errorf(codes.InvalidArgument, "buckets: %d is not a power of two in 1..%d", buckets, MaxBuckets)
	}
	return l, nil
}

// Digest summarises the cases shared with the caller in req.Buckets
// buckets.
func (h *Handler) Digest(_ context.Context, req *pb.DigestRequest) (*pb.DigestResponse, error) {
	l, err := h.link(req.GetFrom(), req.GetBuckets(), true)
	if err != nil {
		return nil, err
	}
	b, err := bucketDigests(h.local.Store(), l, req.Buckets)
	if err != nil {
		return nil, fmt.Errorf("digest of link %s: %w", req.From, err)
	}
	return &pb.DigestResponse{Buckets: b}, nil
}

// CaseVersions lists the versions of the shared cases in the requested
// buckets.
func (h *Handler) CaseVersions(_ context.Context, req *pb.CaseVersionsRequest) (*pb.CaseVersionsResponse, error) {
	l, err := h.link(req.GetFrom(), req.GetBuckets(), true)
	if err != nil {
		return nil, err
	}
	want := make([]bool, req.Buckets)
	for _, b := range req.Bucket {
		if b >= req.Buckets {
			return nil, status.Errorf(codes.InvalidArgument, "bucket: %d out of %d", b, req.Buckets)
		}
		want[b] = true
	}
	vs, err := versionsIn(h.local.Store(), l, req.Buckets, want)
	if err != nil {
		return nil, fmt.Errorf("versions of link %s: %w", req.From, err)
	}
	return &pb.CaseVersionsResponse{Cases: vs}, nil
}

// FetchCases returns the stored copies of the requested cases (whether or
// not this node counts them as shared: the caller decides); absent ones are
// left out.
func (h *Handler) FetchCases(_ context.Context, req *pb.FetchCasesRequest) (*pb.FetchCasesResponse, error) {
	if _, err := h.link(req.GetFrom(), 0, false); err != nil {
		return nil, err
	}
	if len(req.CaseIds) > MaxFetch {
		return nil, status.Errorf(codes.InvalidArgument, "case_ids: %d ids, at most %d per call", len(req.CaseIds), MaxFetch)
	}
	resp := &pb.FetchCasesResponse{}
	err := h.local.Store().View(func(tx *store.Tx) error {
		for _, id := range req.CaseIds {
			c, err := tx.GetCase(id)
			switch {
			case errors.Is(err, store.ErrNotFound):
				continue
			case err != nil:
				return err
			}
			resp.Cases = append(resp.Cases, c)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fetch cases for %s: %w", req.From, err)
	}
	return resp, nil
}

// Repair proposes the caller's copies and drops as one RepairCases through
// this group's log and answers how many changed something.
func (h *Handler) Repair(ctx context.Context, req *pb.RepairRequest) (*pb.RepairResponse, error) {
	if _, err := h.link(req.GetFrom(), 0, false); err != nil {
		return nil, err
	}
	n := len(req.Cases) + len(req.Drop)
	if n > MaxRepair {
		return nil, status.Errorf(codes.InvalidArgument, "cases, drop: %d entries, at most %d per call", n, MaxRepair)
	}
	if n == 0 {
		return &pb.RepairResponse{}, nil
	}
	res, err := h.local.ApplyLocal(ctx, &pb.Command{Body: &pb.Command_Repair{Repair: &pb.RepairCases{From: req.From, Cases: req.Cases, Drop: req.Drop}}})
	if err != nil {
		return nil, err
	}
	return &pb.RepairResponse{Applied: uint32(n - res.Skipped)}, nil
}
