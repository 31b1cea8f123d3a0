package api

import (
	"errors"
	"io"
	"strings"
	"testing"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// TestJSONCodecDecodesOnce checks the gateway's single-read decoder: what
// it decodes, what it refuses, and that a buffer given back to the pool
// and reused leaves the messages decoded from it whole.
func TestJSONCodecDecodesOnce(t *testing.T) {
	decode := func(body string, v any) error {
		return jsonMarshaler.NewDecoder(strings.NewReader(body)).Decode(v)
	}
	long := strings.Repeat("井盖缺失", 500)
	var first pb.ReportCaseRequest
	if err := decode(`{"request_id":"r-1","description":"`+long+`","grid_code":"320582110152102"}`, &first); err != nil {
		t.Fatal(err)
	}
	var second pb.ReportCaseRequest // ending in a newline, as json.Encoder writes a body
	if err := decode("{\"request_id\":\"r-2\",\"description\":\"短\"}\n", &second); err != nil {
		t.Fatal(err)
	}
	if first.RequestId != "r-1" || first.Description != long || first.GridCode != "320582110152102" {
		t.Fatalf("the first message changed when its buffer was reused: %q %d bytes %q", first.RequestId, len(first.Description), first.GridCode)
	}
	if second.RequestId != "r-2" || second.Description != "短" {
		t.Fatalf("second: %q %q", second.RequestId, second.Description)
	}
	// No body (or only white space) is io.EOF: the gateway's "no body".
	for _, body := range []string{"", " \n\t"} {
		var m pb.ReportCaseRequest
		if err := decode(body, &m); !errors.Is(err, io.EOF) {
			t.Fatalf("body %q: %v, want io.EOF", body, err)
		}
	}
	// Refused: an unknown field, broken JSON, a second value, trailing text.
	for _, body := range []string{
		`{"request_id":"x","no_such_field":1}`,
		`{"request_id":`,
		`{"request_id":"a"} {"request_id":"b"}`,
		`{"request_id":"a"} x`,
	} {
		var m pb.ReportCaseRequest
		if err := decode(body, &m); err == nil {
			t.Fatalf("body %q decoded to %v", body, &m)
		}
	}
	// A body mapped to a field that is no message goes to JSONPb's decoder.
	var s string
	if err := decode(`"城管"`, &s); err != nil || s != "城管" {
		t.Fatalf("a string body: %q, %v", s, err)
	}
}
