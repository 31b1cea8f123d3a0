package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/client"
)

// The change feed (cases watch): one line per change, following the node
// until Ctrl-C; a dropped connection or a cut-off watch resumes from the
// last position by itself.

// watchPolicy is the wait before reconnecting: tiers/client's backoff
// from 200 ms to 5 s.
var watchPolicy = client.Policy{Initial: 200 * time.Millisecond, Max: 5 * time.Second}

var compactJSON = protojson.MarshalOptions{UseProtoNames: true}

func (a *app) watchCmd() *cobra.Command {
	var (
		from        string
		stateNames  []string
		filter      pb.ChangeFilter
		includeCase bool
		once        bool
		noReconnect bool
	)
	c := &cobra.Command{
		Use:   "watch",
		Short: "Follow changes of cases as they happen (the change feed; one line per change)",
		Long: `watch prints every change of the cases you may see, one line per change:
revision, time, case, version, action, state, owner unit, grid, holder, and
"overdue" for a case past its deadline. It follows the node until Ctrl-C;
when the connection drops (a replica restarting, a leader change) it resumes
from the last position, so no change is lost or printed twice.

--from picks where to start: now (default), oldest (the oldest change the node
keeps), a revision number (changes after it), or a resume token (from -o json
or the stderr line "position: ..."). A position the node no longer keeps
fails: list the cases again ('cityhubctl cases list'), then watch --from the
revision the error names.`,
		Example: `  cityhubctl cases watch                                   # from now on
  cityhubctl cases watch --state dispatched --unit huanwei-01
  cityhubctl cases watch --from oldest --overdue -o json   # one JSON object per line
  cityhubctl cases watch --from 1200 --once                # what changed after revision 1200, then exit`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			for _, s := range stateNames {
				for _, part := range strings.Split(s, ",") {
					st, err := states.parse(part)
					if err != nil {
						return err
					}
					filter.States = append(filter.States, st)
				}
			}
			pos, err := parseFrom(from)
			if err != nil {
				return err
			}
			conn, err := a.dial()
			if err != nil {
				return err
			}
			fc := pb.NewFeedServiceClient(conn)
			w := &watchRun{a: a, fc: fc, filter: &filter, includeCase: includeCase, pos: pos}
			if once {
				return w.once(ctx)
			}
			return w.follow(ctx, !noReconnect)
		}),
	}
	f := c.Flags()
	f.StringVar(&from, "from", "now", "where to start: now, oldest, a revision (changes after it) or a resume token")
	f.StringSliceVar(&stateNames, "state", nil, "only changes leaving a case in one of these states (repeat or comma-separate): "+states.help())
	f.StringVar(&filter.OwnerUnit, "unit", "", "only cases owned by this unit")
	f.StringVar(&filter.GridPrefix, "grid-prefix", "", "only cases whose grid code starts with these digits")
	f.StringVar(&filter.Holder, "holder", "", "only cases held by this node (federation name)")
	f.BoolVar(&filter.Overdue, "overdue", false, "only changes of cases past their stage deadline (督办)")
	f.BoolVar(&includeCase, "include-case", false, "attach each case as the node holds it (-o json)")
	f.BoolVar(&once, "once", false, "print the changes after --from that are there now, the position to go on from, and exit")
	f.BoolVar(&noReconnect, "no-reconnect", false, "exit when the connection drops instead of resuming")
	return c
}

// watchPos is where a watch starts or goes on.
type watchPos struct {
	after      *uint64
	token      string
	fromOldest bool
}

func parseFrom(s string) (watchPos, error) {
	switch s {
	case "", "now":
		return watchPos{}, nil
	case "oldest":
		return watchPos{fromOldest: true}, nil
	}
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		return watchPos{after: &n}, nil
	}
	if strings.ContainsAny(s, " /+=") {
		return watchPos{}, usagef("--from %q: now, oldest, a revision number or a resume token", s)
	}
	return watchPos{token: s}, nil
}

type watchRun struct {
	a           *app
	fc          pb.FeedServiceClient
	filter      *pb.ChangeFilter
	includeCase bool
	pos         watchPos
}

func (w *watchRun) request() *pb.WatchCasesRequest {
	return &pb.WatchCasesRequest{AfterRevision: w.pos.after, ResumeToken: w.pos.token, FromOldest: w.pos.fromOldest,
		Filter: w.filter, IncludeCase: w.includeCase}
}

// moved records the position a message brings the watch to.
func (w *watchRun) moved(m *pb.WatchCasesResponse) {
	if m.ResumeToken != "" {
		w.pos = watchPos{token: m.ResumeToken}
	}
}

// follow watches until ctx ends (nil) or a failure that resuming cannot
// fix; with reconnect, a dropped connection or a cut-off watch resumes
// from the last position.
func (w *watchRun) follow(ctx context.Context, reconnect bool) error {
	b := watchPolicy.Backoff()
	for {
		before := w.pos
		err := w.stream(ctx)
		if ctx.Err() != nil {
			return nil // Ctrl-C
		}
		if !reconnect || !resumable(err) {
			return w.explain(err)
		}
		if w.pos != before {
			b.Reset() // the watch got somewhere: reconnect soon
		}
		fmt.Fprintf(w.a.stderr, "连接中断，从上次位置继续 / reconnecting from the last position: %v\n", status.Convert(err).Message())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(client.Wait(err, b.Next())):
		}
	}
}

// stream runs one watch until it fails.
func (w *watchRun) stream(ctx context.Context) error {
	st, err := w.fc.WatchCases(ctx, w.request())
	if err != nil {
		return err
	}
	for {
		m, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return status.Error(codes.Unavailable, "the node ended the watch")
			}
			return err
		}
		if err := w.print(m); err != nil {
			return err
		}
		w.moved(m)
	}
}

// once prints what is there after the position, and where to go on from.
func (w *watchRun) once(ctx context.Context) error {
	ctx, cancel := w.a.call(ctx)
	defer cancel()
	for {
		r := w.request()
		m, err := w.fc.PollCases(ctx, &pb.PollCasesRequest{AfterRevision: r.AfterRevision, ResumeToken: r.ResumeToken, FromOldest: r.FromOldest,
			Filter: r.Filter, IncludeCase: r.IncludeCase, Limit: 1000})
		if err != nil {
			return w.explain(err)
		}
		if err := w.print(m); err != nil {
			return err
		}
		w.moved(m)
		if m.Revision >= m.Head {
			fmt.Fprintf(w.a.stderr, "position: %s (revision %d; go on with --from %d)\n", m.ResumeToken, m.Revision, m.Revision)
			return nil
		}
	}
}

func (w *watchRun) print(m *pb.WatchCasesResponse) error {
	for _, ch := range m.Changes {
		if w.a.output == "json" {
			b, err := compactJSON.Marshal(ch)
			if err != nil {
				return err
			}
			fmt.Fprintf(w.a.stdout, "%s\n", b)
			continue
		}
		fmt.Fprintln(w.a.stdout, changeLine(ch))
	}
	return nil
}

// changeLine is one change as a line of text.
func changeLine(ch *pb.CaseChange) string {
	parts := []string{
		strconv.FormatUint(ch.Revision, 10), fmtTime(ch.At, "01-02 15:04:05"), ch.CaseId,
		"v" + strconv.FormatUint(ch.Version, 10), actions.name(ch.Action), states.name(ch.State),
		"unit=" + orDash(ch.OwnerUnit), "grid=" + orDash(ch.GridCode),
	}
	if ch.Holder != "" {
		parts = append(parts, "holder="+ch.Holder)
	}
	if ch.Overdue {
		parts = append(parts, "overdue 超期")
	}
	switch ch.Kind {
	case pb.ChangeKind_CHANGE_KIND_CREATED:
		parts = append(parts, "new 新")
	case pb.ChangeKind_CHANGE_KIND_REMOVED:
		parts = append(parts, "removed 移除")
	}
	return strings.Join(parts, "  ")
}

// resumable errors end one watch but not the following, by the client's
// classification (tiers/client): the node went away or does not answer
// (Unavailable), cut the watch off as too slow (ResourceExhausted), or
// aborted it.
func resumable(err error) bool {
	return client.ClassifyAlso(client.RetryHere, codes.Aborted)(err).Retryable()
}

// explain adds what to do to a failure of the feed.
func (w *watchRun) explain(err error) error {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.OutOfRange {
		return err
	}
	rev := ""
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			rev = ei.GetMetadata()["current_revision"]
		}
	}
	fmt.Fprintf(w.a.stderr, "该位置已不在节点保留的变更中：请先重新列出案件 (cityhubctl cases list)，再用 --from %s 继续\n"+
		"that position is no longer kept: list the cases again (cityhubctl cases list), then watch --from %s\n", rev, rev)
	return err
}
