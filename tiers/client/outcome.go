package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cityhub/cityhub/tiers/diskspace"
)

// Outcome is what a caller does after a call.
type Outcome int

const (
	// Done: the call succeeded.
	Done Outcome = iota
	// RetryHere: a passing failure of this replica (a watch cut off as too
	// slow, say): back off, then call the same replica again.
	RetryHere
	// RetryElsewhere: this replica does not lead, there is no leader yet,
	// the leadership is moving, or the replica cannot be reached or is too
	// slow (Unavailable, DeadlineExceeded, a call cancelled by the
	// server): try the next replica; back off once every one has failed.
	RetryElsewhere
	// DiskLow: the leader refuses writes below its disk reserve
	// (Unavailable with ErrorInfo DISK_SPACE_LOW, tiers/diskspace): back
	// off for at least the status's RetryInfo and call the same replica
	// again. Another replica would forward to the same leader.
	DiskLow
	// Final: the request is wrong or refused (InvalidArgument,
	// FailedPrecondition, PermissionDenied, NotFound, ...): retrying it
	// cannot help.
	Final
)

func (o Outcome) String() string {
	switch o {
	case Done:
		return "done"
	case RetryHere:
		return "retry here"
	case RetryElsewhere:
		return "retry on another replica"
	case DiskLow:
		return "disk reserve"
	case Final:
		return "final"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Retryable reports whether the outcome is worth another attempt.
func (o Outcome) Retryable() bool { return o == RetryHere || o == RetryElsewhere || o == DiskLow }

// Classify is what err means for a caller, by the gRPC code the server's
// error table (tiers/errcode) gave it:
//
//   - nil: Done;
//   - a disk-reserve refusal (diskspace.IsRefusal): DiskLow;
//   - Unavailable (not the leader, no leader, leadership moving,
//     unreachable), DeadlineExceeded, Canceled by the other side, and a
//     context error wrapped without a status: RetryElsewhere;
//   - ResourceExhausted (a watch cut off as too slow, too many watchers):
//     RetryHere;
//   - anything else, a non-status error included: Final.
//
// A caller checks its own context before acting on the outcome: a call
// that failed because the caller's context ended is not retried (Do and
// Replicas do so).
func Classify(err error) Outcome {
	if err == nil {
		return Done
	}
	if diskspace.IsRefusal(err) {
		return DiskLow
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return RetryElsewhere
	case codes.ResourceExhausted:
		return RetryHere
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return RetryElsewhere
	}
	return Final
}

// ClassifyAlso is Classify with some more codes treated as outcome o (a
// caller that knows, say, that Aborted means "a run is in progress, come
// back" for its call).
func ClassifyAlso(o Outcome, extra ...codes.Code) func(error) Outcome {
	return func(err error) Outcome {
		c := Classify(err)
		if c != Final {
			return c
		}
		code := status.Code(err)
		for _, e := range extra {
			if code == e {
				return o
			}
		}
		return c
	}
}

// RetryInfo is the delay a status error's RetryInfo detail asks for.
func RetryInfo(err error) (time.Duration, bool) {
	st, ok := status.FromError(err)
	if !ok || err == nil {
		return 0, false
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			return ri.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}

// Wait is how long to wait after err before the next attempt, given the
// backoff's next delay: at least the status's RetryInfo when the server
// sent one (the disk reserve does: diskspace.RetryAfter).
func Wait(err error, next time.Duration) time.Duration {
	if d, ok := RetryInfo(err); ok && d > next {
		return d
	}
	return next
}

// Error is the failure of a call after its retries: the outcome of the
// last error, how many attempts were made, the replica that answered last
// (empty for Do) and the last error, which it wraps (status.Code and
// diskspace.IsRefusal see through it). When the caller's context ended,
// Err wraps both the context's error and the last call's.
type Error struct {
	Outcome  Outcome
	Attempts int
	Addr     string
	Err      error
}

func (e *Error) Error() string {
	where := ""
	if e.Addr != "" {
		where = e.Addr + ": "
	}
	return fmt.Sprintf("%s%v (%s, after %d attempts)", where, e.Err, e.Outcome, e.Attempts)
}

func (e *Error) Unwrap() error { return e.Err }

// OutcomeOf is the outcome of an error Do or Replicas returned (its
// Outcome), or of any other error by Classify.
func OutcomeOf(err error) Outcome {
	var e *Error
	if errors.As(err, &e) {
		return e.Outcome
	}
	return Classify(err)
}
