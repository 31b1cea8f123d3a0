package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/auth"
	"github.com/cityhub/cityhub/tiers/catalogue"
	"github.com/cityhub/cityhub/tiers/feed"
	"github.com/cityhub/cityhub/tiers/store"
)

// ChangeFeed is what the feed service needs of the replica's change feed
// (feed.Hub).
type ChangeFeed interface {
	Watch(after uint64) (*feed.Watcher, error)
	Head() uint64
	Bounds() (oldest, head uint64, err error)
}

// FeedOptions configure the feed service (config.FeedConfig).
type FeedOptions struct {
	// Group names the feed in resume tokens (config.Config.Group): a
	// token of another tier node is refused.
	Group        string
	Heartbeat    time.Duration // default 15s
	PollMaxWait  time.Duration // default 30s
	WriteTimeout time.Duration // SSE: default 30s
	// BatchDelay: a watch gathers the changes that follow a first one for
	// this long before it sends them (0: send each applied chunk at once).
	BatchDelay time.Duration
}

// Bounds of a feed request.
const (
	feedPage         = 256  // changes per message of a watch
	pollDefaultLimit = 100  // changes of a poll when the request names none
	pollMaxLimit     = 1000 // changes of a poll at most
	maxHolderLen     = 64
)

// FeedServer implements cityhub.v1.FeedService and the SSE endpoint
// (feed_sse.go).
type FeedServer struct {
	pb.UnimplementedFeedServiceServer
	hub     ChangeFeed // nil: the node serves no feed
	replica Replica
	opts    FeedOptions
	g       *guard
	log     *slog.Logger
}

func newFeedServer(hub ChangeFeed, r Replica, opts FeedOptions, g *guard, log *slog.Logger) *FeedServer {
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 15 * time.Second
	}
	if opts.PollMaxWait <= 0 {
		opts.PollMaxWait = 30 * time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 30 * time.Second
	}
	return &FeedServer{hub: hub, replica: r, opts: opts, g: g, log: log.With("component", "feed-api")}
}

// errNoFeed answers on a server built without a feed.

// watch is one open watch: its position, its filter (the caller's scope
// in it) and what to attach.
type watch struct {
	w           *feed.Watcher
	filter      feed.Filter
	includeCase bool
	fromNow     bool
	p           *auth.Principal
}

// position is where a request asks to start.
type position struct {
	after      *uint64
	token      string
	fromOldest bool
}

// open authorizes the caller, checks the filter and the position and
// opens a watcher; the caller closes it.
func (f *FeedServer) open(ctx context.Context, pos position, pf *pb.ChangeFilter, includeCase bool) (*watch, error) {
	if f.hub == nil {
		return nil, toStatus(errNoFeed)
	}
	if err := f.g.require(ctx, auth.CaseList, nil); err != nil {
		return nil, err
	}
	fl := feed.FilterOf(pf)
	if err := checkChangeFilter(fl); err != nil {
		return nil, toStatus(err)
	}
	scope, err := caseScope(ctx, f.g, &fl.OwnerUnit, &fl.GridPrefix)
	if err != nil {
		return nil, err
	}
	fl.Scope = scope
	after, fromNow, err := f.start(pos)
	if err != nil {
		return nil, f.status(err)
	}
	w, err := f.hub.Watch(after)
	if err != nil {
		return nil, f.status(err)
	}
	return &watch{w: w, filter: fl, includeCase: includeCase, fromNow: fromNow, p: f.g.principal(ctx)}, nil
}

func checkChangeFilter(fl feed.Filter) error {
	for _, st := range fl.States {
		if _, ok := pb.State_name[int32(st)]; !ok || st == pb.State_STATE_UNSPECIFIED {
			return invalid("filter.states", "unknown state %d", st)
		}
	}
	if fl.GridPrefix != "" && (len(fl.GridPrefix) > catalogue.GridCodeLen || !allDigits(fl.GridPrefix)) {
		return invalid("filter.grid_prefix", "1 to %d digits", catalogue.GridCodeLen)
	}
	if fl.OwnerUnit != "" && !unitRe.MatchString(fl.OwnerUnit) {
		return invalid("filter.owner_unit", "not a unit id")
	}
	if len(fl.Holder) > maxHolderLen || fl.Holder != "" && !unitRe.MatchString(fl.Holder) {
		return invalid("filter.holder", "not a node name")
	}
	return nil
}

// start resolves a position to the revision after which to watch; fromNow
// when the request named none.
func (f *FeedServer) start(pos position) (after uint64, fromNow bool, err error) {
	given := 0
	for _, set := range []bool{pos.after != nil, pos.token != "", pos.fromOldest} {
		if set {
			given++
		}
	}
	if given > 1 {
		return 0, false, invalid("resume_token", "give one of after_revision, resume_token and from_oldest")
	}
	switch {
	case pos.after != nil:
		return *pos.after, false, nil
	case pos.token != "":
		rev, err := feed.ParseToken(f.opts.Group, pos.token)
		if err != nil {
			return 0, false, invalid("resume_token", "%v", err)
		}
		return rev, false, nil
	case pos.fromOldest:
		oldest, _, err := f.hub.Bounds()
		if err != nil {
			return 0, false, err
		}
		return oldest - 1, false, nil
	}
	// Now is the newest change this replica applied (the store's head:
	// the hub may be a moment behind it, and a client that has just
	// written expects its write to be in the past).
	_, head, err := f.hub.Bounds()
	return head, true, err
}

// pass filters a page of changes for the watch and attaches the cases
// asked for.
func (f *FeedServer) pass(ctx context.Context, wt *watch, page []*pb.CaseChange) []*pb.CaseChange {
	var out []*pb.CaseChange
	for _, ch := range page {
		if !wt.filter.Match(ch) {
			continue
		}
		if wt.includeCase {
			ch = feed.WithCase(ch, f.currentCase(ctx, wt, ch.CaseId))
		}
		out = append(out, ch)
	}
	return out
}

// currentCase is the case as this replica holds it, when the caller may
// still read it (its scope is decided on this copy, which may be newer
// than the change), with the reporter's contact removed unless the
// caller's role calls citizens back.
func (f *FeedServer) currentCase(ctx context.Context, wt *watch, id string) *pb.Case {
	c, err := f.replica.Store().GetCase(id)
	if err != nil {
		return nil
	}
	if wt.p != nil {
		if auth.Authorize(wt.p, auth.CaseRead, c) != nil {
			return nil
		}
		if auth.Authorize(wt.p, auth.CaseContact, c) != nil {
			c.Reporter = nil
		}
	}
	return withAllowed(c)
}

// message is a message of the feed at the watcher's position.
func (f *FeedServer) message(wt *watch, changes []*pb.CaseChange) *pb.WatchCasesResponse {
	pos := wt.w.Position()
	return &pb.WatchCasesResponse{
		Changes: changes, Revision: pos, ResumeToken: feed.Token(f.opts.Group, pos),
		Head: f.hub.Head(), Heartbeat: len(changes) == 0,
	}
}

// follow sends the watch's changes as they come, and a heartbeat when
// nothing was sent for the heartbeat interval (at once when the watch
// started from now, naming its revision). It returns when ctx ends or the
// watch fails.
func (f *FeedServer) follow(ctx context.Context, wt *watch, send func(*pb.WatchCasesResponse) error) error {
	last := time.Now()
	if wt.fromNow {
		if err := send(f.message(wt, nil)); err != nil {
			return err
		}
	}
	for {
		wait := f.opts.Heartbeat - time.Since(last)
		if wait <= 0 {
			if err := send(f.message(wt, nil)); err != nil {
				return err
			}
			last = time.Now()
			continue
		}
		page, err := wt.w.Next(ctx, feedPage, wait)
		if err != nil {
			return err
		}
		out := f.pass(ctx, wt, page)
		if len(out) == 0 {
			continue
		}
		// Gather what follows for BatchDelay before sending: one message
		// for a burst instead of one per applied chunk, which is what
		// many watchers of a busy node cost.
		var gatherErr error
		for read, until := len(page), time.Now().Add(f.opts.BatchDelay); read < feedPage && f.opts.BatchDelay > 0; {
			rest := time.Until(until)
			if rest <= 0 {
				break
			}
			more, err := wt.w.Next(ctx, feedPage-read, rest)
			if err != nil || len(more) == 0 {
				gatherErr = err
				break
			}
			read += len(more)
			out = append(out, f.pass(ctx, wt, more)...)
		}
		if err := send(f.message(wt, out)); err != nil {
			return err
		}
		if gatherErr != nil {
			return gatherErr
		}
		last = time.Now()
	}
}

// WatchCases streams the changes after the requested position.
func (f *FeedServer) WatchCases(r *pb.WatchCasesRequest, ss pb.FeedService_WatchCasesServer) error {
	ctx := ss.Context()
	wt, err := f.open(ctx, position{r.AfterRevision, r.ResumeToken, r.FromOldest}, r.Filter, r.IncludeCase)
	if err != nil {
		return err
	}
	defer wt.w.Close()
	err = f.follow(ctx, wt, ss.Send)
	if ctx.Err() != nil {
		return toStatus(ctx.Err())
	}
	return f.status(err)
}

// PollCases returns the changes after the position, waiting up to the
// request's wait for the first.
func (f *FeedServer) PollCases(ctx context.Context, r *pb.PollCasesRequest) (*pb.WatchCasesResponse, error) {
	limit := int(r.Limit)
	switch {
	case limit == 0:
		limit = pollDefaultLimit
	case limit < 0 || limit > pollMaxLimit:
		return nil, toStatus(invalid("limit", "between 1 and %d (0 means %d)", pollMaxLimit, pollDefaultLimit))
	}
	wait := r.Wait.AsDuration()
	if r.Wait != nil && (!r.Wait.IsValid() || wait < 0) {
		return nil, toStatus(invalid("wait", "a duration of 0 or more"))
	}
	wait = min(wait, f.opts.PollMaxWait)
	wt, err := f.open(ctx, position{r.AfterRevision, r.ResumeToken, r.FromOldest}, r.Filter, r.IncludeCase)
	if err != nil {
		return nil, err
	}
	defer wt.w.Close()
	deadline := time.Now().Add(wait)
	for {
		// Without a wait, one look; with one, until a change passes the
		// filter or the wait is over.
		page, err := wt.w.Next(ctx, limit, max(time.Until(deadline), time.Millisecond))
		if err != nil {
			return nil, f.status(err)
		}
		if out := f.pass(ctx, wt, page); len(out) > 0 || !time.Now().Before(deadline) {
			return f.message(wt, out), nil
		}
	}
}

// status is the gRPC status of a feed error: its code from the one table
// (errors.go), and for a compacted position or a cut-off watcher an
// ErrorInfo telling where to start again (REST: in the error body).
func (f *FeedServer) status(err error) error {
	if err == nil {
		return nil
	}
	var (
		ce     *store.CompactedError
		se     *feed.SlowError
		md     map[string]string
		reason string
	)
	switch {
	case errors.As(err, &ce):
		reason = "FEED_COMPACTED"
		md = map[string]string{"current_revision": strconv.FormatUint(ce.Head, 10), "oldest_revision": strconv.FormatUint(ce.Oldest, 10),
			"resume_token": feed.Token(f.opts.Group, ce.Head)}
		err = fmt.Errorf("%w; re-list the cases (GET /v1/cases, cityhubctl cases list), then watch with after_revision=%d", err, ce.Head)
	case errors.As(err, &se):
		reason = "FEED_SLOW_WATCHER"
		md = map[string]string{"current_revision": strconv.FormatUint(se.Position, 10), "resume_token": feed.Token(f.opts.Group, se.Position)}
	default:
		return toStatus(err)
	}
	st := status.Convert(toStatus(err))
	if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: "cityhub", Metadata: md}); derr == nil {
		st = d
	}
	return st.Err()
}

// feedStats is what the feed's metrics read (feed.Hub).
type feedStats interface {
	Watchers() int64
	Cutoffs() int64
}

// registerFeedMetrics exports the feed's head revision, its watchers and
// the watchers cut off as too slow.
func registerFeedMetrics(reg prometheus.Registerer, hub ChangeFeed) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cityhub_feed_head_revision", Help: "Newest change feed revision this replica's watchers are served.",
	}, func() float64 { return float64(hub.Head()) }))
	if st, ok := hub.(feedStats); ok {
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "cityhub_feed_watchers", Help: "Watch streams, SSE connections and waiting long polls open (feed.max_watchers).",
			}, func() float64 { return float64(st.Watchers()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "cityhub_feed_slow_cutoffs_total", Help: "Watchers cut off for falling further behind than feed.buffer.",
			}, func() float64 { return float64(st.Cutoffs()) }),
		)
	}
}
