package diskspace

import (
	"errors"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Reason is the ErrorInfo reason (domain "cityhub") of a status that
// refuses a write for low disk space. A caller that forwards writes (a
// follower to its leader, a relay to a neighbour) tells this refusal from
// "not the leader" by it: both are Unavailable, but only the second is
// worth trying on another replica.
const Reason = "DISK_SPACE_LOW"

// WithDetails adds, when err is a refusal for low disk space, the
// ErrorInfo (Reason, free and reserve bytes, the directory) and a
// RetryInfo of RetryAfter to st. Other errors leave st as it is.
func WithDetails(st *status.Status, err error) *status.Status {
	var le *LowError
	if !errors.As(err, &le) {
		return st
	}
	d, derr := st.WithDetails(
		&errdetails.ErrorInfo{Reason: Reason, Domain: "cityhub", Metadata: map[string]string{
			"dir": le.Dir, "free_bytes": strconv.FormatUint(le.Free, 10), "reserve_bytes": strconv.FormatUint(le.Reserve, 10),
		}},
		&errdetails.RetryInfo{RetryDelay: durationpb.New(RetryAfter)},
	)
	if derr != nil {
		return st
	}
	return d
}

// IsRefusal reports whether err refuses a write for low disk space: an
// error wrapping ErrLow, or a gRPC status that carries Reason.
func IsRefusal(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrLow) {
		return true
	}
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetReason() == Reason && ei.GetDomain() == "cityhub" {
			return true
		}
	}
	return false
}
