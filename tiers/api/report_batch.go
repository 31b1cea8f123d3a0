package api

import (
	"context"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/node"
)

// MaxBatchReports bounds the reports of one ReportCases call.
const MaxBatchReports = 100

// ReportCases validates up to MaxBatchReports reports and proposes the
// valid ones as one ReportBatch command: one log entry for all of them.
// Every report is decided on its own and answered in order: a report
// refused here (invalid, outside the caller's scope, the same request id
// as an earlier report of the call) or by the state machine leaves the
// others standing; a retried call answers every report applied before as
// replayed, with its first case. A follower passes the call to its
// leader. Leadership that moves during the call answers Unavailable: the
// caller retries the same call, and the request ids make that safe.
func (s *CaseServer) ReportCases(ctx context.Context, r *pb.ReportCasesRequest) (*pb.ReportCasesResponse, error) {
	if n := len(r.Reports); n == 0 || n > MaxBatchReports {
		return nil, toStatus(invalid("reports", "%d reports: 1 to %d per call", n, MaxBatchReports))
	}
	if err := s.checkFederationReady(); err != nil {
		return nil, toStatus(err)
	}
	if !s.replica.IsLeader() && !isForwarded(ctx) {
		leader, err := s.peers.leaderCases(ctx, s.replica)
		if err != nil {
			return nil, toStatus(err)
		}
		return leader.ReportCases(forwardCtx(ctx), r)
	}
	p := s.g.principal(ctx)
	out := &pb.ReportCasesResponse{Results: make([]*pb.ReportCaseResult, len(r.Reports))}
	batch := &pb.ReportBatch{}
	var at []int // the report each batch item stands for
	first := make(map[string]int, len(r.Reports))
	for i, rr := range r.Reports {
		field := fmt.Sprintf("reports[%d]", i)
		if err := asPrincipal(p, &rr.Actor, &rr.Role); err != nil {
			out.Results[i] = &pb.ReportCaseResult{Error: reportError(err, field)}
			continue
		}
		report, err := s.reportOf(ctx, p, rr)
		if err != nil {
			out.Results[i] = &pb.ReportCaseResult{Error: reportError(err, field)}
			continue
		}
		if j, dup := first[rr.RequestId]; dup {
			out.Results[i] = &pb.ReportCaseResult{Error: reportError(toStatus(invalid("request_id", "the same as reports[%d]'s: one request id per report", j)), field)}
			continue
		}
		first[rr.RequestId] = i
		batch.Items = append(batch.Items, &pb.ReportBatchItem{RequestId: rr.RequestId, Report: report})
		at = append(at, i)
	}
	if len(batch.Items) == 0 {
		return out, nil
	}
	res, err := s.applyBatch(ctx, &pb.Command{Body: &pb.Command_ReportBatch{ReportBatch: batch}})
	if err != nil {
		return nil, toStatus(err)
	}
	if len(res.Items) != len(batch.Items) {
		return nil, status.Errorf(codes.Internal, "the state machine answered %d of %d reports", len(res.Items), len(batch.Items))
	}
	for k, it := range res.Items {
		i := at[k]
		if it.Err != nil {
			out.Results[i] = &pb.ReportCaseResult{Error: reportError(toStatus(it.Err), fmt.Sprintf("reports[%d]", i))}
			continue
		}
		c := s.decorate(it.Case)
		res := &pb.ReportCaseResult{Case: c, Replayed: it.Replayed}
		if s.nearby != nil && c != nil {
			res.PossibleDuplicates = s.nearby.Duplicates(c, s.now())
		}
		s.redact(ctx, c)
		out.Results[i] = res
	}
	return out, nil
}

// applyBatch commits a ReportBatch on this replica, which leads.
func (s *CaseServer) applyBatch(ctx context.Context, cmd *pb.Command) (*fsm.Result, error) {
	// Not node.Propose: its forward to a new leader carries no per-item
	// results. The call itself was passed to the leader (above); if the
	// leadership moved since, the caller retries the call.
	res, err := s.replica.ApplyLocal(ctx, cmd)
	if err != nil && node.Retryable(err) {
		return nil, fmt.Errorf("%w: %w", node.ErrNotLeader, err)
	}
	return res, err
}

// reportError is a refused report's entry in a batch's answer: the code's
// name, the message and the request field (under the report's position)
// when the refusal names one.
func reportError(err error, at string) *pb.ReportError {
	st := status.Convert(toStatus(err))
	e := &pb.ReportError{Code: code.Code(st.Code()).String(), Message: st.Message(), Field: at}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.FieldViolations) > 0 {
			e.Field = at + "." + br.FieldViolations[0].Field
		}
	}
	return e
}
