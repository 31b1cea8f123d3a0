package workflow

import "errors"

// Sentinel errors. Apply and NewCase wrap them with %w and a message that
// tells the caller what to do; test them with errors.Is.
var (
	// ErrForbidden: the action is not allowed from the case's current state
	// (or pending request, or source). The message names the current state
	// and the actions allowed now.
	ErrForbidden = errors.New("forbidden")
	// ErrRoleNotAllowed: the role may not take the action. The message names
	// the roles that may.
	ErrRoleNotAllowed = errors.New("role not allowed")
	// ErrVersionMismatch: Step.ExpectedVersion is set and differs from the
	// case version.
	ErrVersionMismatch = errors.New("version mismatch")
	// ErrInvalidArgument: the step is malformed. Most such errors are a
	// *FieldError naming the field.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrInconsistent: the stored case breaks a workflow invariant (for
	// example SUSPENDED without suspended_from), so the action cannot decide
	// where to go. This is an internal error, not the caller's fault.
	ErrInconsistent = errors.New("inconsistent case")
)

// FieldError names the request field that is wrong.
type FieldError struct {
	Field  string // request field name, e.g. "unit", "deadline", "extension_minutes"
	Reason string // what is wrong and what is needed
	Err    error  // sentinel it wraps; nil means ErrInvalidArgument
}

// Error returns "field: reason".
func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Unwrap returns the wrapped sentinel (ErrInvalidArgument by default).
func (e *FieldError) Unwrap() error {
	if e.Err == nil {
		return ErrInvalidArgument
	}
	return e.Err
}

func fieldErr(field, reason string) error {
	return &FieldError{Field: field, Reason: reason, Err: ErrInvalidArgument}
}
