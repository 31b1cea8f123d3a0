package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/auth"
	"github.com/cityhub/cityhub/tiers/catalogue"
	"github.com/cityhub/cityhub/tiers/evaluation"
	"github.com/cityhub/cityhub/tiers/node"
	"github.com/cityhub/cityhub/tiers/store"
	"github.com/cityhub/cityhub/tiers/workflow"
)

// forwardedKey marks a call that a follower passed on to the leader, so the
// receiver never passes it on again.
const forwardedKey = "x-cityhub-forwarded"

// MaxPageSize bounds ListCases pages.
const MaxPageSize = 500

// CaseServer implements cityhub.v1.CaseService.
type CaseServer struct {
	pb.UnimplementedCaseServiceServer
	replica Replica
	cat     *catalogue.Catalogue
	units   []*pb.CatalogueUnit // the federation's unit directory (GetCatalogue)
	peers   *Peers
	log     *slog.Logger
	now     func() time.Time
	// gridPrefix is the part of the grid code this node's jurisdiction fixes.
	gridPrefix string
	fed        Federation // nil outside a federation
	nearby     Nearby     // nil: no duplicate hints
	geo        Geo        // nil: no grid geometry (reports need a grid code)
	schemes    map[string]evaluation.Scheme
	g          *guard      // authentication and authorization (nil: off)
	work       WorkingTime // nil: no working time left on reads
}

// WorkingTime measures working time between two instants on the node's
// working calendar (tiers/calendar.Calendar implements it).
type WorkingTime interface {
	Between(a, b time.Time) time.Duration
}

// Nearby finds open cases that a new report may duplicate.
type Nearby interface {
	Duplicates(c *pb.Case, now time.Time) []string
}

// NewCaseServer returns the case service of replica.
func NewCaseServer(r Replica, cat *catalogue.Catalogue, peers *Peers, logger *slog.Logger) *CaseServer {
	return &CaseServer{replica: r, cat: cat, peers: peers, log: logger, now: time.Now}
}

// locate is the grid register's point → grid, nil without geometry.
func (s *CaseServer) locate() locateFunc {
	if s.geo == nil {
		return nil
	}
	return s.geo.Locate
}

// ReportCase validates a report and proposes it. A report with a location
// and no grid code gets its grid from the register here, before the
// command is proposed: the command carries the grid code and WGS-84
// coordinates, so the state machine never converts or locates.
func (s *CaseServer) ReportCase(ctx context.Context, r *pb.ReportCaseRequest) (*pb.CaseResponse, error) {
	p := s.g.principal(ctx)
	if err := asPrincipal(p, &r.Actor, &r.Role); err != nil {
		return nil, err
	}
	report, err := s.reportOf(ctx, p, r)
	if err != nil {
		return nil, err
	}
	cmd := &pb.Command{RequestId: r.RequestId, Body: &pb.Command_Report{Report: report}}
	resp, err := s.propose(ctx, cmd)
	if err == nil && s.nearby != nil && resp.Case != nil {
		// A hint from this replica's store: the report stands either way.
		resp.PossibleDuplicates = s.nearby.Duplicates(resp.Case, s.now())
	}
	if err == nil {
		s.redact(ctx, resp.Case)
	}
	return resp, err
}

// reportOf validates report r of caller p (nil: authentication off,
// r's actor and role already checked against p) and builds the command's
// body; the error is a gRPC status.
func (s *CaseServer) reportOf(ctx context.Context, p *auth.Principal, r *pb.ReportCaseRequest) (*pb.ReportCase, error) {
	c, err := reportToCase(s.cat, s.locate(), r)
	if err != nil {
		return nil, toStatus(err)
	}
	if !strings.HasPrefix(c.GridCode, s.gridPrefix) {
		if r.GridCode == "" { // located from the coordinates
			return nil, toStatus(locatedElsewhere(s.locate(), c.Location, c.GridCode, s.gridPrefix))
		}
		return nil, toStatus(invalid("grid_code", "%s lies outside this node's jurisdiction (grid codes %s…)", c.GridCode, s.gridPrefix))
	}
	if err := s.g.require(ctx, auth.CaseReport, c); err != nil {
		return nil, err
	}
	report := &pb.ReportCase{Case: c, Actor: r.Actor, Role: r.Role, Note: r.Note}
	if p != nil {
		report.Principal, report.ActorUnit = p.ID, p.Unit
	}
	return report, nil
}

// Act applies the action named in the request.
func (s *CaseServer) Act(ctx context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	p := s.g.principal(ctx)
	if err := asPrincipal(p, &r.Actor, &r.Role); err != nil {
		return nil, err
	}
	a, err := actToCommand(r, s.now().UnixMilli())
	if err != nil {
		return nil, toStatus(err)
	}
	if p != nil {
		// Whether the role may take the action at all, then whether the
		// case lies in its scope: both before anything is proposed.
		perm := auth.ActPermission(r.Action)
		if err := s.g.require(ctx, perm, nil); err != nil {
			return nil, err
		}
		c, err := s.scopeCase(ctx, p, perm, r.CaseId)
		if err != nil {
			return nil, toStatus(err)
		}
		if err := s.g.require(ctx, perm, c); err != nil {
			return nil, err
		}
		a.Principal, a.ActorUnit = p.ID, p.Unit
	}
	resp, err := s.propose(ctx, &pb.Command{RequestId: r.RequestId, Body: &pb.Command_Act{Act: a}})
	if err == nil {
		s.redact(ctx, resp.Case)
	}
	return resp, err
}

// followerCatchUp bounds how long a follower waits for its copy of a case
// before it decides a scope on it, and a leader's read barrier.
const followerCatchUp = 3 * time.Second

// scopeSource is what a scope decision reads: the replica's store, and
// whether and how it can make its copy current (Replica).
type scopeSource interface {
	Store() *store.Store
	IsLeader() bool
	ReadBarrier(ctx context.Context, level pb.Consistency) error
}

func (s *CaseServer) scopeCase(ctx context.Context, p *auth.Principal, perm auth.Permission, id string) (*pb.Case, error) {
	return scopeCase(ctx, s.replica, p, perm, id)
}

// scopeCase reads the copy of case id that p's scope for perm is decided
// on. A replica's copy may trail the writes already acknowledged: a
// follower's by the entries in flight (a case reported a moment ago may be
// missing, one just dispatched still out of its new unit's scope), and so
// may a leader's just after an election, until it has applied what its
// predecessor committed. So a missing case, or one outside p's scope, is
// not refused on the first look: a follower reads it again until its store
// catches up (followerCatchUp at most); a leader passes a read barrier
// (a quorum confirms it leads and it has applied every entry it holds)
// and decides on the copy after it. A leader that lost the lead meanwhile
// answers Unavailable (try another replica), not a refusal.
func scopeCase(ctx context.Context, r scopeSource, p *auth.Principal, perm auth.Permission, id string) (*pb.Case, error) {
	deadline := time.Now().Add(followerCatchUp)
	barrier := false
	for {
		c, err := r.Store().GetCase(id)
		if err == nil && auth.Authorize(p, perm, c) == nil {
			return c, nil
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) || barrier || !time.Now().Before(deadline) {
			return c, err
		}
		if r.IsLeader() {
			bctx, cancel := context.WithTimeout(ctx, followerCatchUp)
			berr := r.ReadBarrier(bctx, pb.Consistency_CONSISTENCY_LINEARIZABLE)
			cancel()
			if berr != nil {
				return nil, fmt.Errorf("decide the scope of case %s on a current copy: %w", id, berr)
			}
			barrier = true
			continue
		}
		select {
		case <-ctx.Done():
			return c, err
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (s *CaseServer) propose(ctx context.Context, cmd *pb.Command) (*pb.CaseResponse, error) {
	if err := s.checkFederationReady(); err != nil {
		return nil, toStatus(err)
	}
	res, err := s.replica.Propose(ctx, cmd)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.CaseResponse{Case: s.decorate(res.Case), Replayed: res.Replayed}, nil
}

func (s *CaseServer) actAs(ctx context.Context, a pb.Action, r *pb.ActRequest) (*pb.CaseResponse, error) {
	r.Action = a
	return s.Act(ctx, r)
}

// GetCase reads one case at the requested consistency (linearizable by default).
func (s *CaseServer) GetCase(ctx context.Context, r *pb.GetCaseRequest) (*pb.Case, error) {
	if err := checkCaseID(r.CaseId); err != nil {
		return nil, toStatus(err)
	}
	r.Consistency = orDefault(r.Consistency, pb.Consistency_CONSISTENCY_LINEARIZABLE)
	if leader, err := s.leaderFor(ctx, r.Consistency); err != nil {
		return nil, toStatus(err)
	} else if leader != nil {
		return leader.GetCase(forwardCtx(ctx), r)
	}
	c, err := s.replica.Store().GetCase(r.CaseId)
	if err != nil {
		return nil, toStatus(err)
	}
	if err := s.g.require(ctx, auth.CaseRead, c); err != nil {
		return nil, err
	}
	s.redact(ctx, c)
	return s.decorate(c), nil
}

// ListCases lists cases by state, owner unit, grid prefix or deadline.
func (s *CaseServer) ListCases(ctx context.Context, r *pb.ListCasesRequest) (*pb.ListCasesResponse, error) {
	if err := s.g.require(ctx, auth.CaseList, nil); err != nil {
		return nil, err
	}
	scope, err := s.listScope(ctx, r)
	if err != nil {
		return nil, err
	}
	if r.PageSize < 0 || r.PageSize > MaxPageSize {
		return nil, toStatus(invalid("page_size", "between 1 and %d (0 means 50)", MaxPageSize))
	}
	if _, ok := pb.State_name[int32(r.State)]; !ok {
		return nil, toStatus(invalid("state", "unknown state %d", r.State))
	}
	if r.GridPrefix != "" && (len(r.GridPrefix) > catalogue.GridCodeLen || !allDigits(r.GridPrefix)) {
		return nil, toStatus(invalid("grid_prefix", "1 to %d digits", catalogue.GridCodeLen))
	}
	if r.OwnerUnit != "" && !unitRe.MatchString(r.OwnerUnit) {
		return nil, toStatus(invalid("owner_unit", "not a unit id"))
	}
	if len(r.LegacyId) > 64 || strings.ContainsRune(r.LegacyId, 0) {
		return nil, toStatus(invalid("legacy_id", "at most 64 characters, no NUL"))
	}
	r.Consistency = orDefault(r.Consistency, pb.Consistency_CONSISTENCY_LEADER)
	if leader, err := s.leaderFor(ctx, r.Consistency); err != nil {
		return nil, toStatus(err)
	} else if leader != nil {
		return leader.ListCases(forwardCtx(ctx), r)
	}
	q := store.Query{
		State: r.State, OwnerUnit: r.OwnerUnit, GridPrefix: r.GridPrefix,
		PageSize: int(r.PageSize), PageToken: r.PageToken, WithHistory: r.IncludeHistory,
		Overdue: r.Overdue, InReview: r.InReview, LegacyID: r.LegacyId,
	}
	if r.DueBefore != nil {
		q.DueBefore = r.DueBefore.AsTime()
	}
	cases, next, err := s.replica.Store().List(q)
	if err != nil {
		return nil, toStatus(err)
	}
	out := cases[:0]
	for _, c := range cases {
		if scope != nil && !scope(c) {
			continue
		}
		s.redact(ctx, c)
		out = append(out, s.decorate(c))
	}
	return &pb.ListCasesResponse{Cases: out, NextPageToken: next}, nil
}

// GetCatalogue returns the class catalogue this node validates against.
func (s *CaseServer) GetCatalogue(ctx context.Context, _ *pb.GetCatalogueRequest) (*pb.Catalogue, error) {
	if err := s.g.require(ctx, auth.CatalogueGet, nil); err != nil {
		return nil, err
	}
	c := s.cat.Proto()
	c.Units = s.units
	return c, nil
}

// leaderFor returns nil when this replica may serve a read at level, or a
// client of the leader to forward the read to.
func (s *CaseServer) leaderFor(ctx context.Context, level pb.Consistency) (pb.CaseServiceClient, error) {
	if ok, err := s.readHere(ctx, level); err != nil || ok {
		return nil, err
	}
	return s.peers.leaderCases(ctx, s.replica)
}

func orDefault(level, def pb.Consistency) pb.Consistency {
	if level == pb.Consistency_CONSISTENCY_UNSPECIFIED {
		return def
	}
	return level
}

// readHere reports whether this replica may serve a read at level; false
// means the leader must (and the caller forwards, unless this call was
// itself forwarded).
func (s *CaseServer) readHere(ctx context.Context, level pb.Consistency) (bool, error) {
	if _, ok := pb.Consistency_name[int32(level)]; !ok {
		return false, invalid("consistency", "STALE, LEADER or LINEARIZABLE")
	}
	err := s.replica.ReadBarrier(ctx, level)
	if err == nil {
		return true, nil
	}
	if isForwarded(ctx) || !errors.Is(err, node.ErrNotLeader) {
		return false, err
	}
	return false, nil
}

// decorate adds what a read computes: the allowed actions and the working
// time left to the stage deadline.
func (s *CaseServer) decorate(c *pb.Case) *pb.Case {
	if c == nil {
		return nil
	}
	withAllowed(c)
	c.WorkingTimeLeft = nil
	if s.work != nil && c.StageDeadline != nil && clockRuns(c.State) {
		c.WorkingTimeLeft = durationpb.New(workingLeft(s.work, s.now(), c.StageDeadline.AsTime()))
	}
	return c
}

// clockRuns reports whether a case in state st has a deadline running: not
// once it ended (closed, not filed, voided) nor while it is suspended.
func clockRuns(st pb.State) bool {
	switch st {
	case pb.State_STATE_CLOSED, pb.State_STATE_NOT_FILED, pb.State_STATE_VOIDED, pb.State_STATE_SUSPENDED:
		return false
	}
	return true
}

// workingLeft is the working time from now to deadline, negative past it.
func workingLeft(w WorkingTime, now, deadline time.Time) time.Duration {
	if deadline.Before(now) {
		return -w.Between(deadline, now)
	}
	return w.Between(now, deadline)
}

func withAllowed(c *pb.Case) *pb.Case {
	if c != nil {
		c.AllowedActions = workflow.Allowed(c)
	}
	return c
}

func isForwarded(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	return len(md.Get(forwardedKey)) > 0
}

// forwardCtx marks a call passed on to the leader and passes the caller's
// credentials with it: the leader authorizes the caller itself.
func forwardCtx(ctx context.Context) context.Context {
	kv := []string{forwardedKey, "1"}
	if cred := credFromMD(ctx); cred != "" {
		kv = append(kv, "authorization", "Bearer "+cred)
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// The per-action methods: each is Act with the action fixed.

func (s *CaseServer) Verify(ctx context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	return s.actAs(ctx, pb.Action_ACTION_VERIFY, r)
}
func (s *CaseServer) File(ctx context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	return s.actAs(ctx, pb.Action_ACTION_FILE, r)
}
func (s *CaseServer) Reject(ctx context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	return s.actAs(ctx, pb.Action_ACTION_REJECT, r)
}
func (s *CaseServer) SelfHandle(ctx context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	return s.actAs(ctx, pb.Action_ACTION_SELF_HANDLE, r)
}
func (s *CaseServer) Dispatch(ctx context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	return s.actAs(ctx, pb.Action_ACTION_DISPATCH, r)
}
func (s *CaseServer) Accept(ctx context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	return s.actAs(ctx, pb.Action_ACTION_ACCEPT, r)
}
func (s *CaseServer) RequestReturn(ctx context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	return s.actAs(ctx, pb.Action_ACTION_REQUEST_RETURN, r)
}
func (s *CaseServer) ApproveReturn(ctx context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	return s.actAs(ctx, pb.Action_ACTION_APPROVE_RETURN, r)
}
func (s *CaseServer) DenyReturn(ctx context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	return s.actAs(ctx, pb.Action_ACTION_DENY_RETURN, r)
}
func (s *CaseServer) Handle(ctx context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	return s.actAs(ctx, pb.Action_ACTION_HANDLE, r)
}
func (s *CaseServer) CheckPass(ctx context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	return s.actAs(ctx, pb.Action_ACTION_CHECK_PASS, r)
}
func (s *CaseServer) CheckFail(ctx context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	return s.actAs(ctx, pb.Action_ACTION_CHECK_FAIL, r)
}
func (s *CaseServer) Close(ctx context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	return s.actAs(ctx, pb.Action_ACTION_CLOSE, r)
}
func (s *CaseServer) RequestExtension(ctx context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	return s.actAs(ctx, pb.Action_ACTION_REQUEST_EXTENSION, r)
}
func (s *CaseServer) ApproveExtension(ctx context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	return s.actAs(ctx, pb.Action_ACTION_APPROVE_EXTENSION, r)
}
func (s *CaseServer) DenyExtension(ctx context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	return s.actAs(ctx, pb.Action_ACTION_DENY_EXTENSION, r)
}
func (s *CaseServer) RequestSuspend(ctx context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	return s.actAs(ctx, pb.Action_ACTION_REQUEST_SUSPEND, r)
}
func (s *CaseServer) ApproveSuspend(ctx context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	return s.actAs(ctx, pb.Action_ACTION_APPROVE_SUSPEND, r)
}
func (s *CaseServer) DenySuspend(ctx context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	return s.actAs(ctx, pb.Action_ACTION_DENY_SUSPEND, r)
}
func (s *CaseServer) Resume(ctx context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	return s.actAs(ctx, pb.Action_ACTION_RESUME, r)
}
func (s *CaseServer) Void(ctx context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	return s.actAs(ctx, pb.Action_ACTION_VOID, r)
}
func (s *CaseServer) Supervise(ctx context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	return s.actAs(ctx, pb.Action_ACTION_SUPERVISE, r)
}
func (s *CaseServer) TransferUp(ctx context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	return s.actAs(ctx, pb.Action_ACTION_TRANSFER_UP, r)
}
func (s *CaseServer) Reassign(ctx context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	return s.actAs(ctx, pb.Action_ACTION_REASSIGN, r)
}
func (s *CaseServer) ReferReview(ctx context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	return s.actAs(ctx, pb.Action_ACTION_REFER_REVIEW, r)
}
func (s *CaseServer) DecideOwner(ctx context.Context, r *pb.ActRequest) (*pb.CaseResponse, error) {
	return s.actAs(ctx, pb.Action_ACTION_DECIDE_OWNER, r)
}
