package api

import (
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"

	"github.com/cityhub/cityhub/tiers/errcode"
	"github.com/cityhub/cityhub/tiers/workflow"
)

// ErrInvalid marks a request this package refuses before it reaches raft.
var ErrInvalid = errcode.ErrInvalid

// The API's own refusals; tiers/errcode maps them with every other error.
var (
	errFederationNotReady = errcode.ErrFederationNotReady
	errNoCatalogue        = errcode.ErrNoCatalogue
	errNoReconciler       = errcode.ErrNoReconciler
	errNoAntiEntropy      = errcode.ErrNoAntiEntropy
	errNoGeometry         = errcode.ErrNoGeometry
	errNoFeed             = errcode.ErrNoFeed
	errAuthOff            = errcode.ErrAuthOff
	errAccountExists      = errcode.ErrAccountExists
	errEvidenceOff        = errcode.ErrEvidenceOff
	errEvidenceNotHere    = errcode.ErrEvidenceNotHere
	errEvidencePerCase    = errcode.ErrEvidencePerCase
	errEvidenceNotOnCase  = errcode.ErrEvidenceNotOnCase
)

// toStatus turns any error into a gRPC status error by the one table
// (tiers/errcode). Status errors (from a forwarded call to the leader)
// pass through unchanged.
func toStatus(err error) error { return errcode.Status(err) }

// invalid builds a field error for request validation in this package.
func invalid(field, format string, args ...any) error {
	return &workflow.FieldError{Field: field, Reason: fmt.Sprintf(format, args...), Err: ErrInvalid}
}

// fieldViolation is the detail that names a request field in a status.
func fieldViolation(field, reason string) *errdetails.BadRequest {
	return errcode.FieldViolation(field, reason)
}
