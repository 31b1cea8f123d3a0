package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cityhub/cityhub/federation/certs"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/catalogue"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/node"
)

// InternalOptions configure the internal listener: the replicas' own gRPC
// server, apart from the public one.
type InternalOptions struct {
	Replica   Replica
	Catalogue *catalogue.Catalogue
	// GridPrefix is the grid code prefix reports must match (as Options).
	GridPrefix string
	Listener   net.Listener
	// TLS is the listener's mutual TLS: it must require and verify client
	// certificates and accept only the group's name
	// (certs.Files.GroupServerConfig). nil serves plain text (the loopback
	// development mode, config internal.insecure).
	TLS *tls.Config
	// Group is the name a caller's certificate must carry; every call
	// checks it again (PermissionDenied), beside the handshake.
	Group  string
	Logger *slog.Logger
}

// InternalMaxMessage bounds a message on the internal listener. A
// forwarded command is built from a public request (at most
// limits.max_request_bytes) and may be larger than it: an import's cases
// carry their history beside the rows' fields.
const InternalMaxMessage = 16 << 20

// InternalServer serves ForwardService on the internal listener, to the
// group's replicas only. Nothing here is reachable from the public gRPC
// listener or the REST gateway.
type InternalServer struct {
	opts InternalOptions
	log  *slog.Logger
	grpc *grpc.Server
}

// NewInternalServer wires the internal services; Serve starts them.
func NewInternalServer(opts InternalOptions) (*InternalServer, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Catalogue == nil {
		return nil, errors.New("api: internal server: a catalogue is required")
	}
	if opts.Listener == nil {
		return nil, errors.New("api: internal server: a listener is required")
	}
	log := opts.Logger.With("component", "internal-api")
	interceptors := []grpc.UnaryServerInterceptor{recoverInterceptor(log)}
	var sopts []grpc.ServerOption
	if opts.TLS != nil {
		if opts.TLS.ClientAuth != tls.RequireAndVerifyClientCert {
			return nil, errors.New("api: internal server: TLS must require and verify client certificates")
		}
		if opts.Group == "" {
			return nil, errors.New("api: internal server: TLS needs the group's name")
		}
		sopts = append(sopts, grpc.Creds(credentials.NewTLS(opts.TLS)))
		interceptors = append([]grpc.UnaryServerInterceptor{groupInterceptor(opts.Group)}, interceptors...)
	}
	sopts = append(sopts, grpc.ChainUnaryInterceptor(interceptors...), grpc.NumStreamWorkers(StreamWorkers),
		grpc.MaxRecvMsgSize(InternalMaxMessage),
		grpc.StaticStreamWindowSize(StreamWindow), grpc.StaticConnWindowSize(ConnWindow))
	gs := grpc.NewServer(sopts...)
	pb.RegisterForwardServiceServer(gs, NewForwardServer(opts.Replica, opts.Catalogue, opts.GridPrefix))
	return &InternalServer{opts: opts, log: log, grpc: gs}, nil
}

// Serve starts serving and returns at once.
func (s *InternalServer) Serve() {
	go func() {
		if err := s.grpc.Serve(s.opts.Listener); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.log.Error("internal gRPC server stopped", "error", err)
		}
	}()
	s.log.Info("serving the group's replicas", "addr", s.Addr(), "mtls", s.opts.TLS != nil, "group", s.opts.Group)
}

// Stop drains the server, giving up when ctx ends.
func (s *InternalServer) Stop(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.grpc.Stop()
	}
}

// Kill stops at once, dropping calls in flight.
func (s *InternalServer) Kill() { s.grpc.Stop() }

// Addr is the address the internal listener listens on.
func (s *InternalServer) Addr() string { return s.opts.Listener.Addr().String() }

// groupInterceptor lets through only callers whose verified certificate
// names the group (the handshake already checks it; this holds even if a
// TLS configuration without that check were passed in).
func groupInterceptor(group string) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		name, err := certs.PeerName(ctx)
		if err != nil {
			return nil, status.Errorf(codes.Unauthenticated, "internal listener: %v", err)
		}
		if name != group {
			return nil, status.Errorf(codes.PermissionDenied, "internal listener: %q is not a replica of %q", name, group)
		}
		return h(ctx, req)
	}
}

// ForwardServer implements the internal ForwardService: the leader's end
// of write forwarding. It proposes only what a client request causes on a
// follower (the types the state machine's registry marks so:
// fsm.ClientMayCause), checked as the public API checks the request; every
// other command body is proposed by the leader's own jobs (relay, sweeper,
// reconciler, anti-entropy, topology, membership, retention) through
// ApplyLocal and is refused here.
type ForwardServer struct {
	pb.UnimplementedForwardServiceServer
	replica    Replica
	cat        *catalogue.Catalogue
	gridPrefix string
	now        func() time.Time
}

// NewForwardServer returns the forward service of replica.
func NewForwardServer(r Replica, cat *catalogue.Catalogue, gridPrefix string) *ForwardServer {
	return &ForwardServer{replica: r, cat: cat, gridPrefix: gridPrefix, now: time.Now}
}

// errNotForwardable refuses a command body no client request causes.
var errNotForwardable = errors.New("not a command a client request causes")

// Apply validates a forwarded command, applies it here, never forwarding
// it again, and answers the state machine's result.
func (s *ForwardServer) Apply(ctx context.Context, r *pb.ProposeRequest) (*pb.ProposeResponse, error) {
	res, err := s.apply(ctx, r)
	if err != nil {
		return nil, err
	}
	return &pb.ProposeResponse{Result: res.Proto()}, nil
}

// Propose is Apply for a follower of a release before Apply: it answers
// the case only.
func (s *ForwardServer) Propose(ctx context.Context, r *pb.ProposeRequest) (*pb.CaseResponse, error) {
	res, err := s.apply(ctx, r)
	if err != nil {
		return nil, err
	}
	return &pb.CaseResponse{Case: res.Case, Replayed: res.Replayed}, nil
}

func (s *ForwardServer) apply(ctx context.Context, r *pb.ProposeRequest) (*fsm.Result, error) {
	if r.Command == nil || r.Command.Body == nil {
		return nil, toStatus(invalid("command", "required"))
	}
	if err := validateCommand(s.cat, s.gridPrefix, r.Command, s.now()); err != nil {
		if errors.Is(err, errNotForwardable) {
			return nil, status.Error(codes.PermissionDenied, err.Error())
		}
		return nil, toStatus(err)
	}
	res, err := s.replica.ApplyLocal(ctx, r.Command)
	if err != nil {
		return nil, toStatus(err)
	}
	withAllowed(res.Case)
	return res, nil
}

// memberRegistrar is the leader's end of Register (node.Node has it).
type memberRegistrar interface {
	RegisterMember(ctx context.Context, reg *pb.RegisterNode) error
}

// Register records a member's addresses; the leader checks them against
// the raft configuration and proposes the registration itself.
func (s *ForwardServer) Register(ctx context.Context, r *pb.RegisterRequest) (*pb.RegisterResponse, error) {
	reg := r.GetNode()
	if reg == nil || !nodeIDRe.MatchString(reg.NodeId) {
		return nil, toStatus(invalid("node.node_id", "required: 1 to 32 of a-z 0-9 -"))
	}
	mr, ok := s.replica.(memberRegistrar)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this replica cannot register members")
	}
	if err := mr.RegisterMember(ctx, reg); err != nil {
		return nil, toStatus(err)
	}
	return &pb.RegisterResponse{}, nil
}

// memberRejoiner is the leader's end of Rejoin (node.Node has it).
type memberRejoiner interface {
	Rejoin(ctx context.Context, req *pb.JoinRequest) error
	Status() *pb.ClusterStatus
}

// memberJoiner is the leader's end of Join (node.Node has it).
type memberJoiner interface {
	Join(ctx context.Context, req *pb.JoinRequest) error
	Status() *pb.ClusterStatus
}

// Rejoin takes back a replica of the group whose data was moved aside
// (cityhubd --rejoin): the leader removes the member and adds it again, and
// raft sends it a snapshot. Only a replica of the group reaches this (the
// internal listener's mutual TLS); a follower answers FailedPrecondition
// naming the leader, and the replica asks the next member.
func (s *ForwardServer) Rejoin(ctx context.Context, r *pb.JoinRequest) (*pb.JoinResponse, error) {
	rj, ok := s.replica.(memberRejoiner)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this replica cannot take members back")
	}
	return admitMember(ctx, r, rj.Rejoin, rj.Status)
}

// Join adds a new replica that starts with raft.join while authentication
// is on: it has no user credentials, and the group's certificate (the
// internal listener's mutual TLS) is what admits it, as for Rejoin. A
// member with the same id and address is left as it is (a restart with
// raft.join still set). A follower answers FailedPrecondition naming the
// leader, and the replica asks the next member.
func (s *ForwardServer) Join(ctx context.Context, r *pb.JoinRequest) (*pb.JoinResponse, error) {
	j, ok := s.replica.(memberJoiner)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this replica cannot add members")
	}
	return admitMember(ctx, r, j.Join, j.Status)
}

func admitMember(ctx context.Context, r *pb.JoinRequest, admit func(context.Context, *pb.JoinRequest) error, st func() *pb.ClusterStatus) (*pb.JoinResponse, error) {
	if err := validateJoin(r); err != nil {
		return nil, toStatus(err)
	}
	err := admit(ctx, r)
	switch {
	case errors.Is(err, node.ErrNotLeader):
		return nil, status.Errorf(codes.FailedPrecondition, "%v: the leader is %q", err, st().LeaderId)
	case err != nil:
		return nil, toStatus(err)
	}
	return &pb.JoinResponse{Status: st()}, nil
}

// validateCommand checks a forwarded command as the public API checked the
// request it came from: only a type a client request causes (the state
// machine's registry: fsm.ClientMayCause), with the leader's stamps empty,
// whose body is what the API builds from a valid request (reportToCase,
// actToCommand, the import's validator…), so nothing the API would have
// refused or never sets reaches the log this way. The caller's principal
// and unit (set by the follower that authenticated the client) pass as
// they are.
func validateCommand(cat *catalogue.Catalogue, gridPrefix string, cmd *pb.Command, now time.Time) error {
	if cmd.GetBody() == nil {
		return invalid("command", "required")
	}
	if !fsm.ClientMayCause(cmd) {
		return fmt.Errorf("%w: %s (only what a client request causes is forwarded)", errNotForwardable, fsm.KindOf(cmd))
	}
	if cmd.StampedUnixMs != 0 || cmd.StampedBy != "" || cmd.LocalOffsetS != 0 {
		return invalid("command", "stamped_unix_ms, stamped_by and local_offset_s are the leader's to set")
	}
	switch b := cmd.Body.(type) {
	case *pb.Command_Report:
		return validateReport(cat, gridPrefix, cmd.RequestId, b.Report)
	case *pb.Command_Act:
		return validateAct(cmd.RequestId, b.Act, now)
	case *pb.Command_Auth:
		return validateAuthChange(cmd.RequestId, b.Auth)
	case *pb.Command_AttachEvidence:
		return validateEvidence(cmd.RequestId, b.AttachEvidence)
	case *pb.Command_ImportCases:
		return validateImport(cat, gridPrefix, cmd.RequestId, b.ImportCases)
	case *pb.Command_ReportBatch:
		return validateBatch(cat, gridPrefix, cmd.RequestId, b.ReportBatch)
	default:
		// A type the registry lets clients cause without a check here:
		// refused until one is written.
		return fmt.Errorf("%w: %s (no forward check for it)", errNotForwardable, fsm.KindOf(cmd))
	}
}

// validateBatch checks a batch of reports as ReportCases builds it: no
// request id of its own, 1 to MaxBatchReports items, each a report that
// passes validateReport under its own request id.
func validateBatch(cat *catalogue.Catalogue, gridPrefix, requestID string, b *pb.ReportBatch) error {
	if requestID != "" {
		return invalid("command.request_id", "a batch has none of its own: each report carries one")
	}
	if n := len(b.GetItems()); n == 0 || n > MaxBatchReports {
		return invalid("command.report_batch.items", "1 to %d reports, not %d", MaxBatchReports, n)
	}
	for i, it := range b.Items {
		if it.GetReport() == nil {
			return invalid(fmt.Sprintf("command.report_batch.items[%d].report", i), "required")
		}
		if err := validateReport(cat, gridPrefix, it.GetRequestId(), it.GetReport()); err != nil {
			return fmt.Errorf("command.report_batch.items[%d]: %w", i, err)
		}
	}
	return nil
}

// validateImport checks an import a follower's API built from validated
// legacy rows (tiers/legacy): at most MaxImportRows cases, each a new case
// at version 1 with a legacy id, of a class the catalogue knows, in this
// node's jurisdiction, with its one history entry recording the request,
// and nothing the leader or the state machine sets (id prefix, ids,
// holder, owners).
func validateImport(cat *catalogue.Catalogue, gridPrefix, requestID string, ic *pb.ImportCases) error {
	if err := checkRequestID(requestID); err != nil {
		return err
	}
	if ic.IdPrefix != "" {
		return invalid("command.import_cases.id_prefix", "the leader's to set")
	}
	if n := len(ic.Cases); n == 0 || n > MaxImportRows {
		return invalid("command.import_cases.cases", "1 to %d cases, not %d", MaxImportRows, n)
	}
	for i, e := range ic.Cases {
		c := e.GetCase()
		field := fmt.Sprintf("command.import_cases.cases[%d]", i)
		switch {
		case c == nil || c.LegacyId == "" || c.Version != 1:
			return invalid(field, "a new case (version 1) with a legacy id")
		case c.Id != "" || c.Holder != "" || c.HolderEpoch != 0 || c.ReportedAtNode != "" || c.Ownership != nil:
			return invalid(field, "id, holder, reporting node and ownership are the leader's to set")
		case len(c.History) != 1 || c.History[0].GetRequestId() != requestID:
			return invalid(field, "one history entry recording the request")
		case !strings.HasPrefix(c.GridCode, gridPrefix):
			return invalid(field+".grid_code", "%s lies outside this node's jurisdiction (grid codes %s…)", c.GridCode, gridPrefix)
		}
		if err := cat.ValidateClass(c.Kind, c.MajorCode, c.MinorCode, c.ComponentId, c.GridCode); err != nil {
			return invalid(field, "%v", err)
		}
	}
	return nil
}

// validateAuthChange checks an identity change a replica's API built
// (login, accounts, keys): its shape, never its secrets' content.
func validateAuthChange(requestID string, a *pb.AuthChange) error {
	if err := checkRequestID(requestID); err != nil {
		return err
	}
	if a.By == "" || a.AtUnixMs != 0 {
		return invalid("command.auth", "by is required; at_unix_ms is the leader's to set")
	}
	switch op := a.Op.(type) {
	case *pb.AuthChange_PutAccount:
		acct := op.PutAccount
		if acct == nil || !accountNameRe.MatchString(acct.Name) || len(acct.PasswordHash) < 20 {
			return invalid("command.auth.put_account", "an account needs a name and a password hash")
		}
		return checkAccountFields(acct.Role, acct.Unit, acct.Grids, false)
	case *pb.AuthChange_PutKey:
		k := op.PutKey
		if k == nil || k.Id == "" || len(k.SecretHash) != 32 || !integratorRoles[k.Role] {
			return invalid("command.auth.put_key", "a key needs an id, a SHA-256 secret hash and an integrator role")
		}
	case *pb.AuthChange_PutSession:
		if s := op.PutSession; s == nil || s.Id == "" || s.Account == "" || len(s.RefreshHash) != 32 {
			return invalid("command.auth.put_session", "a session needs an id, an account and a refresh token hash")
		}
	case *pb.AuthChange_PutSigningKey:
		if k := op.PutSigningKey; k == nil || k.Id == "" || len(k.Secret) != 32 {
			return invalid("command.auth.put_signing_key", "a signing key needs an id and 32 bytes")
		}
	case *pb.AuthChange_DeleteAccount, *pb.AuthChange_RevokeKey, *pb.AuthChange_DeleteSession:
	default:
		return invalid("command.auth", "an operation is required")
	}
	return nil
}

func validateReport(cat *catalogue.Catalogue, gridPrefix, requestID string, rp *pb.ReportCase) error {
	if rp.IdPrefix != "" || rp.IdDate != "" || rp.StageDeadlineUnixMs != 0 || rp.Ownership != nil {
		return invalid("command.report", "id_prefix, id_date, stage_deadline_unix_ms and ownership are the leader's to set")
	}
	c := rp.Case
	if c == nil {
		return invalid("command.report.case", "required")
	}
	// The follower converted the location and found the grid: the leader
	// converts what the reporter sent again (deterministic, the same bits)
	// and takes the grid code as given.
	want, err := reportToCase(cat, nil, &pb.ReportCaseRequest{
		RequestId: requestID, Actor: rp.Actor, Role: rp.Role, Note: rp.Note,
		Source: c.Source, Kind: c.Kind, MajorCode: c.MajorCode, MinorCode: c.MinorCode,
		GridCode: c.GridCode, ComponentId: c.ComponentId, Location: reportedLocation(c.Location),
		Description: c.Description, Media: c.Media, Reporter: c.Reporter, Urgency: c.Urgency,
	})
	if err != nil {
		return err
	}
	if !strings.HasPrefix(c.GridCode, gridPrefix) {
		return invalid("grid_code", "%s lies outside this node's jurisdiction (grid codes %s…)", c.GridCode, gridPrefix)
	}
	if !proto.Equal(want, c) {
		return invalid("command.report.case", "carries fields a report does not set (id, state, holder, history…)")
	}
	return nil
}

func validateAct(requestID string, a *pb.CaseAction, now time.Time) error {
	if a.StageDeadlineUnixMs != 0 || a.BaseDeadlineUnixMs != 0 || a.HasBaseDeadline || a.Ownership != nil {
		return invalid("command.act", "stage_deadline_unix_ms, base_deadline_unix_ms and ownership are the leader's to set")
	}
	req := &pb.ActRequest{
		CaseId: a.CaseId, RequestId: requestID, Action: a.Action, Actor: a.Actor, Role: a.Role,
		Note: a.Note, Attachments: a.Attachments, Evidence: a.Evidence, Unit: a.Unit, UnitTier: a.UnitTier,
		TimeLimitMinutes: a.TimeLimitMinutes, ExtensionMinutes: a.ExtensionMinutes, ExpectedVersion: a.ExpectedVersion,
	}
	if a.DeadlineUnixMs != 0 {
		req.Deadline = timestamppb.New(time.UnixMilli(a.DeadlineUnixMs))
	}
	want, err := actToCommand(req, now.UnixMilli())
	if err != nil {
		return err
	}
	want.Principal, want.ActorUnit = a.Principal, a.ActorUnit
	if !proto.Equal(want, a) {
		return invalid("command.act", "carries fields the %s action does not take", a.Action)
	}
	return nil
}

// validateEvidence checks an evidence command a replica's API built from an
// upload: a chunk (no request id: idempotent by sha256 and index) or an
// attach with the leader's stamps empty. Purges are the leader's own.
func validateEvidence(requestID string, ae *pb.AttachEvidence) error {
	switch op := ae.GetOp().(type) {
	case *pb.AttachEvidence_Chunk:
		ch := op.Chunk
		if requestID != "" {
			return invalid("command.request_id", "a chunk carries none: it is idempotent by sha256 and index")
		}
		if ch == nil || !fsm.ValidSHA256(ch.Sha256) || ch.Count == 0 || ch.Index >= ch.Count || len(ch.Data) == 0 || len(ch.Data) > fsm.MaxChunkBytes {
			return invalid("command.attach_evidence.chunk", "a chunk needs a sha256, an index below its count and 1 to %d bytes", fsm.MaxChunkBytes)
		}
		return nil
	case *pb.AttachEvidence_Attach:
		a := op.Attach
		if err := checkRequestID(requestID); err != nil {
			return err
		}
		if err := checkCaseID(a.GetCaseId()); err != nil {
			return err
		}
		ref := a.GetRef()
		if ref == nil || !fsm.ValidSHA256(ref.Sha256) || ref.Size <= 0 || ref.ContentType == "" {
			return invalid("command.attach_evidence.attach.ref", "a reference needs a sha256, a size and a content type")
		}
		if ref.UploadedAt != nil || ref.Node != "" || ref.RequestId != "" {
			return invalid("command.attach_evidence.attach.ref", "uploaded_at, node and request_id are the leader's to set")
		}
		return checkUploadHeader(&pb.UploadEvidenceHeader{CaseId: a.CaseId, RequestId: requestID, Stage: ref.Stage, Kind: ref.Kind, FileName: ref.FileName, Note: ref.Note}, 0)
	case *pb.AttachEvidence_Purge:
		return fmt.Errorf("%w: attach_evidence.purge (the leader's retention proposes it itself)", errNotForwardable)
	}
	return invalid("command.attach_evidence", "an operation is required")
}
