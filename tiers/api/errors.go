package api

import (
	"context"
	"errors"
	"fmt"

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

// ErrInvalid marks a request this package refuses before it reaches raft.
var ErrInvalid = errors.New("invalid request")

// errFederationNotReady refuses writes until the federation topology is in
// the state machine.
var errFederationNotReady = errors.New("federation not ready")

// Ownership pieces a node may not run (a node outside a federation, or
// without a responsibility catalogue).
var (
	errNoCatalogue   = errors.New("no responsibility catalogue is configured on this node (ownership.rules)")
	errNoReconciler  = errors.New("this node runs no reconciler (it is not part of a federation)")
	errNoAntiEntropy = errors.New("this node runs no anti-entropy (it is not part of a federation)")
)

// errorCodes is the one table from sentinel errors to gRPC codes. The first
// match wins, so more specific errors come first.
var errorCodes = []struct {
	err  error
	code codes.Code
}{
	{ErrInvalid, codes.InvalidArgument},
	{workflow.ErrInvalidArgument, codes.InvalidArgument},
	{catalogue.ErrInvalidCode, codes.InvalidArgument},
	{catalogue.ErrUnknownClass, codes.InvalidArgument},
	{store.ErrBadPageToken, codes.InvalidArgument},
	{store.ErrBadArea, codes.InvalidArgument},
	{fsm.ErrBadCommand, codes.InvalidArgument},
	{fsm.ErrUnitNotBelow, codes.InvalidArgument},
	{fsm.ErrBadTopology, codes.InvalidArgument},
	{workflow.ErrForbidden, codes.FailedPrecondition},
	{fsm.ErrNotHolder, codes.FailedPrecondition},
	{fsm.ErrNoParent, codes.FailedPrecondition},
	{fsm.ErrNotInReview, codes.FailedPrecondition},
	{fsm.ErrInReview, codes.FailedPrecondition},
	{fsm.ErrNotFederated, codes.FailedPrecondition},
	{fsm.ErrEvidenceIncomplete, codes.Aborted},
	{fsm.ErrEvidenceMismatch, codes.InvalidArgument},
	{fsm.ErrEvidenceLimit, codes.FailedPrecondition},
	{errEvidenceOff, codes.FailedPrecondition},
	{errFederationNotReady, codes.Unavailable},
	{errNoCatalogue, codes.FailedPrecondition},
	{errNoReconciler, codes.FailedPrecondition},
	{errNoAntiEntropy, codes.FailedPrecondition},
	{errNoGeometry, codes.FailedPrecondition},
	{reconcile.ErrInvalid, codes.InvalidArgument},
	{reconcile.ErrNotLeader, codes.Unavailable},
	{reconcile.ErrRunning, codes.Aborted},
	{reconcile.ErrNoRun, codes.NotFound},
	{node.ErrNoOtherVoter, codes.FailedPrecondition},
	{node.ErrRejoinSelf, codes.FailedPrecondition},
	{node.ErrUpgradeInProgress, codes.Unavailable},
	{fsm.ErrCatchingUp, codes.Unavailable},
	// The change feed: a position older than the window (REST 410 Gone),
	// a watcher cut off as too slow or one too many, a feed that stopped.
	{store.ErrCompacted, codes.OutOfRange},
	{feed.ErrSlowWatcher, codes.ResourceExhausted},
	{feed.ErrTooManyWatchers, codes.ResourceExhausted},
	{feed.ErrBadToken, codes.InvalidArgument},
	{feed.ErrClosed, codes.Unavailable},
	{errNoFeed, codes.FailedPrecondition},
	{workflow.ErrRoleNotAllowed, codes.PermissionDenied},
	{workflow.ErrVersionMismatch, codes.Aborted},
	{workflow.ErrInconsistent, codes.Internal},
	{fsm.ErrRequestReused, codes.AlreadyExists},
	{fsm.ErrIdentityExists, codes.AlreadyExists},
	{errAccountExists, codes.AlreadyExists},
	{fsm.ErrIdentityNotFound, codes.NotFound},
	{auth.ErrUnauthenticated, codes.Unauthenticated},
	{auth.ErrPermissionDenied, codes.PermissionDenied},
	{auth.ErrNoSigningKey, codes.Unavailable},
	{errAuthOff, codes.FailedPrecondition},
	{store.ErrNotFound, codes.NotFound},
	{node.ErrUnknownServer, codes.NotFound},
	// Below the disk reserve: Unavailable, not ResourceExhausted. The
	// condition is the node's, not the caller's quota, and clears without
	// the caller changing anything; gRPC clients and our own forwarders
	// retry Unavailable, and REST answers 503 with Retry-After, which
	// HTTP clients and proxies read as "come back later" (429, the
	// gateway's ResourceExhausted, would blame the caller's rate). The
	// status carries ErrorInfo DISK_SPACE_LOW to tell it from "not the
	// leader" (diskspace.WithDetails).
	{diskspace.ErrLow, codes.Unavailable},
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

// toStatus turns any error into a gRPC status error. Status errors (from a
// forwarded call to the leader) pass through unchanged.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus().Err()
	}
	code := codes.Internal
	for _, e := range errorCodes {
		if errors.Is(err, e.err) {
			code = e.code
			break
		}
	}
	st := diskspace.WithDetails(status.New(code, err.Error()), err)
	if field, reason, ok := fieldOf(err); ok {
		if d, derr := st.WithDetails(fieldViolation(field, reason)); derr == nil {
			st = d
		}
	}
	return st.Err()
}

// fieldOf finds the request field an error names, whichever package made it.
func fieldOf(err error) (field, reason string, ok bool) {
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

// invalid builds a field error for request validation in this package.
func invalid(field, format string, args ...any) error {
	return &workflow.FieldError{Field: field, Reason: fmt.Sprintf(format, args...), Err: ErrInvalid}
}

// fieldViolation is the detail that names a request field in a status.
func fieldViolation(field, reason string) *errdetails.BadRequest {
	return &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: reason}}}
}
