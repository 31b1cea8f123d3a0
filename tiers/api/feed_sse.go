package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/feed"
)

// The change feed over REST for browsers and simple integrators:
// Server-Sent Events at GET /v1/cases:watch (grpc-gateway would stream
// the gRPC call as JSON lines, which EventSource cannot read, and its
// in-process mode serves no streams). The query parameters are
// WatchCasesRequest's, as the gateway reads them (after_revision=…,
// filter.states=STATE_FILED, filter.owner_unit=…, include_case=true); a
// Last-Event-ID header (EventSource sends it when it reconnects) is a
// resume token. Every event's id is the resume token after it:
//
//	id: <token>            event: change     data: CaseChange (JSON)
//	id: <token>            event: heartbeat  data: WatchCasesResponse (JSON)
//	                       event: error      data: the REST error body; the stream ends
//
// Refusals before the stream starts are ordinary REST errors (401, 403,
// 400, 410 with the current revision, 429).
const ssePath = "/v1/cases:watch"

// longLived reports whether a REST path holds its request open (the
// feed's SSE stream and long poll): such requests take no in-flight slot
// (limits.max_concurrent); feed.max_watchers bounds them instead. The
// server's read timeout does not end them: it bounds reading the request,
// and net/http lifts it once a bodiless request is read.
func longLived(path string) bool { return path == ssePath || path == "/v1/cases:poll" }

func (f *FeedServer) serveSSE(w http.ResponseWriter, req *http.Request) {
	r := &pb.WatchCasesRequest{}
	if err := runtime.PopulateQueryParameters(r, req.URL.Query(), &utilities.DoubleArray{}); err != nil {
		writeError(w, status.Convert(toStatus(invalid("query", "%v", err))))
		return
	}
	if id := req.Header.Get("Last-Event-ID"); id != "" {
		r.ResumeToken, r.AfterRevision, r.FromOldest = id, nil, false
	}
	ctx := req.Context()
	wt, err := f.open(ctx, position{r.AfterRevision, r.ResumeToken, r.FromOldest}, r.Filter, r.IncludeCase)
	if err != nil {
		st := status.Convert(err)
		if st.Code() == codes.ResourceExhausted {
			w.Header().Set("Retry-After", retryAfter(st))
		}
		writeError(w, st)
		return
	}
	defer wt.w.Close()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // proxies must not hold events back
	w.WriteHeader(http.StatusOK)
	var buf bytes.Buffer
	buf.WriteString("retry: 2000\n\n") // EventSource reconnects after 2 s
	send := func(m *pb.WatchCasesResponse) error {
		if err := f.sseEvents(&buf, m); err != nil {
			return err
		}
		// A client that does not take the events in time is cut off
		// (feed.write_timeout): it resumes with Last-Event-ID.
		_ = rc.SetWriteDeadline(time.Now().Add(f.opts.WriteTimeout))
		if _, err := w.Write(buf.Bytes()); err != nil {
			return err
		}
		buf.Reset()
		return rc.Flush()
	}
	if err := f.follow(ctx, wt, send); err != nil && ctx.Err() == nil {
		f.sseError(w, rc, f.status(err))
	}
}

// sseEvents writes m as events: one per change, or a heartbeat.
func (f *FeedServer) sseEvents(buf *bytes.Buffer, m *pb.WatchCasesResponse) error {
	if m.Heartbeat {
		data, err := jsonMarshaler.Marshal(m)
		if err != nil {
			return err
		}
		fmt.Fprintf(buf, "id: %s\nevent: heartbeat\ndata: %s\n\n", m.ResumeToken, oneLine(data))
		return nil
	}
	for _, ch := range m.Changes {
		data, err := jsonMarshaler.Marshal(ch)
		if err != nil {
			return err
		}
		fmt.Fprintf(buf, "id: %s\nevent: change\ndata: %s\n\n", feed.Token(f.opts.Group, ch.Revision), oneLine(data))
	}
	return nil
}

// sseError ends a stream with an error event holding the REST error body.
func (f *FeedServer) sseError(w http.ResponseWriter, rc *http.ResponseController, err error) {
	st := status.Convert(err)
	data, _ := json.Marshal(restError(st, httpStatus(st.Code())))
	_ = rc.SetWriteDeadline(time.Now().Add(f.opts.WriteTimeout))
	if _, werr := fmt.Fprintf(w, "event: error\ndata: %s\n\n", data); werr == nil {
		_ = rc.Flush()
	}
}

// oneLine keeps an event's data on one line (SSE ends a field at a newline).
func oneLine(b []byte) []byte {
	return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r"), nil), []byte("\n"), []byte(" "))
}
