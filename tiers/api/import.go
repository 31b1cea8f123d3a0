package api

import (
	"context"
	"fmt"
	"strings"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/auth"
	"github.com/cityhub/cityhub/tiers/legacy"
)

// MaxImportRows bounds the rows of one ImportCases request.
const MaxImportRows = 1000

// importTimeout bounds an import whose caller set no deadline (REST).
const importTimeout = 30 * time.Second

// ImportCases validates rows of an old system's export (tiers/legacy) and
// writes the good ones in one command: a row whose legacy id is stored
// already is counted, not written again. Bad rows come back with their
// line, legacy id, field and reason, and nothing of them is written. A
// request refused as a whole (no request id, too many rows, federation not
// ready) writes nothing. The command takes the write path of every
// client's write (node.Propose: a follower forwards it to the leader, and
// the state machine's result comes back). A retry of the same request id
// is a replay: it changes nothing and answers every good row as already
// imported, with its case id (the state machine answers it so).
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
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, importTimeout)
		defer cancel()
	}
	res, err := s.replica.Propose(ctx, cmd)
	if err != nil {
		return nil, toStatus(err)
	}
	resp.Imported, resp.Already = int32(res.Imported), int32(res.Already)
	for _, id := range res.CaseIDs {
		if id != "" {
			resp.CaseIds = append(resp.CaseIds, id)
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
