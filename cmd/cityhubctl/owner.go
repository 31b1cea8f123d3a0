package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// ownerCmd is `cityhubctl owner`: questions to the responsibility
// catalogue (责任清单).
func (a *app) ownerCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "owner",
		Short: "Ask the responsibility catalogue (责任清单) who owns a problem",
	}
	c.AddCommand(a.ownerResolveCmd())
	return c
}

func (a *app) ownerResolveCmd() *cobra.Command {
	var (
		req             pb.ResolveOwnerRequest
		kind, class, at string
	)
	c := &cobra.Command{
		Use:   "resolve",
		Short: "Show who owns a problem of a class at a grid (and component), and why",
		Long: `Ask the node's responsibility catalogue (责任清单, DOMAIN.md section 5) who
must act on a problem: the owning unit, the node that hosts it, its tier,
the deciding rule and an explanation, or why the owner is disputed (no
rule covers the problem, or rules of equal priority disagree; such a case
goes to the city's joint review, 疑难案件会诊). Nothing is recorded.

--class is the major and minor class code together (0401: major 04,
minor 01; 5 digits for the 17-digit component series). --at is a date
(YYYY-MM-DD, local time) or an RFC 3339 time, for owners that rotate
monthly (ownerless manhole covers); default now.`,
		Example: `  cityhubctl owner resolve --kind event --class 0401 --grid 320505001001002
  cityhubctl owner resolve --kind component --class 0113 --grid 320505001001003 --at 2026-03-15
  cityhubctl -o json owner resolve --kind component --class 0102 --grid 320505001001001 --component 3205050102000001`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			k, err := kinds.parse(kind)
			if err != nil {
				return usagef("--kind: %v", err)
			}
			req.Kind = k
			if req.MajorCode, req.MinorCode, err = splitClass(class); err != nil {
				return err
			}
			if at != "" {
				t, err := parseDateOrTime("at", at)
				if err != nil {
					return err
				}
				req.At = timestamppb.New(t)
			}
			cl, err := a.ownershipClient()
			if err != nil {
				return err
			}
			cctx, cancel := a.call(ctx)
			defer cancel()
			o, err := cl.ResolveOwner(cctx, &req)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return writeJSON(a.stdout, o)
			}
			return writeResolvedOwner(a.stdout, o)
		}),
	}
	f := c.Flags()
	f.StringVar(&kind, "kind", "", "component (部件) or event (事件)")
	f.StringVar(&class, "class", "", "class code: major and minor together, e.g. 0401")
	f.StringVar(&req.GridCode, "grid", "", "unit grid code, 15 digits")
	f.StringVar(&req.ComponentId, "component", "", "component id, 16 or 17 digits (registered components have their own owner)")
	f.StringVar(&at, "at", "", "when: YYYY-MM-DD or RFC 3339 (default now; monthly rotations depend on it)")
	for _, name := range []string{"kind", "class", "grid"} {
		_ = c.MarkFlagRequired(name)
	}
	return c
}

// splitClass splits a class code into major (2 digits) and minor (2, or 3
// for the 17-digit series).
func splitClass(s string) (major, minor string, err error) {
	s = strings.TrimSpace(s)
	if len(s) != 4 && len(s) != 5 {
		return "", "", usagef("--class %q: want 4 digits (major and minor, e.g. 0401) or 5", s)
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return "", "", usagef("--class %q: digits only (e.g. 0401)", s)
		}
	}
	return s[:2], s[2:], nil
}

// parseDateOrTime reads YYYY-MM-DD (noon, local time: the same day in any
// nearby zone) or an RFC 3339 time.
func parseDateOrTime(flag, s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseInLocation("2006-01-02", s, displayLoc)
	if err != nil {
		return time.Time{}, usagef("--%s %q: want a date (2026-03-15) or an RFC 3339 time (2026-03-15T09:00:00+08:00)", flag, s)
	}
	return d.Add(12 * time.Hour), nil
}

// writeResolvedOwner prints the catalogue's answer.
func writeResolvedOwner(w io.Writer, o *pb.Ownership) error {
	tw := newTable(w)
	if o.GetDisputed() || o.GetUnit() == "" {
		row(tw, "owner:", "disputed: no single owner (goes to the city's joint review, 疑难案件会诊)")
		row(tw, "dispute:", orDash(oneLine(o.GetDispute())))
	} else {
		row(tw, "owner:", o.GetUnit())
		row(tw, "node:", orDash(o.GetNode()))
		row(tw, "tier:", tiers.name(o.GetTier()))
	}
	row(tw, "rule:", orDash(o.GetRule()))
	if v := o.GetCatalogueVersion(); v != "" {
		row(tw, "catalogue:", v)
	}
	if e := oneLine(o.GetExplanation()); e != oneLine(o.GetDispute()) || !o.GetDisputed() {
		row(tw, "explanation:", orDash(e))
	}
	return tw.Flush()
}

// reviewCmd is `cityhubctl review`: the city's joint review queue
// (疑难案件会诊).
func (a *app) reviewCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "review",
		Short: "The city's joint review queue (疑难案件会诊): disputed cases and their decision",
		Long: `Cases whose owner the responsibility catalogue cannot name, or whose owner
sent them back twice, wait in the city's joint review queue (疑难案件会诊)
until a shift leader decides the owner. The queue is the city's: run these
against the city node (the default --addr).`,
	}
	c.AddCommand(a.reviewListCmd(), a.reviewDecideCmd())
	return c
}

func (a *app) reviewListCmd() *cobra.Command {
	var consistency string
	c := &cobra.Command{
		Use:   "list",
		Short: "List the cases waiting for joint review, with both sides' reasons",
		Long: `List every case in the joint review queue (all pages): id, class, grid,
age (since it was reported), the node that holds it, who or what disputes
the owner, and the reasons recorded by both sides (the referral, the
owner's returns), oldest first.

Output: -o table (default), json (the cases) or csv (id, class, grid,
reported_at, age_days, held_at, rejections, dispute, reasons joined by " | ").`,
		Example: `  cityhubctl review list
  cityhubctl -o csv review list > review.csv`,
		Args:              cobra.NoArgs,
		PersistentPreRunE: a.checkGlobals("table", "json", "csv"),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			req := &pb.ListCasesRequest{InReview: true, PageSize: 500}
			var err error
			if req.Consistency, err = parseOptional(consistencies, consistency); err != nil {
				return err
			}
			cl, err := a.caseClient()
			if err != nil {
				return err
			}
			out, err := a.listAll(ctx, cl, req)
			if err != nil {
				return err
			}
			switch a.output {
			case "json":
				return writeJSON(a.stdout, out)
			case "csv":
				return writeReviewCSV(a.stdout, out.GetCases(), a.now())
			}
			return writeReviewList(a.stdout, out.GetCases(), a.now())
		}),
	}
	c.Flags().StringVar(&consistency, "consistency", "", "read consistency: "+consistencies.help()+" (default leader)")
	return c
}

// listAll follows ListCases page tokens to the end.
func (a *app) listAll(ctx context.Context, cl pb.CaseServiceClient, req *pb.ListCasesRequest) (*pb.ListCasesResponse, error) {
	out := &pb.ListCasesResponse{}
	for {
		cctx, cancel := a.call(ctx)
		page, err := cl.ListCases(cctx, req)
		cancel()
		if err != nil {
			return nil, err
		}
		out.Cases = append(out.Cases, page.GetCases()...)
		next := page.GetNextPageToken()
		if next == "" {
			return out, nil
		}
		if next == req.PageToken {
			return nil, fmt.Errorf("the server returned page token %q twice", next)
		}
		req.PageToken = next
	}
}

// caseAge is how long ago a case was reported: 3y2mo, 45d, 5h.
func caseAge(c *pb.Case, now time.Time) string {
	if c.GetReportedAt() == nil {
		return "-"
	}
	d := now.Sub(c.GetReportedAt().AsTime())
	days := int(d / (24 * time.Hour))
	switch {
	case d < 0:
		return "0m"
	case days >= 365:
		y, mo := days/365, days%365/30
		if mo == 0 {
			return fmt.Sprintf("%dy", y)
		}
		return fmt.Sprintf("%dy%dmo", y, mo)
	case days >= 1:
		return fmt.Sprintf("%dd", days)
	}
	return shortDuration(d.Truncate(time.Minute))
}

// reviewReasons joins a case's ownership reasons, oldest first.
func reviewReasons(c *pb.Case) string {
	rs := make([]string, 0, len(c.GetOwnership().GetReasons()))
	for _, r := range c.GetOwnership().GetReasons() {
		if r = oneLine(r); r != "" {
			rs = append(rs, r)
		}
	}
	return strings.Join(rs, " | ")
}

// writeReviewList prints the joint review queue, one case per row.
func writeReviewList(w io.Writer, cases []*pb.Case, now time.Time) error {
	fmt.Fprintf(w, "joint review queue (疑难案件会诊): %d cases\n", len(cases))
	if len(cases) == 0 {
		return nil
	}
	tw := newTable(w)
	// Free text goes last: it is the longest.
	row(tw, "ID", "CLASS", "GRID", "AGE", "HELD AT", "REJECTIONS", "DISPUTE", "REASONS")
	for _, c := range cases {
		o := c.GetOwnership()
		row(tw, c.GetId(), caseClass(c), c.GetGridCode(), caseAge(c, now), orDash(c.GetHolder()),
			strconv.Itoa(int(o.GetRejections())), orDash(oneLine(o.GetDispute())), orDash(reviewReasons(c)))
	}
	return tw.Flush()
}

// writeReviewCSV prints the joint review queue as CSV.
func writeReviewCSV(w io.Writer, cases []*pb.Case, now time.Time) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"id", "class", "grid", "reported_at", "age_days", "held_at", "rejections", "dispute", "reasons"})
	for _, c := range cases {
		reported, age := "", ""
		if t := c.GetReportedAt(); t != nil {
			reported = t.AsTime().In(displayLoc).Format(time.RFC3339)
			age = strconv.Itoa(int(now.Sub(t.AsTime()) / (24 * time.Hour)))
		}
		o := c.GetOwnership()
		_ = cw.Write([]string{c.GetId(), caseClass(c), c.GetGridCode(), reported, age, c.GetHolder(),
			strconv.Itoa(int(o.GetRejections())), o.GetDispute(), reviewReasons(c)})
	}
	cw.Flush()
	return cw.Error()
}

func (a *app) reviewDecideCmd() *cobra.Command {
	var (
		req                       pb.ActRequest
		tier, timeLimit, deadline string
		rid                       string
	)
	c := &cobra.Command{
		Use:   "decide CASE_ID",
		Short: "Decide the owner of a case in joint review (会诊裁定) and dispatch it to that unit",
		Long: `Record the joint review's decision (会诊裁定): the named unit owns the case
from now on (the responsibility catalogue no longer overrides it), and the
case is dispatched to it, handed down to the node that hosts the unit.
The decision is the city shift leader's (role shift-leader); --note, the
grounds (maps, handover records), is required. Without --time-limit or
--deadline the node stamps the handling deadline of the case's class.

Prints the case's new ownership and holder.`,
		Example: `  cityhubctl review decide 320505-20190304-000012 --unit 320505-roads \
    --note "2019 handover record: the lane network is the district's" --actor 张主任`,
		Args: cobra.ExactArgs(1),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, args []string) error {
			req.CaseId = args[0]
			req.Action = pb.Action_ACTION_DECIDE_OWNER
			if !a.authenticated() {
				// A node with authentication off believes the role; one
				// with it on takes it from the login.
				req.Role = pb.Role_ROLE_SHIFT_LEADER
			}
			var err error
			if strings.TrimSpace(req.Unit) == "" {
				return usagef("--unit: the unit that owns the case is required")
			}
			if strings.TrimSpace(req.Note) == "" {
				return usagef("--note: the grounds of the decision are required")
			}
			if req.UnitTier, err = parseOptional(tiers, tier); err != nil {
				return usagef("--unit-tier: %v", err)
			}
			if err := a.dispatchTime(&req, timeLimit, deadline); err != nil {
				return err
			}
			if req.Actor == "" {
				req.Actor = defaultActor()
			}
			if req.RequestId, err = a.requestID(rid); err != nil {
				return err
			}
			cl, err := a.caseClient()
			if err != nil {
				return err
			}
			cctx, cancel := a.call(ctx)
			defer cancel()
			resp, err := cl.DecideOwner(cctx, &req)
			if err != nil {
				return err
			}
			if resp.GetReplayed() {
				fmt.Fprintln(a.stderr, "replayed: this request id was already applied; nothing changed")
			}
			if a.output == "json" {
				return writeJSON(a.stdout, resp)
			}
			c := resp.GetCase()
			fmt.Fprintf(a.stdout, "decided: %s is owned by %s, held by %s\n", c.GetId(), orDash(c.GetOwnership().GetUnit()), orDash(c.GetHolder()))
			return writeCase(a.stdout, c, false, a.now())
		}),
	}
	f := c.Flags()
	f.StringVar(&req.Unit, "unit", "", "the unit that owns the case (required)")
	f.StringVar(&tier, "unit-tier", "", "tier of the unit: "+tiers.help()+" (default: its node's)")
	f.StringVar(&req.Note, "note", "", "the grounds of the decision (required)")
	f.StringVar(&req.Actor, "actor", "", "who decides (default: $USER)")
	f.StringVar(&timeLimit, "time-limit", "", "handling time limit, e.g. 4h, 2d (default: the class's)")
	f.StringVar(&deadline, "deadline", "", "explicit handling deadline, RFC 3339 or a duration from now")
	f.Uint64Var(&req.ExpectedVersion, "expected-version", 0, "fail unless the case is at this version (0: no check)")
	f.StringVar(&rid, "request-id", "", "idempotency key (default: a fresh random one, printed to stderr)")
	return c
}

// defaultActor is the operator's login name, for the history.
func defaultActor() string {
	for _, k := range []string{"USER", "LOGNAME", "USERNAME"} {
		if v := strings.TrimSpace(os.Getenv(k)); v != "" {
			return v
		}
	}
	return "cityhubctl"
}
