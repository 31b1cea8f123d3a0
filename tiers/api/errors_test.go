package api

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cityhub/cityhub/tiers/diskspace"
	"github.com/cityhub/cityhub/tiers/errcode"
	"github.com/cityhub/cityhub/tiers/workflow"
)

func TestErrorTable(t *testing.T) {
	for _, e := range errcode.Table {
		wrapped := fmt.Errorf("context: %w", e.Err)
		if got := status.Code(toStatus(wrapped)); got != e.Code {
			t.Errorf("%v: code %v, want %v", e.Err, got, e.Code)
		}
	}
	if got := status.Code(toStatus(errors.New("surprise"))); got != codes.Internal {
		t.Errorf("unknown error: %v, want Internal", got)
	}
	// A status from a forwarded call passes through unchanged.
	in := status.Error(codes.FailedPrecondition, "from the leader")
	if out := toStatus(fmt.Errorf("forwarded: %w", in)); status.Convert(out).Message() != "from the leader" {
		t.Errorf("forwarded status changed: %v", out)
	}
	// A field error carries the field in the details.
	st := status.Convert(toStatus(&workflow.FieldError{Field: "unit", Reason: "required"}))
	if st.Code() != codes.InvalidArgument || len(st.Details()) != 1 {
		t.Fatalf("field error: %v %v", st.Code(), st.Details())
	}
	// Below the disk reserve: Unavailable (503) that says why and when to
	// retry, so forwarders do not take it for "not the leader".
	st = status.Convert(toStatus(fmt.Errorf("propose: %w", &diskspace.LowError{Dir: "/d", Free: 1, Reserve: 2})))
	if st.Code() != codes.Unavailable || !diskspace.IsRefusal(st.Err()) || !hasRetryInfo(st) || httpStatus(st.Code()) != 503 || retryAfter(st) != "10" {
		t.Fatalf("disk refusal: %v %v", st.Code(), st.Details())
	}
	if httpStatus(codes.FailedPrecondition) != 409 || httpStatus(codes.InvalidArgument) != 400 || httpStatus(codes.NotFound) != 404 {
		t.Fatal("http status table")
	}
}
