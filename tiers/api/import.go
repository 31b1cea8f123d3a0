package api

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/auth"
	"github.com/cityhub/cityhub/tiers/diskspace"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/legacy"
	"github.com/cityhub/cityhub/tiers/node"
	"github.com/cityhub/cityhub/tiers/store"
)

// MaxImportRows bounds the rows of one ImportCases request.
const MaxImportRows = 1000

// importTimeout bounds an import whose caller set no deadline (REST).
const importTimeout = 30 * time.Second

// localApplier is what a node offers beside Replica: the state machine's
// whole result of a command committed on this leader (node.Node has it).
type localApplier interface {
	ApplyLocal(ctx context.Context, cmd *pb.Command) (*fsm.Result, error)
}

// ImportCases validates rows of an old system's export (tiers/legacy) and
// writes the good ones in one command: a row whose legacy id is stored
// already is counted, not written again. Bad rows come back with their
// line, legacy id, field and reason, and nothing of them is written. A
// request refused as a whole (no request id, too many rows, federation not
// ready) writes nothing. The write happens on the leader: a follower passes
// the request on. A retry of the same request id is a replay: it changes
// nothing and answers every good row as already imported.
func (s *OwnershipServer) ImportCases(ctx context.Context, r *pb.ImportCasesRequest) (*pb.ImportCasesResponse, error) {
	if err := s.g.require(ctx, auth.ImportRun, nil); err != nil {
		return nil, err
	}
	if err := checkRequestID(r.RequestId); err != nil {
		return nil, toStatus(err)
	}
	switch {
	case len(r.Rows) == 0:
		return nil, toStatus(invalid("rows", "required: at least one row of the export"))
	case len(r.Rows) > MaxImportRows:
		return nil, toStatus(invalid("rows", "%d rows, at most %d per request: send the file in batches", len(r.Rows), MaxImportRows))
	}
	actor := strings.TrimSpace(r.Actor)
	if actor == "" {
		actor = legacy.DefaultActor
	}
	if err := checkText("actor", actor, MaxName); err != nil {
		return nil, toStatus(err)
	}
	if !r.DryRun {
		if err := s.importReady(); err != nil {
			return nil, toStatus(err)
		}
	}
	v := legacy.Validator{Catalogue: s.cat, GridPrefix: s.gridPrefix, Location: s.location, Now: time.Now(), Actor: actor, RequestID: r.RequestId}
	cases, _, rejected := v.Validate(r.Rows)
	resp := &pb.ImportCasesResponse{Rejected: rejected}
	if r.DryRun || len(cases) == 0 {
		return resp, nil
	}
	cmd := &pb.Command{RequestId: r.RequestId, Body: &pb.Command_ImportCases{ImportCases: &pb.ImportCases{Cases: cases}}}
	res, forwarded, err := s.applyImport(ctx, cmd, r)
	switch {
	case err != nil:
		return nil, toStatus(err)
	case forwarded != nil:
		return forwarded, nil
	case res.Replayed:
		// Nothing was written now: every good row is there already.
		ids, err := s.caseIDsByLegacyID(cases)
		if err != nil {
			return nil, toStatus(err)
		}
		resp.Already, resp.CaseIds = int32(len(ids)), ids
	default:
		resp.Imported, resp.Already = int32(res.Imported), int32(res.Already)
		for _, id := range res.CaseIDs {
			if id != "" {
				resp.CaseIds = append(resp.CaseIds, id)
			}
		}
	}
	s.log.Info("legacy import", "request_id", r.RequestId, "rows", len(r.Rows), "imported", resp.Imported,
		"already", resp.Already, "rejected", len(resp.Rejected), "replayed", res.Replayed)
	return resp, nil
}

// importReady refuses writes until the federation topology is applied, as
// the case service does.
func (s *OwnershipServer) importReady() error {
	if s.fed == nil {
		return nil
	}
	if err := s.fed.Ready(); err != nil {
		return fmt.Errorf("%w: %w", errFederationNotReady, err)
	}
	return nil
}

// applyImport commits cmd on this replica if it leads (the result is the
// state machine's), or passes the request r to the leader (its answer is
// returned as is). While leadership moves it tries again until ctx ends:
// the request id makes a retry of a committed command a replay.
func (s *OwnershipServer) applyImport(ctx context.Context, cmd *pb.Command, r *pb.ImportCasesRequest) (*fsm.Result, *pb.ImportCasesResponse, error) {
	la, ok := s.replica.(localApplier)
	if !ok {
		return nil, nil, status.Error(codes.Unimplemented, "this replica cannot apply an import")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, importTimeout)
		defer cancel()
	}
	backoff := 10 * time.Millisecond
	for {
		var err error
		switch {
		case s.replica.IsLeader():
			var res *fsm.Result
			if res, err = la.ApplyLocal(ctx, cmd); err == nil {
				return res, nil, nil
			}
			if !node.Retryable(err) {
				return nil, nil, err
			}
		case isForwarded(ctx):
			return nil, nil, node.ErrNotLeader // the leader we were sent to is no more
		default:
			_, addr := s.replica.Leader()
			if addr == "" {
				err = node.ErrNoLeader
				break
			}
			var resp *pb.ImportCasesResponse
			if resp, err = s.forwardImport(ctx, addr, r); err == nil {
				return nil, resp, nil
			}
			if status.Code(err) != codes.Unavailable || diskspace.IsRefusal(err) {
				return nil, nil, err
			}
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("%w (last attempt: %w)", ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// forwardImport passes an import to the leader's OwnershipService over the
// replica's pooled connections to its peers.
func (s *OwnershipServer) forwardImport(ctx context.Context, addr string, r *pb.ImportCasesRequest) (*pb.ImportCasesResponse, error) {
	if s.peers == nil {
		return nil, status.Errorf(codes.Unavailable, "no connection to leader %s: this replica forwards nothing", addr)
	}
	conn, err := s.peers.conn(addr)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "connect to leader %s: %v", addr, err)
	}
	return pb.NewOwnershipServiceClient(conn).ImportCases(forwardCtx(ctx), r)
}

// caseIDsByLegacyID reads the ids of the stored cases of the given legacy
// rows, in order (this replica leads and has applied the import).
func (s *OwnershipServer) caseIDsByLegacyID(cases []*pb.ImportedCase) ([]string, error) {
	var ids []string
	err := s.replica.Store().View(func(tx *store.Tx) error {
		for _, ic := range cases {
			id, err := tx.CaseByLegacyID(s.jurisdiction, ic.GetCase().GetLegacyId())
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	return ids, err
}
