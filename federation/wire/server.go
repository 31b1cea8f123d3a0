package wire

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/errcode"
	"github.com/cityhub/cityhub/tiers/node"
)

// MaxEntries bounds one Deliver request.
const MaxEntries = 4096

// PeerIdentity names the node at the other end of a call (from its mTLS
// certificate); federation/certs.PeerName implements it.
type PeerIdentity func(ctx context.Context) (string, error)

// Server is the receiving side of the links: cityhub.v1.FederationService.
type Server struct {
	pb.UnimplementedFederationServiceServer
	self  string
	topo  *topology.Topology
	local node.Leader
	// identity, when set, must name the caller as req.From; nil only in
	// the explicitly configured plain-text mode.
	identity PeerIdentity
	log      *slog.Logger
	// antiEntropy serves Digest, CaseVersions, FetchCases and Repair (nil:
	// Unimplemented); see antientropy.go.
	antiEntropy AntiEntropyHandler
	// evidence serves FetchEvidence (nil: Unimplemented); see evidence.go.
	evidence EvidenceSource

	mu    sync.Mutex
	links map[string]*sync.Mutex // one batch at a time per sending neighbour
}

// NewServer returns the FederationService of node self.
func NewServer(self string, topo *topology.Topology, local node.Leader, identity PeerIdentity, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	return &Server{self: self, topo: topo, local: local, identity: identity, log: logger.With("component", "federation-server", "node", self), links: map[string]*sync.Mutex{}}
}

// Deliver applies a batch from a neighbour through this group's log and
// answers with the link's high-water mark.
func (s *Server) Deliver(ctx context.Context, req *pb.DeliverRequest) (*pb.DeliverResponse, error) {
	if err := s.authorize(ctx, req.GetFrom()); err != nil {
		return nil, err
	}
	if req.GetTo() != s.self {
		return nil, status.Errorf(codes.InvalidArgument, "to: this is node %q, not %q", s.self, req.GetTo())
	}
	if len(req.GetEntries()) > MaxEntries {
		return nil, status.Errorf(codes.InvalidArgument, "entries: %d entries, at most %d per call", len(req.Entries), MaxEntries)
	}
	for i, e := range req.GetEntries() {
		if e.GetSeq() == 0 || e.GetCase().GetId() == "" {
			return nil, status.Errorf(codes.InvalidArgument, "entries[%d]: needs a sequence number and a case with an id", i)
		}
		if i > 0 && e.GetSeq() != req.Entries[i-1].GetSeq()+1 {
			return nil, status.Errorf(codes.InvalidArgument, "entries[%d]: sequence %d does not follow %d", i, e.GetSeq(), req.Entries[i-1].GetSeq())
		}
	}
	if !s.local.IsLeader() {
		return nil, status.Errorf(codes.Unavailable, "node %q: this replica is not the leader", s.self)
	}
	mu := s.linkLock(req.From)
	mu.Lock()
	defer mu.Unlock()
	d := &pb.DeliverEntries{From: req.From, Entries: req.Entries}
	if err := s.markMoves(req, d); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if len(req.Entries) == 0 && d.Floor == 0 && d.Incarnation == 0 {
		// A probe: the mark, and nothing to write.
		hw, err := s.highWater(req.From)
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		return &pb.DeliverResponse{HighWater: hw}, nil
	}
	res, err := s.local.ApplyLocal(ctx, &pb.Command{Body: &pb.Command_Deliver{Deliver: d}})
	if err != nil {
		return nil, callStatus(fmt.Errorf("apply batch from %s: %w", req.From, err))
	}
	if res.Skipped > 0 {
		s.log.Debug("entries not newer than the copy held", "from", req.From, "skipped", res.Skipped)
	}
	if res.Reset || res.Jumped > 0 {
		s.log.Warn("link mark moved after a restore", "from", req.From, "incarnation", d.Incarnation, "advance", d.Advance,
			"floor", d.Floor, "jumped", res.Jumped, "high_water", res.HighWater)
	}
	return &pb.DeliverResponse{HighWater: res.HighWater, Jumped: res.Jumped}, nil
}

// markMoves passes the sender's incarnation, floor and advance into the
// command only when they can move the link's mark: a new incarnation, or
// an advance over a mark below the floor (federation/DESIGN.md, "After a
// restore"). Any other delivery stays a version 1 entry, which every
// release applies alike. Batches from one sender are applied one at a
// time (linkLock), so the mark read here is the one Apply starts from.
func (s *Server) markMoves(req *pb.DeliverRequest, d *pb.DeliverEntries) error {
	if req.Incarnation == 0 && !req.Advance {
		return nil
	}
	ls, err := s.local.Store().Link(req.From)
	if err != nil {
		return fmt.Errorf("read link %s: %w", req.From, err)
	}
	if (req.Incarnation != 0 && req.Incarnation != ls.InIncarnation) || (req.Advance && req.Floor > ls.InHighWater) {
		d.Incarnation, d.Floor, d.Advance = req.Incarnation, req.Floor, req.Advance
	}
	return nil
}

func (s *Server) authorize(ctx context.Context, from string) error {
	if s.identity != nil {
		name, err := s.identity(ctx)
		if err != nil {
			return status.Errorf(codes.Unauthenticated, "federation calls need a client certificate: %v", err)
		}
		if name != from {
			return status.Errorf(codes.PermissionDenied, "from: certificate names %q, request says %q", name, from)
		}
	}
	if !s.topo.IsNeighbour(s.self, from) {
		return status.Errorf(codes.PermissionDenied, "from: %q is neither the parent nor a child of %q", from, s.self)
	}
	return nil
}

func (s *Server) linkLock(peer string) *sync.Mutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.links[peer]
	if !ok {
		m = &sync.Mutex{}
		s.links[peer] = m
	}
	return m
}

func (s *Server) highWater(peer string) (uint64, error) {
	ls, err := s.local.Store().Link(peer)
	if err != nil {
		return 0, fmt.Errorf("read link %s: %w", peer, err)
	}
	return ls.InHighWater, nil
}

// callStatus is the status the federation server answers its caller (Deliver,
// the anti-entropy and evidence calls) by the one table (tiers/errcode):
// leadership lost on the way is Unavailable, so the caller tries the next
// replica; a status from further on keeps its code.
func callStatus(err error) error { return errcode.Status(err) }
