// Package errcode is the one table from cityhub's errors to the gRPC codes
// a caller acts on, for everything that answers a caller: the client API
// (tiers/api, REST through the gateway's mapping of codes), the internal
// plane, and the federation's server (federation/wire). A caller decides
// from the code alone whether to fix its request (InvalidArgument,
// FailedPrecondition, ...), to retry on another replica (Unavailable: the
// leadership is moving, or this replica is not the leader) or to back off
// (Unavailable with DISK_SPACE_LOW).
package errcode

import (
	"context"
	"errors"

	"github.com/hashicorp/raft"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cityhub/cityhub/federation/reconcile"
	"github.com/cityhub/cityhub/tiers/auth"
	"github.com/cityhub/cityhub/tiers/catalogue"
	"github.com/cityhub/cityhub/tiers/diskspace"
	"github.com/cityhub/cityhub/tiers/feed"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/node"
	"github.com/cityhub/cityhub/tiers/store"
	"github.com/cityhub/cityhub/tiers/workflow"
)

// Refusals of the API itself, before anything reaches raft (tiers/api
// wraps them with what it refuses).
var (
	// ErrInvalid marks a request refused before it reaches raft.
	ErrInvalid = errors.New("invalid request")
	// ErrFederationNotReady refuses writes until the federation topology
	// is in the state machine.
	ErrFederationNotReady = errors.New("federation not ready")
	// Pieces a node may not run: outside a federation, without a
	// responsibility catalogue, grid geometry, change feed, evidence or
	// authentication.
	ErrNoCatalogue   = errors.New("no responsibility catalogue is configured on this node (ownership.rules)")
	ErrNoReconciler  = errors.New("this node runs no reconciler (it is not part of a federation)")
	ErrNoAntiEntropy = errors.New("this node runs no anti-entropy (it is not part of a federation)")
	ErrNoGeometry    = errors.New("no grid geometry is configured on this node (geo.grids)")
	ErrNoFeed        = errors.New("this server has no change feed")
	ErrEvidenceOff   = errors.New("this node keeps no evidence")
	ErrAuthOff       = errors.New("authentication is off on this node (auth.disabled)")
	// ErrAccountExists refuses to create an account that exists.
	ErrAccountExists = errors.New("already exists")
	// ErrEvidencePerCase refuses evidence beyond the limit per case.
	ErrEvidencePerCase = errors.New("case carries the most evidence allowed (evidence.max_per_case)")
	// ErrEvidenceNotOnCase: the case does not carry that evidence.
	ErrEvidenceNotOnCase = errors.New("evidence is not attached to the case")
	// ErrEvidenceNotHere: the bytes are not stored on this node.
	ErrEvidenceNotHere = errors.New("the evidence's bytes are not on this node and it cannot fetch them")
)

// Row is one line of the table.
type Row struct {
	Err  error
	Code codes.Code
}

// Table is the one table from sentinel errors to gRPC codes. The first
// match wins, so more specific errors come first (TestEverySentinelOneCode
// holds that no row is hidden by an earlier one).
var Table = []Row{
	{ErrInvalid, codes.InvalidArgument},
	{workflow.ErrInvalidArgument, codes.InvalidArgument},
	{catalogue.ErrInvalidCode, codes.InvalidArgument},
	{catalogue.ErrUnknownClass, codes.InvalidArgument},
	{store.ErrBadPageToken, codes.InvalidArgument},
	{store.ErrBadAuditToken, codes.InvalidArgument},
	{store.ErrBadArea, codes.InvalidArgument},
	{auth.ErrWeakPassword, codes.InvalidArgument},
	{fsm.ErrBadCommand, codes.InvalidArgument},
	{fsm.ErrBatchTooLarge, codes.InvalidArgument},
	{fsm.ErrUnitNotBelow, codes.InvalidArgument},
	{fsm.ErrBadTopology, codes.InvalidArgument},
	{node.ErrInvalidRegistration, codes.InvalidArgument},
	{fsm.ErrNothingBelow, codes.FailedPrecondition},
	{workflow.ErrForbidden, codes.FailedPrecondition},
	{fsm.ErrNotHolder, codes.FailedPrecondition},
	{fsm.ErrNoParent, codes.FailedPrecondition},
	{fsm.ErrNotInReview, codes.FailedPrecondition},
	{fsm.ErrInReview, codes.FailedPrecondition},
	{fsm.ErrNotFederated, codes.FailedPrecondition},
	{fsm.ErrEvidenceIncomplete, codes.Aborted},
	{fsm.ErrEvidenceMismatch, codes.InvalidArgument},
	{fsm.ErrEvidenceLimit, codes.FailedPrecondition},
	{ErrEvidencePerCase, codes.FailedPrecondition},
	{ErrEvidenceNotOnCase, codes.NotFound},
	{ErrEvidenceNotHere, codes.NotFound},
	{ErrEvidenceOff, codes.FailedPrecondition},
	{ErrFederationNotReady, codes.Unavailable},
	{ErrNoCatalogue, codes.FailedPrecondition},
	{ErrNoReconciler, codes.FailedPrecondition},
	{ErrNoAntiEntropy, codes.FailedPrecondition},
	{ErrNoGeometry, codes.FailedPrecondition},
	{reconcile.ErrInvalid, codes.InvalidArgument},
	{reconcile.ErrNotLeader, codes.Unavailable},
	{reconcile.ErrRunning, codes.Aborted},
	{reconcile.ErrNoRun, codes.NotFound},
	{node.ErrNoOtherVoter, codes.FailedPrecondition},
	{node.ErrRejoinSelf, codes.FailedPrecondition},
	{node.ErrNotMember, codes.PermissionDenied},
	{node.ErrUpgradeInProgress, codes.Unavailable},
	// A leader's own command offered as a client's write: what the
	// forward check answers for it too.
	{node.ErrNotClientCommand, codes.PermissionDenied},
	{fsm.ErrCatchingUp, codes.Unavailable},
	// The change feed: a position older than the window (REST 410 Gone),
	// a watcher cut off as too slow or one too many, a feed that stopped.
	{store.ErrCompacted, codes.OutOfRange},
	// A records-only view that read an index after a commit moved it:
	// read again.
	{store.ErrIndexMoved, codes.Aborted},
	{feed.ErrSlowWatcher, codes.ResourceExhausted},
	{feed.ErrTooManyWatchers, codes.ResourceExhausted},
	{feed.ErrBadToken, codes.InvalidArgument},
	{feed.ErrClosed, codes.Unavailable},
	{ErrNoFeed, codes.FailedPrecondition},
	{workflow.ErrRoleNotAllowed, codes.PermissionDenied},
	{workflow.ErrVersionMismatch, codes.Aborted},
	{workflow.ErrInconsistent, codes.Internal},
	{fsm.ErrRequestReused, codes.AlreadyExists},
	{fsm.ErrIdentityExists, codes.AlreadyExists},
	{ErrAccountExists, codes.AlreadyExists},
	{fsm.ErrIdentityNotFound, codes.NotFound},
	// A replica behind the login of a token it is shown: another replica,
	// or this one a moment later, takes it (ahead of ErrUnauthenticated).
	{auth.ErrReplicaBehind, codes.Unavailable},
	{auth.ErrUnauthenticated, codes.Unauthenticated},
	{auth.ErrPermissionDenied, codes.PermissionDenied},
	{auth.ErrNoSigningKey, codes.Unavailable},
	{ErrAuthOff, codes.FailedPrecondition},
	{store.ErrNotFound, codes.NotFound},
	{node.ErrUnknownServer, codes.NotFound},
	// Below the disk reserve: Unavailable, not ResourceExhausted. The
	// condition is the node's, not the caller's quota, and clears without
	// the caller changing anything; gRPC clients and our own forwarders
	// retry Unavailable, and REST answers 503 with Retry-After, which
	// HTTP clients and proxies read as "come back later" (429, the
	// gateway's ResourceExhausted, would blame the caller's rate). The
	// status carries ErrorInfo DISK_SPACE_LOW to tell it from "not the
	// leader" (diskspace.WithDetails), and a forwarder does not try
	// another replica with it.
	{diskspace.ErrLow, codes.Unavailable},
	// The leadership is moving, or this replica does not lead: retry,
	// on another replica.
	{node.ErrNoLeader, codes.Unavailable},
	{node.ErrNotLeader, codes.Unavailable},
	{node.ErrShutdown, codes.Unavailable},
	{raft.ErrNotLeader, codes.Unavailable},
	{raft.ErrLeadershipLost, codes.Unavailable},
	{raft.ErrLeadershipTransferInProgress, codes.Unavailable},
	{raft.ErrRaftShutdown, codes.Unavailable},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{context.Canceled, codes.Canceled},
}

// Code is the code of err by the table: a status error's own code, the
// first row err matches, else Internal.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		if c := se.GRPCStatus().Code(); c != codes.Unknown {
			return c
		}
	}
	for _, r := range Table {
		if errors.Is(err, r.Err) {
			return r.Code
		}
	}
	return codes.Internal
}

// Status turns any error into a gRPC status error: a status error (from a
// forwarded call) passes through unchanged; anything else gets the code of
// the table, with the disk reserve's details (diskspace.WithDetails) and
// the request field it names (workflow.FieldError, catalogue.FieldError)
// as a BadRequest detail.
func Status(err error) error {
	if err == nil {
		return nil
	}
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus().Err()
	}
	st := diskspace.WithDetails(status.New(Code(err), err.Error()), err)
	if field, reason, ok := FieldOf(err); ok {
		if d, derr := st.WithDetails(FieldViolation(field, reason)); derr == nil {
			st = d
		}
	}
	return st.Err()
}

// FieldOf finds the request field an error names, whichever package made
// it.
func FieldOf(err error) (field, reason string, ok bool) {
	var wf *workflow.FieldError
	if errors.As(err, &wf) {
		return wf.Field, wf.Reason, true
	}
	var cf *catalogue.FieldError
	if errors.As(err, &cf) {
		return cf.Field, cf.Reason, true
	}
	return "", "", false
}

// FieldViolation is the detail that names a request field in a status.
func FieldViolation(field, reason string) *errdetails.BadRequest {
	return &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: reason}}}
}
