package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"google.golang.org/grpc/status"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/auth"
	"github.com/cityhub/cityhub/tiers/catalogue"
	"github.com/cityhub/cityhub/tiers/export"
	"github.com/cityhub/cityhub/tiers/node"
)

// Resolver answers who owns a problem from the responsibility catalogue
// (federation/ownership behind the replica).
type Resolver interface {
	ResolveOwner(ctx context.Context, r *pb.ResolveOwnerRequest) (*pb.Ownership, error)
}

// Reconciler runs reconciliation on this node and reports on runs
// (federation/reconcile).
type Reconciler interface {
	Reconcile(ctx context.Context, r *pb.ReconcileRequest) (*pb.ReconcileReport, error)
	Report(ctx context.Context, r *pb.ReconcileReportRequest) (*pb.ReconcileReport, error)
}

// AntiEntropy compares this node with its neighbours and repairs what
// differs (federation/antientropy).
type AntiEntropy interface {
	AntiEntropy(ctx context.Context, r *pb.AntiEntropyRequest) (*pb.AntiEntropyResponse, error)
}

// OwnershipServer serves OwnershipService: ownership questions, legacy
// import, reconciliation and anti-entropy. A piece the node does not run
// (a node outside a federation has no reconciler) answers
// FailedPrecondition.
type OwnershipServer struct {
	pb.UnimplementedOwnershipServiceServer
	replica     Replica
	cat         *catalogue.Catalogue
	log         *slog.Logger
	gridPrefix  string
	location    *time.Location
	resolver    Resolver
	reconciler  Reconciler
	antiEntropy AntiEntropy
	fed         Federation
	peers       *Peers
	g           *guard
}

func newOwnershipServer(opts Options, log *slog.Logger) *OwnershipServer {
	loc := opts.Location
	if loc == nil {
		loc = time.Local
	}
	return &OwnershipServer{
		replica: opts.Replica, cat: opts.Catalogue, log: log, gridPrefix: opts.GridPrefix, location: loc,
		resolver: opts.Resolver, reconciler: opts.Reconciler, antiEntropy: opts.AntiEntropy, fed: opts.Federation,
		peers: opts.Peers,
	}
}

// leader returns a client of the group's leader when this replica does not
// lead (nil when it does): reconciliation and anti-entropy run on the
// leader, which holds the state they read and proposes what they write.
func (s *OwnershipServer) leader(ctx context.Context) (pb.OwnershipServiceClient, error) {
	if s.replica.IsLeader() || s.peers == nil {
		return nil, nil
	}
	return s.peers.leaderOwnership(ctx, s.replica)
}

// ResolveOwner asks the responsibility catalogue, recording nothing.
func (s *OwnershipServer) ResolveOwner(ctx context.Context, r *pb.ResolveOwnerRequest) (*pb.Ownership, error) {
	if err := s.g.require(ctx, auth.OwnerResolve, nil); err != nil {
		return nil, err
	}
	if s.resolver == nil {
		return nil, toStatus(errNoCatalogue)
	}
	o, err := s.resolver.ResolveOwner(ctx, r)
	if err != nil {
		return nil, toStatus(err)
	}
	return o, nil
}

// Reconcile runs (or plans) a reconciliation of this node's open cases.
func (s *OwnershipServer) Reconcile(ctx context.Context, r *pb.ReconcileRequest) (*pb.ReconcileReport, error) {
	if err := s.g.require(ctx, auth.ReconcileRun, nil); err != nil {
		return nil, err
	}
	if s.reconciler == nil {
		return nil, toStatus(errNoReconciler)
	}
	if cl, err := s.leader(ctx); err != nil || cl != nil {
		if err != nil {
			return nil, toStatus(err)
		}
		return cl.Reconcile(forwardCtx(ctx), r)
	}
	rep, err := s.reconciler.Reconcile(ctx, r)
	if err != nil {
		return nil, toStatus(err)
	}
	return rep, nil
}

// GetReconcileReport returns a run's report.
func (s *OwnershipServer) GetReconcileReport(ctx context.Context, r *pb.ReconcileReportRequest) (*pb.ReconcileReport, error) {
	if err := s.g.require(ctx, auth.ReconcileRead, nil); err != nil {
		return nil, err
	}
	if s.reconciler == nil {
		return nil, toStatus(errNoReconciler)
	}
	// A report is read like a case (linearizable): a follower that has not
	// applied the run's latest marks passes the call to the leader.
	if err := s.replica.ReadBarrier(ctx, pb.Consistency_CONSISTENCY_LINEARIZABLE); err != nil {
		if isForwarded(ctx) || !errors.Is(err, node.ErrNotLeader) || s.peers == nil {
			return nil, toStatus(err)
		}
		cl, lerr := s.peers.leaderOwnership(ctx, s.replica)
		if lerr != nil {
			return nil, toStatus(lerr)
		}
		return cl.GetReconcileReport(forwardCtx(ctx), r)
	}
	rep, err := s.reconciler.Report(ctx, r)
	if err != nil {
		return nil, toStatus(err)
	}
	return rep, nil
}

// AntiEntropy compares this node with its neighbours now.
func (s *OwnershipServer) AntiEntropy(ctx context.Context, r *pb.AntiEntropyRequest) (*pb.AntiEntropyResponse, error) {
	if err := s.g.require(ctx, auth.ReconcileRun, nil); err != nil {
		return nil, err
	}
	if s.antiEntropy == nil {
		return nil, toStatus(errNoAntiEntropy)
	}
	if cl, err := s.leader(ctx); err != nil || cl != nil {
		if err != nil {
			return nil, toStatus(err)
		}
		return cl.AntiEntropy(forwardCtx(ctx), r)
	}
	resp, err := s.antiEntropy.AntiEntropy(ctx, r)
	if err != nil {
		return nil, toStatus(err)
	}
	return resp, nil
}

// registerReconcileDownload serves GET /v1/reconcile/report.csv?run_id=…
// (the latest run without one): the report's counts as CSV.
func registerReconcileDownload(mux *http.ServeMux, own *OwnershipServer) {
	mux.HandleFunc("GET /v1/reconcile/report.csv", func(w http.ResponseWriter, req *http.Request) {
		runID := req.URL.Query().Get("run_id")
		if len(runID) > 64 {
			writeError(w, status.Convert(toStatus(invalid("run_id", "at most 64 characters"))))
			return
		}
		rep, err := own.GetReconcileReport(req.Context(), &pb.ReconcileReportRequest{RunId: runID})
		if err != nil {
			writeError(w, status.Convert(err))
			return
		}
		var buf bytes.Buffer
		if err := export.WriteReconcileCSV(&buf, rep); err != nil {
			writeError(w, status.Convert(toStatus(err)))
			return
		}
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", "reconcile-"+rep.RunId+".csv"))
		_, _ = w.Write(buf.Bytes())
	})
}
