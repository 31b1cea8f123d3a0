package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

func (a *app) casesCmd() *cobra.Command {
	c := &cobra.Command{
		Use:     "cases",
		Aliases: []string{"case"},
		Short:   "Report cases, act on them and read them back",
	}
	c.AddCommand(a.reportCmd(), a.actCmd(), a.getCmd(), a.listCmd(), a.watchCmd())
	return c
}

func (a *app) reportCmd() *cobra.Command {
	var (
		req                                pb.ReportCaseRequest
		loc                                pb.Location
		reporter                           pb.Reporter
		source, kind, urgency, role, reqID string
	)
	c := &cobra.Command{
		Use:   "report",
		Short: "Report a new case (上报)",
		Example: `  cityhubctl cases report --source inspector --kind event --major 01 --minor 02 \
    --grid 320582110152102 --desc "exposed garbage by the bus stop" \
    --media photo://a1.jpg --actor 王五 --role inspector`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			var err error
			if req.Source, err = sources.parse(source); err != nil {
				return err
			}
			if req.Kind, err = kinds.parse(kind); err != nil {
				return err
			}
			if req.Role, err = a.actorRole(req.Actor, role); err != nil {
				return err
			}
			if req.Urgency, err = parseOptional(urgencies, urgency); err != nil {
				return err
			}
			f := cmd.Flags()
			if f.Changed("lat") || f.Changed("lng") || f.Changed("address") {
				req.Location = &loc
			}
			if reporter.Name != "" || reporter.Phone != "" || reporter.Id != "" {
				req.Reporter = &reporter
			}
			if req.RequestId, err = a.requestID(reqID); err != nil {
				return err
			}
			return a.write(ctx, func(ctx context.Context, cl pb.CaseServiceClient) (*pb.CaseResponse, error) {
				return cl.ReportCase(ctx, &req)
			})
		}),
	}
	f := c.Flags()
	f.StringVar(&source, "source", "", "channel of the report: "+sources.help())
	f.StringVar(&kind, "kind", "", "component (部件) or event (事件)")
	f.StringVar(&req.MajorCode, "major", "", "major class code, 2 digits")
	f.StringVar(&req.MinorCode, "minor", "", "minor class code, 2 digits (3 for the 17-digit series)")
	f.StringVar(&req.GridCode, "grid", "", "unit grid code, 15 digits")
	f.StringVar(&req.ComponentId, "component", "", "component id, 16 or 17 digits (components only)")
	f.StringVar(&req.Description, "desc", "", "what is wrong and where")
	f.Float64Var(&loc.Lat, "lat", 0, "latitude")
	f.Float64Var(&loc.Lng, "lng", 0, "longitude")
	f.StringVar(&loc.Address, "address", "", "street address")
	f.StringArrayVar(&req.Media, "media", nil, "media reference, e.g. a photo URL (repeatable)")
	f.StringVar(&reporter.Name, "reporter-name", "", "reporter's name")
	f.StringVar(&reporter.Phone, "reporter-phone", "", "reporter's phone")
	f.StringVar(&reporter.Id, "reporter-id", "", "inspector number, caller id or app account")
	f.StringVar(&urgency, "urgency", "", "ordinary (default) or urgent")
	f.StringVar(&req.Note, "note", "", "note for the history")
	f.StringVar(&req.Actor, "actor", "", "who reports (needed only when not logged in: the node takes it from the login)")
	f.StringVar(&role, "role", "", "role of the actor: "+roles.help()+" (needed only when not logged in)")
	f.StringVar(&reqID, "request-id", "", "idempotency key (default: a fresh random one, printed to stderr)")
	for _, name := range []string{"source", "kind", "major", "minor", "grid", "desc"} {
		_ = c.MarkFlagRequired(name)
	}
	return c
}

// dispatchTime sets the handling time of a dispatch (cases act, review
// decide) from --time-limit or --deadline, at most one of them; neither
// leaves the server's default.
func (a *app) dispatchTime(req *pb.ActRequest, timeLimit, deadline string) error {
	if timeLimit != "" && deadline != "" {
		return usagef("give --time-limit or --deadline, not both")
	}
	if timeLimit != "" {
		m, err := durationMinutes("time-limit", timeLimit)
		if err != nil {
			return err
		}
		req.TimeLimitMinutes = m
	}
	if deadline != "" {
		t, err := parseInstant("deadline", deadline, a.now())
		if err != nil {
			return err
		}
		req.Deadline = timestamppb.New(t)
	}
	return nil
}

func (a *app) actCmd() *cobra.Command {
	var (
		req                                       pb.ActRequest
		role, tier, timeLimit, deadline, ext, rid string
	)
	c := &cobra.Command{
		Use:   "act CASE_ID ACTION",
		Short: "Take a workflow action on a case",
		Long: `Take a workflow action on a case. ACTION is one of:
  ` + strings.Join(actions.names(), ", ") + `
(the enum names such as ACTION_CHECK_PASS are accepted too). The case's
allowed actions are shown by 'cityhubctl cases get CASE_ID'.

dispatch takes --unit and either --time-limit (default: the server's, one
working day of 8 hours) or --deadline; request-extension takes --extension;
request-return and transfer-up (上交: hand the case up to the parent tier's
platform) take --note (the reason); reassign (改派) takes --unit and --note
and, like dispatch, an optional --time-limit or --deadline; refer-review
(提请会诊: to the city's joint review queue) takes --note; decide-owner
(会诊裁定, shift leader: see 'cityhubctl review decide') takes --unit and
--note.`,
		Example: `  cityhubctl cases act 320582-20261122-000001 file --actor 李四 --role shift-leader
  cityhubctl cases act 320582-20261122-000001 dispatch --unit huanwei-01 --unit-tier district \
    --time-limit 4h --actor 赵六 --role dispatcher
  cityhubctl cases act 320582-20261122-000001 request-extension --extension 2h \
    --note "parts on order" --actor huanwei-01 --role handling-unit
  cityhubctl cases act 320582-20261122-000001 transfer-up \
    --note "city trunk road: for the city platform" --actor 李四 --role shift-leader`,
		Args: cobra.ExactArgs(2),
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, args []string) error {
			var err error
			req.CaseId = args[0]
			if req.Action, err = actions.parse(args[1]); err != nil {
				return err
			}
			if req.Role, err = a.actorRole(req.Actor, role); err != nil {
				return err
			}
			if req.UnitTier, err = parseOptional(tiers, tier); err != nil {
				return err
			}
			if err := a.dispatchTime(&req, timeLimit, deadline); err != nil {
				return err
			}
			if ext != "" {
				if req.ExtensionMinutes, err = durationMinutes("extension", ext); err != nil {
					return err
				}
			}
			if req.RequestId, err = a.requestID(rid); err != nil {
				return err
			}
			return a.write(ctx, func(ctx context.Context, cl pb.CaseServiceClient) (*pb.CaseResponse, error) {
				return cl.Act(ctx, &req)
			})
		}),
	}
	f := c.Flags()
	f.StringVar(&req.Actor, "actor", "", "who acts (person, or unit id for a handling unit; needed only when not logged in)")
	f.StringVar(&role, "role", "", "role of the actor: "+roles.help()+" (needed only when not logged in)")
	f.StringVar(&req.Note, "note", "", "note for the history; the reason for returns, transfers up, extensions, suspensions")
	f.StringArrayVar(&req.Attachments, "attach", nil, "attachment reference, e.g. a photo URL (repeatable)")
	f.StringArrayVar(&req.Evidence, "evidence", nil, "SHA-256 of a photo uploaded to the case (cityhubctl evidence upload) the action names, e.g. the after-photo of a handling (repeatable)")
	f.StringVar(&req.Unit, "unit", "", "dispatch: id of the unit that must handle the case")
	f.StringVar(&tier, "unit-tier", "", "dispatch: tier of the unit: "+tiers.help())
	f.StringVar(&timeLimit, "time-limit", "", "dispatch: handling time limit, e.g. 30m, 4h, 2d")
	f.StringVar(&deadline, "deadline", "", "dispatch: explicit deadline, RFC 3339 or a duration from now")
	f.StringVar(&ext, "extension", "", "request-extension: time to add to the deadline, e.g. 2h, 1d")
	f.Uint64Var(&req.ExpectedVersion, "expected-version", 0, "fail unless the case is at this version (0: no check)")
	f.StringVar(&rid, "request-id", "", "idempotency key (default: a fresh random one, printed to stderr)")
	return c
}

func (a *app) getCmd() *cobra.Command {
	var consistency string
	c := &cobra.Command{
		Use:   "get CASE_ID",
		Short: "Show a case, its allowed actions and its history",
		Args:  cobra.ExactArgs(1),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, args []string) error {
			level, err := parseOptional(consistencies, consistency)
			if err != nil {
				return err
			}
			cl, err := a.caseClient()
			if err != nil {
				return err
			}
			ctx, cancel := a.call(ctx)
			defer cancel()
			got, err := cl.GetCase(ctx, &pb.GetCaseRequest{CaseId: args[0], Consistency: level})
			if err != nil {
				return err
			}
			if a.output == "json" {
				return writeJSON(a.stdout, got)
			}
			return writeCase(a.stdout, got, true, a.now())
		}),
	}
	c.Flags().StringVar(&consistency, "consistency", "", "read consistency: "+consistencies.help()+" (default linearizable)")
	return c
}

func (a *app) listCmd() *cobra.Command {
	var (
		req                     pb.ListCasesRequest
		state, due, consistency string
		all                     bool
	)
	c := &cobra.Command{
		Use:   "list",
		Short: "List cases by state, owner unit, grid or deadline",
		Example: `  cityhubctl cases list --state dispatched --unit huanwei-01
  cityhubctl cases list --due-before 2h --all      # open cases due within two hours
  cityhubctl cases list --overdue --all            # the 督办 list: past their deadline
  cityhubctl cases list --grid-prefix 320582110 -o json`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			var err error
			if req.State, err = parseOptional(states, state); err != nil {
				return err
			}
			if req.Consistency, err = parseOptional(consistencies, consistency); err != nil {
				return err
			}
			if due != "" {
				t, err := parseInstant("due-before", due, a.now())
				if err != nil {
					return err
				}
				req.DueBefore = timestamppb.New(t)
			}
			if req.PageSize < 0 {
				return usagef("--limit must not be negative")
			}
			cl, err := a.caseClient()
			if err != nil {
				return err
			}
			out := &pb.ListCasesResponse{}
			for {
				cctx, cancel := a.call(ctx)
				page, err := cl.ListCases(cctx, &req)
				cancel()
				if err != nil {
					return err
				}
				out.Cases = append(out.Cases, page.GetCases()...)
				out.NextPageToken = page.GetNextPageToken()
				if !all || out.NextPageToken == "" {
					break
				}
				if out.NextPageToken == req.PageToken {
					return fmt.Errorf("the server returned page token %q twice", out.NextPageToken)
				}
				req.PageToken = out.NextPageToken
			}
			if a.output == "json" {
				return writeJSON(a.stdout, out)
			}
			if len(out.Cases) == 0 {
				fmt.Fprintln(a.stderr, "no cases")
			}
			return writeCaseList(a.stdout, out, a.now())
		}),
	}
	f := c.Flags()
	f.StringVar(&state, "state", "", "only cases in this state: "+states.help())
	f.StringVar(&req.OwnerUnit, "unit", "", "only cases owned by this unit")
	f.StringVar(&req.GridPrefix, "grid-prefix", "", "only cases whose grid code starts with these digits")
	f.StringVar(&due, "due-before", "", "only open cases due before this time: RFC 3339, or a duration from now (2h, -30m)")
	f.BoolVar(&req.Overdue, "overdue", false, "only open cases marked overdue (supervised, 督办), including those held below this tier")
	f.BoolVar(&req.InReview, "in-review", false, "only cases in the city's joint review queue (疑难案件会诊)")
	f.StringVar(&req.LegacyId, "legacy-id", "", "only the case imported with this id of the old system")
	f.Int32Var(&req.PageSize, "limit", 0, "page size (server default 50, max 500)")
	f.StringVar(&req.PageToken, "page-token", "", "continue from this page token")
	f.BoolVar(&all, "all", false, "follow next page tokens to the end")
	f.StringVar(&consistency, "consistency", "", "read consistency: "+consistencies.help()+" (default leader)")
	return c
}

func (a *app) catalogueCmd() *cobra.Command {
	var kind string
	c := &cobra.Command{
		Use:     "catalogue",
		Aliases: []string{"catalog"},
		Short:   "List the case classes the node accepts",
		Args:    cobra.NoArgs,
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			k, err := parseOptional(kinds, kind)
			if err != nil {
				return err
			}
			cl, err := a.caseClient()
			if err != nil {
				return err
			}
			ctx, cancel := a.call(ctx)
			defer cancel()
			cat, err := cl.GetCatalogue(ctx, &pb.GetCatalogueRequest{})
			if err != nil {
				return err
			}
			if k != pb.Kind_KIND_UNSPECIFIED {
				var keep []*pb.CatalogueClass
				for _, cl := range cat.GetClasses() {
					if cl.GetKind() == k {
						keep = append(keep, cl)
					}
				}
				cat.Classes = keep
			}
			if a.output == "json" {
				return writeJSON(a.stdout, cat)
			}
			return writeCatalogue(a.stdout, cat)
		}),
	}
	c.Flags().StringVar(&kind, "kind", "", "only this kind: component or event")
	return c
}

// printCaseResponse prints the case a write returned.
// write sends one case write and prints the answer.
func (a *app) write(ctx context.Context, send func(context.Context, pb.CaseServiceClient) (*pb.CaseResponse, error)) error {
	cl, err := a.caseClient()
	if err != nil {
		return err
	}
	ctx, cancel := a.call(ctx)
	defer cancel()
	resp, err := send(ctx, cl)
	if err != nil {
		return err
	}
	return a.printCaseResponse(resp)
}

func (a *app) printCaseResponse(resp *pb.CaseResponse) error {
	if resp.GetReplayed() {
		fmt.Fprintln(a.stderr, "replayed: this request id was already applied; nothing changed")
	}
	if a.output == "json" {
		return writeJSON(a.stdout, resp)
	}
	return writeCase(a.stdout, resp.GetCase(), false, a.now())
}
