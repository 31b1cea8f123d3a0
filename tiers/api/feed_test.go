package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/cityhub/cityhub/config"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// feedHead is the newest revision in member i's store.
func feedHead(t *testing.T, cl *testcluster.Cluster, i int) uint64 {
	t.Helper()
	head, _, err := cl.Replica(i).Node.Store().FeedBounds()
	if err != nil {
		t.Fatal(err)
	}
	return head
}

// pollAll reads the whole feed as cred sees it, by long polls, up to the
// store's head.
func pollAll(t *testing.T, cl *testcluster.Cluster, cred string, f *pb.ChangeFilter, include bool) []*pb.CaseChange {
	t.Helper()
	head := feedHead(t, cl, 0)
	fc := pb.NewFeedServiceClient(cl.Conn(0))
	var (
		after uint64
		out   []*pb.CaseChange
	)
	deadline := time.Now().Add(30 * time.Second)
	for after < head {
		if time.Now().After(deadline) {
			t.Fatalf("polling stuck at revision %d of %d", after, head)
		}
		resp, err := fc.PollCases(withCred(context.Background(), cred), &pb.PollCasesRequest{
			AfterRevision: &after, Filter: f, IncludeCase: include, Limit: 7, Wait: durationpb.New(time.Second)})
		if err != nil {
			t.Fatalf("poll after %d: %v", after, err)
		}
		for _, ch := range resp.Changes {
			if ch.Revision <= after || ch.Revision > resp.Revision {
				t.Fatalf("change %d outside (%d, %d]", ch.Revision, after, resp.Revision)
			}
		}
		out = append(out, resp.Changes...)
		after = resp.Revision
	}
	return out
}

func caseIDs(chs []*pb.CaseChange) []string {
	var ids []string
	for _, ch := range chs {
		if !slices.Contains(ids, ch.CaseId) {
			ids = append(ids, ch.CaseId)
		}
	}
	slices.Sort(ids)
	return ids
}

// TestFeedScope: the feed is narrowed to the caller's scope by the list
// endpoints' check: a community grid worker (handling unit) sees only its
// unit's cases, an inspector only its grids, an integrator only its own
// reports; node-wide seats see every change; the administrator (no
// case.list) is refused, and so is a unit asking for another unit.
func TestFeedScope(t *testing.T) {
	cl, _, seats := authCluster(t)
	w := &walker{t: t, cl: cl, seats: seats}
	inUnit := w.caseIn(pb.Action_ACTION_ACCEPT) // dispatched to sanitation
	parks := w.caseIn(pb.Action_ACTION_DISPATCH)
	w.do("dispatcher", parks, pb.Action_ACTION_DISPATCH, func(r *pb.ActRequest) { r.Unit = "parks" })
	app := seatNamed(seats, "app")
	own, err := cl.Cases(0).ReportCase(withCred(context.Background(), app.cred), &pb.ReportCaseRequest{
		RequestId: "feed-app-report", Source: pb.Source_SOURCE_APP, Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02",
		GridCode: inGrid, Description: "路边垃圾 garbage"})
	if err != nil {
		t.Fatal(err)
	}
	head := feedHead(t, cl, 0)

	all := pollAll(t, cl, seatNamed(seats, "leader").cred, nil, false)
	if uint64(len(all)) != head {
		t.Fatalf("the shift leader saw %d changes, want all %d", len(all), head)
	}
	for name, want := range map[string][]string{
		"unit-out": {parks},       // the parks unit: only the case dispatched to it
		"insp-out": nil,           // patrols another grid
		"camera":   nil,           // reported nothing
		"app":      {own.Case.Id}, // its own report only
	} {
		got := pollAll(t, cl, seatNamed(seats, name).cred, nil, false)
		if ids := caseIDs(got); !slices.Equal(ids, want) {
			t.Errorf("%s sees cases %v, want %v", name, ids, want)
		}
	}
	unit := pollAll(t, cl, seatNamed(seats, "unit-in").cred, nil, true)
	if ids := caseIDs(unit); !slices.Equal(ids, []string{inUnit}) {
		t.Errorf("unit-in sees cases %v, want %v", ids, []string{inUnit})
	}
	for _, ch := range unit {
		if ch.OwnerUnit != unitIn {
			t.Errorf("unit-in was sent a change owned by %q", ch.OwnerUnit)
		}
		if ch.Case == nil || ch.Case.Id != inUnit || ch.Case.Reporter != nil {
			t.Errorf("unit-in's attached case: %v (want its case, without the reporter's contact)", ch.Case)
		}
	}
	// The same narrowing on the stream.
	fc := pb.NewFeedServiceClient(cl.Conn(0))
	ctx, cancel := context.WithTimeout(withCred(context.Background(), seatNamed(seats, "unit-out").cred), 30*time.Second)
	defer cancel()
	stream, err := fc.WatchCases(ctx, &pb.WatchCasesRequest{FromOldest: true})
	if err != nil {
		t.Fatal(err)
	}
	var streamed []*pb.CaseChange
	for pos := uint64(0); pos < head; {
		m, err := stream.Recv()
		if err != nil {
			t.Fatalf("watch as unit-out: %v", err)
		}
		streamed, pos = append(streamed, m.Changes...), m.Revision
	}
	if ids := caseIDs(streamed); !slices.Equal(ids, []string{parks}) {
		t.Errorf("unit-out's stream holds cases %v, want %v", ids, []string{parks})
	}
	cancel()

	for name, req := range map[string]*pb.PollCasesRequest{
		"admin":    {},
		"unit-out": {Filter: &pb.ChangeFilter{OwnerUnit: unitIn}},
	} {
		_, err := fc.PollCases(withCred(context.Background(), seatNamed(seats, name).cred), req)
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("poll by %s (%v): %v, want PermissionDenied", name, req, err)
		}
	}
}

// TestFeedCompactedPosition: a position older than the window is refused
// with OUT_OF_RANGE (REST 410) naming the current revision to start from
// after re-listing, on the stream, the long poll and SSE alike.
func TestFeedCompactedPosition(t *testing.T) {
	cl := testcluster.New(t, 1, func(c *config.Config) { c.Feed.Window = 10 })
	for i := 0; i < 25; i++ {
		if _, err := cl.Cases(0).ReportCase(context.Background(), report(fmt.Sprintf("compact-%d", i), "压缩 compaction")); err != nil {
			t.Fatal(err)
		}
	}
	if head := feedHead(t, cl, 0); head != 25 {
		t.Fatalf("head %d, want 25", head)
	}
	fc := pb.NewFeedServiceClient(cl.Conn(0))
	old := uint64(3)
	check := func(what string, err error) {
		t.Helper()
		st := status.Convert(err)
		if st.Code() != codes.OutOfRange || !strings.Contains(st.Message(), "re-list") || !strings.Contains(st.Message(), "after_revision=25") {
			t.Errorf("%s from a compacted position: %v, want OutOfRange telling to re-list and start after 25", what, err)
		}
		var info *errdetails.ErrorInfo
		for _, d := range st.Details() {
			if ei, ok := d.(*errdetails.ErrorInfo); ok {
				info = ei
			}
		}
		if info.GetReason() != "FEED_COMPACTED" || info.GetMetadata()["current_revision"] != "25" || info.GetMetadata()["oldest_revision"] != "16" {
			t.Errorf("%s: error info %v", what, info)
		}
	}
	_, err := fc.PollCases(context.Background(), &pb.PollCasesRequest{AfterRevision: &old})
	check("poll", err)
	stream, err := fc.WatchCases(context.Background(), &pb.WatchCasesRequest{AfterRevision: &old})
	if err == nil {
		_, err = stream.Recv()
	}
	check("watch", err)
	// From the revision the error names, the watch goes on.
	after := uint64(25)
	if resp, err := fc.PollCases(context.Background(), &pb.PollCasesRequest{AfterRevision: &after}); err != nil || resp.Revision != 25 || len(resp.Changes) != 0 {
		t.Errorf("poll from the current revision: %v, %v", resp, err)
	}
	// The oldest kept is still served (once the hub has read them all: it
	// follows the store a moment behind).
	testcluster.WaitFor(t, 30*time.Second, "the hub to read revision 25", func() bool { return cl.Replica(0).Feed().Head() >= 25 })
	after = 15
	if resp, err := fc.PollCases(context.Background(), &pb.PollCasesRequest{AfterRevision: &after, Limit: 100}); err != nil || len(resp.Changes) != 10 || resp.Changes[0].Revision != 16 {
		t.Errorf("poll from just before the oldest kept: %v, %v", resp, err)
	}
	for _, path := range []string{"/v1/cases:poll?after_revision=3", "/v1/cases:watch?after_revision=3"} {
		resp, err := http.Get(cl.HTTPBase(0) + path)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Error struct {
				Code            string `json:"code"`
				Reason          string `json:"reason"`
				CurrentRevision string `json:"current_revision"`
				ResumeToken     string `json:"resume_token"`
			} `json:"error"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusGone || body.Error.Code != "OutOfRange" || body.Error.CurrentRevision != "25" || body.Error.ResumeToken == "" {
			t.Errorf("GET %s: %d %+v %v, want 410 with the current revision and its token", path, resp.StatusCode, body, err)
		}
	}
}

// sseEvent is one Server-Sent Event.
type sseEvent struct{ id, event, data string }

// readSSE parses a text/event-stream into events until the body ends.
func readSSE(body io.Reader, out chan<- sseEvent) {
	defer close(out)
	sc := bufio.NewScanner(body)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.event != "" || ev.data != "" {
				out <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			ev.id = line[len("id: "):]
		case strings.HasPrefix(line, "event: "):
			ev.event = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			ev.data = line[len("data: "):]
		}
	}
}

// openSSE opens the SSE stream with a real HTTP client.
func openSSE(t *testing.T, ctx context.Context, url, lastEventID string) (<-chan sseEvent, *http.Response) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, raw)
	}
	evs := make(chan sseEvent, 64)
	go readSSE(resp.Body, evs)
	return evs, resp
}

func nextEvent(t *testing.T, evs <-chan sseEvent, kind string) sseEvent {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				t.Fatalf("stream ended waiting for a %s event", kind)
			}
			if ev.event == "error" {
				t.Fatalf("error event: %s", ev.data)
			}
			if ev.event == kind {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event", kind)
		}
	}
}

// TestFeedSSE: the feed over REST as Server-Sent Events with a real HTTP
// client: changes as `change` events whose ids resume the stream
// (Last-Event-ID), heartbeats while idle, a stream that outlives the
// server's read timeout, and that takes no in-flight slot (a one-slot
// node still answers other calls while it is open).
func TestFeedSSE(t *testing.T) {
	cl := testcluster.New(t, 1, func(c *config.Config) {
		c.Feed.Heartbeat = 100 * time.Millisecond
		c.Limits.ReadHeaderTimeout, c.Limits.ReadTimeout = 200*time.Millisecond, 300*time.Millisecond
		c.Limits.MaxConcurrent, c.Limits.QueueWait = 1, 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := cl.Cases(0).ReportCase(ctx, report("sse-before", "开始前 before")); err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	evs, resp := openSSE(t, sctx, cl.HTTPBase(0)+"/v1/cases:watch?filter.states=STATE_REPORTED&include_case=true", "")
	first := nextEvent(t, evs, "heartbeat") // from now: a heartbeat names the position
	var hb pb.WatchCasesResponse
	if err := protojson.Unmarshal([]byte(first.data), &hb); err != nil || hb.Revision != 1 || !hb.Heartbeat || first.id != hb.ResumeToken {
		t.Fatalf("first heartbeat %+v: %v", first, err)
	}
	// While the stream is open, the node's one in-flight slot is free.
	if code, body := restCall(t, cl, "", http.MethodGet, "/v1/cases", nil); code != codes.OK {
		t.Fatalf("a list beside an open stream: %v %v", code, body)
	}
	var ids []string
	for i := 0; i < 3; i++ {
		r, err := cl.Cases(0).ReportCase(ctx, report(fmt.Sprintf("sse-%d", i), "事件 event"))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.Case.Id)
	}
	var last sseEvent
	for i := 0; i < 3; i++ {
		last = nextEvent(t, evs, "change")
		var ch pb.CaseChange
		if err := protojson.Unmarshal([]byte(last.data), &ch); err != nil {
			t.Fatalf("change event %q: %v", last.data, err)
		}
		if ch.CaseId != ids[i] || ch.Revision != uint64(i+2) || ch.State != pb.State_STATE_REPORTED || ch.Case.GetId() != ids[i] || last.id == "" {
			t.Fatalf("change event %d: %+v (id %q)", i, &ch, last.id)
		}
	}
	// Idle past the server's read timeout: heartbeats keep coming, and so
	// do changes.
	opened := time.Now()
	for time.Since(opened) < 3*300*time.Millisecond {
		nextEvent(t, evs, "heartbeat")
	}
	r, err := cl.Cases(0).ReportCase(ctx, report("sse-late", "超时后 after the read timeout"))
	if err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, evs, "change"); !strings.Contains(ev.data, r.Case.Id) {
		t.Fatalf("change after the read timeout: %s", ev.data)
	}
	stop()
	resp.Body.Close()
	for range evs {
	}

	// Reconnect as EventSource does, with the id of the last event taken
	// before sse-late: sse-late comes again, then what followed.
	r2, err := cl.Cases(0).ReportCase(ctx, report("sse-after", "断开后 after the disconnect"))
	if err != nil {
		t.Fatal(err)
	}
	evs, resp = openSSE(t, ctx, cl.HTTPBase(0)+"/v1/cases:watch?filter.states=STATE_REPORTED", last.id)
	defer resp.Body.Close()
	for _, want := range []string{r.Case.Id, r2.Case.Id} {
		if ev := nextEvent(t, evs, "change"); !strings.Contains(ev.data, `"`+want+`"`) {
			t.Fatalf("resumed stream: %s, want %s", ev.data, want)
		}
	}
	// Refusals come before the stream, as REST errors.
	for path, want := range map[string]int{
		"/v1/cases:watch?resume_token=bm90LW91cnM":          http.StatusBadRequest,
		"/v1/cases:watch?filter.grid_prefix=32x":            http.StatusBadRequest,
		"/v1/cases:watch?after_revision=1&from_oldest=true": http.StatusBadRequest,
		"/v1/cases:watch?filter.states=STATE_NOT_A_STATE":   http.StatusBadRequest,
	} {
		resp, err := http.Get(cl.HTTPBase(0) + path)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || !json.Valid(raw) {
			t.Errorf("GET %s: %d %s, want %d with a JSON body", path, resp.StatusCode, raw, want)
		}
	}
}

// TestPollWaitsForAChange: a long poll from the head waits for the next
// change and returns it with the position after it.
func TestPollWaitsForAChange(t *testing.T) {
	cl := testcluster.New(t, 1)
	fc := pb.NewFeedServiceClient(cl.Conn(0))
	ctx := context.Background()
	now, err := fc.PollCases(ctx, &pb.PollCasesRequest{})
	if err != nil || now.Revision != 0 || len(now.Changes) != 0 || !now.Heartbeat {
		t.Fatalf("poll of an empty feed: %v, %v", now, err)
	}
	type result struct {
		resp *pb.WatchCasesResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := fc.PollCases(ctx, &pb.PollCasesRequest{ResumeToken: now.ResumeToken, Wait: durationpb.New(time.Minute)})
		done <- result{resp, err}
	}()
	r, err := cl.Cases(0).ReportCase(ctx, report("poll-1", "长轮询 long poll"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-done:
		if res.err != nil || len(res.resp.Changes) != 1 || res.resp.Changes[0].CaseId != r.Case.Id || res.resp.Revision != 1 {
			t.Fatalf("long poll: %v, %v", res.resp, res.err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the long poll did not return the change")
	}
	for name, req := range map[string]*pb.PollCasesRequest{
		"limit":        {Limit: 1001},
		"wait":         {Wait: durationpb.New(-time.Second)},
		"resume_token": {ResumeToken: "Y2YxOm90aGVyLW5vZGU6MQ"}, // cf1:other-node:1
	} {
		_, err := fc.PollCases(ctx, req)
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), name) {
			t.Errorf("bad %s: %v", name, err)
		}
	}
}

// report is an inspector's report in the test grid.
func report(reqID, desc string) *pb.ReportCaseRequest {
	return &pb.ReportCaseRequest{
		RequestId: reqID, Actor: "insp-1", Role: pb.Role_ROLE_INSPECTOR,
		Source: pb.Source_SOURCE_INSPECTOR, Kind: pb.Kind_KIND_EVENT,
		MajorCode: "01", MinorCode: "02", GridCode: inGrid, Description: desc,
	}
}
