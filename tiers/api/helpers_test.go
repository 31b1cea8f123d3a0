package api_test

import (
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// assertField checks err is InvalidArgument naming field in its details.
func assertField(t *testing.T, err error, field string) {
	t.Helper()
	st := status.Convert(err)
	if err == nil || st.Code() != codes.InvalidArgument {
		t.Errorf("want InvalidArgument for %s, got %v", field, err)
		return
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.FieldViolations) > 0 && br.FieldViolations[0].Field == field {
			return
		}
	}
	t.Errorf("error %q does not name field %s (details %v)", st.Message(), field, st.Details())
}
