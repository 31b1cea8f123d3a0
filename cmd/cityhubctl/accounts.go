package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// The node's identities, for its administrators (role admin): people's
// accounts, integrators' API keys and the audit trail.

func (a *app) accountsCmd() *cobra.Command {
	c := &cobra.Command{
		Use:     "accounts",
		Aliases: []string{"account"},
		Short:   "Manage the node's accounts (people's seats: role, unit, grids); administrators only",
	}
	c.AddCommand(a.accountsCreateCmd(), a.accountsListCmd(), a.accountsUpdateCmd(), a.accountsDeleteCmd())
	return c
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (a *app) accountsCreateCmd() *cobra.Command {
	var (
		req              pb.CreateAccountRequest
		role, grids, rid string
		pwStdin          bool
	)
	c := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an account (a person's seat) with its password",
		Long: `Create an account: NAME (a-z 0-9 . _ -, up to 32) logs in with the
password given on the terminal (twice) or on the first line of stdin
(--password-stdin), at least 10 characters. --role is what the account may
do (the node's rules table): an inspector needs --grids (the grid code
prefixes they patrol), a handling unit's seat needs --unit (the unit it
works for). Integrators (the citizens' app, camera analytics, a hotline
platform) get an API key instead: 'cityhubctl keys create'.`,
		Example: `  cityhubctl accounts create lead-1 --role shift-leader --display-name 李四
  cityhubctl accounts create insp-007 --role inspector --grids 320505001001,320505001002 --display-name 王五
  echo "$PW" | cityhubctl accounts create water --role handling-unit --unit city-water --password-stdin`,
		Args: cobra.ExactArgs(1),
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, args []string) error {
			req.Name = args[0]
			var err error
			if req.Role, err = roles.parse(role); err != nil {
				return err
			}
			req.Grids = splitList(grids)
			if req.Password, err = a.readSecret(pwStdin, true, fmt.Sprintf("password for %s: ", req.Name)); err != nil {
				return err
			}
			if req.RequestId, err = a.requestID(rid); err != nil {
				return err
			}
			cl, err := a.authClient()
			if err != nil {
				return err
			}
			cctx, cancel := a.call(ctx)
			defer cancel()
			acct, err := cl.CreateAccount(cctx, &req)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return writeJSON(a.stdout, acct)
			}
			fmt.Fprintf(a.stdout, "created account %s\n", acct.GetName())
			return writeAccount(a.stdout, acct)
		}),
	}
	f := c.Flags()
	f.StringVar(&role, "role", "", "what the account may do: "+roles.help())
	f.StringVar(&req.Unit, "unit", "", "the unit the person works for (required for handling-unit)")
	f.StringVar(&grids, "grids", "", "comma-separated grid code prefixes an inspector patrols, e.g. 320505001001,320505001002")
	f.StringVar(&req.DisplayName, "display-name", "", "the person's name, as the case history shows it (e.g. 张三)")
	f.BoolVar(&pwStdin, "password-stdin", false, "read the password from the first line of stdin")
	f.StringVar(&rid, "request-id", "", "idempotency key (default: a fresh random one, printed to stderr)")
	_ = c.MarkFlagRequired("role")
	return c
}

func (a *app) accountsListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the node's accounts",
		Args:  cobra.NoArgs,
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			cl, err := a.authClient()
			if err != nil {
				return err
			}
			cctx, cancel := a.call(ctx)
			defer cancel()
			resp, err := cl.ListAccounts(cctx, &pb.ListAccountsRequest{})
			if err != nil {
				return err
			}
			if a.output == "json" {
				return writeJSON(a.stdout, resp)
			}
			tw := newTable(a.stdout)
			tw.row("NAME", "DISPLAY NAME", "ROLE", "UNIT", "GRIDS", "STATUS", "CREATED", "BY")
			for _, ac := range resp.GetAccounts() {
				tw.row(ac.GetName(), orDash(oneLine(ac.GetDisplayName())), roles.name(ac.GetRole()), orDash(ac.GetUnit()),
					orDash(strings.Join(ac.GetGrids(), ",")), accountStatus(ac), fmtTime(ac.GetCreatedAt(), zoneTime), orDash(ac.GetCreatedBy()))
			}
			return tw.Flush()
		}),
	}
}

func accountStatus(ac *pb.AccountView) string {
	if ac.GetDisabled() {
		return "disabled"
	}
	return "enabled"
}

func writeAccount(w io.Writer, ac *pb.AccountView) error {
	tw := newTable(w)
	row(tw, "name:", ac.GetName())
	row(tw, "display name:", orDash(ac.GetDisplayName()))
	row(tw, "role:", roles.name(ac.GetRole()))
	row(tw, "unit:", orDash(ac.GetUnit()))
	row(tw, "grids:", orDash(strings.Join(ac.GetGrids(), ", ")))
	row(tw, "status:", accountStatus(ac))
	row(tw, "created:", join(" by ", fmtTime(ac.GetCreatedAt(), zoneTime), ac.GetCreatedBy()))
	if ac.GetUpdatedAt() != nil {
		row(tw, "updated:", fmtTime(ac.GetUpdatedAt(), zoneTime))
	}
	return tw.Flush()
}

func (a *app) accountsUpdateCmd() *cobra.Command {
	var (
		req               pb.UpdateAccountRequest
		role, grids, rid  string
		pwStdin, pwPrompt bool
	)
	c := &cobra.Command{
		Use:   "update NAME",
		Short: "Change an account: password, role, unit, grids, display name; disable, enable; end its tokens",
		Long: `Change an account. Each flag given replaces the account's value. A new
password (--password-stdin, or --password to be asked on the terminal),
--disable or --revoke-tokens also ends every token issued to the account so
far: its logins stop working within the access token's life (minutes), its
refresh tokens at once.`,
		Example: `  cityhubctl accounts update insp-007 --grids 320505001001,320505001003
  cityhubctl accounts update lead-1 --disable
  echo "$NEW" | cityhubctl accounts update lead-1 --password-stdin`,
		Args: cobra.ExactArgs(1),
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, args []string) error {
			req.Name = args[0]
			var err error
			if req.Role, err = parseOptional(roles, role); err != nil {
				return err
			}
			f := cmd.Flags()
			if f.Changed("grids") {
				req.Grids, req.SetGrids = splitList(grids), true
			}
			if req.Disable && req.Enable {
				return usagef("--disable or --enable, not both")
			}
			if pwStdin || pwPrompt {
				if req.Password, err = a.readSecret(pwStdin, true, fmt.Sprintf("new password for %s: ", req.Name)); err != nil {
					return err
				}
			}
			if req.DisplayName == "" && req.Role == pb.Role_ROLE_UNSPECIFIED && req.Unit == "" && !req.SetGrids &&
				req.Password == "" && !req.Disable && !req.Enable && !req.RevokeTokens {
				return usagef("nothing to change: give at least one of --password-stdin, --password, --disable, --enable, --revoke-tokens, --role, --unit, --grids, --display-name")
			}
			if req.RequestId, err = a.requestID(rid); err != nil {
				return err
			}
			cl, err := a.authClient()
			if err != nil {
				return err
			}
			cctx, cancel := a.call(ctx)
			defer cancel()
			acct, err := cl.UpdateAccount(cctx, &req)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return writeJSON(a.stdout, acct)
			}
			fmt.Fprintf(a.stdout, "updated account %s\n", acct.GetName())
			return writeAccount(a.stdout, acct)
		}),
	}
	f := c.Flags()
	f.BoolVar(&pwStdin, "password-stdin", false, "set a new password, read from the first line of stdin")
	f.BoolVar(&pwPrompt, "password", false, "set a new password, asked on the terminal")
	f.BoolVar(&req.Disable, "disable", false, "disable the account (and end its tokens)")
	f.BoolVar(&req.Enable, "enable", false, "enable the account again")
	f.BoolVar(&req.RevokeTokens, "revoke-tokens", false, "end every token issued to the account so far")
	f.StringVar(&role, "role", "", "new role: "+roles.help())
	f.StringVar(&req.Unit, "unit", "", "new unit")
	f.StringVar(&grids, "grids", "", "new grid code prefixes, comma-separated (replaces them all)")
	f.StringVar(&req.DisplayName, "display-name", "", "new display name")
	f.StringVar(&rid, "request-id", "", "idempotency key (default: a fresh random one, printed to stderr)")
	return c
}

func (a *app) accountsDeleteCmd() *cobra.Command {
	var rid string
	c := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete an account and end its logins",
		Args:  cobra.ExactArgs(1),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, args []string) error {
			id, err := a.requestID(rid)
			if err != nil {
				return err
			}
			cl, err := a.authClient()
			if err != nil {
				return err
			}
			cctx, cancel := a.call(ctx)
			defer cancel()
			if _, err := cl.DeleteAccount(cctx, &pb.DeleteAccountRequest{RequestId: id, Name: args[0]}); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "deleted account %s\n", args[0])
			return nil
		}),
	}
	c.Flags().StringVar(&rid, "request-id", "", "idempotency key (default: a fresh random one, printed to stderr)")
	return c
}

func (a *app) keysCmd() *cobra.Command {
	c := &cobra.Command{
		Use:     "keys",
		Aliases: []string{"key", "api-keys"},
		Short:   "Manage integrators' API keys (hotline platforms, the citizens' app, cameras); administrators only",
	}
	c.AddCommand(a.keysCreateCmd(), a.keysListCmd(), a.keysRevokeCmd())
	return c
}

func (a *app) keysCreateCmd() *cobra.Command {
	var (
		req             pb.CreateAPIKeyRequest
		role, srcs, rid string
	)
	c := &cobra.Command{
		Use:   "create",
		Short: "Make an integrator's API key (shown once)",
		Long: `Make an API key for a system that reports cases: a hotline platform (role
intake-clerk), the citizens' app (citizen) or camera analytics (system). It
reports only as its --sources and reads only its own reports (all of the
node's with --read-all). The key is printed once, on the first line of
stdout: the node keeps only its hash. The integrator sends it as
"authorization: Bearer <key>" (cityhubctl --token <key>).`,
		Example: `  cityhubctl keys create --name "12345 热线平台" --role intake-clerk --sources 12345
  cityhubctl keys create --name "视频智能分析" --role system --sources camera --read-all`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			var err error
			if req.Role, err = roles.parse(role); err != nil {
				return err
			}
			for _, s := range splitList(srcs) {
				src, err := sources.parse(s)
				if err != nil {
					return err
				}
				req.Sources = append(req.Sources, src)
			}
			if len(req.Sources) == 0 {
				return usagef("--sources: at least one source the key reports as: %s", sources.help())
			}
			if req.RequestId, err = a.requestID(rid); err != nil {
				return err
			}
			cl, err := a.authClient()
			if err != nil {
				return err
			}
			cctx, cancel := a.call(ctx)
			defer cancel()
			resp, err := cl.CreateAPIKey(cctx, &req)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stderr, "warning: the key is shown only this once (the node keeps only its hash): store it now; if it is lost, revoke it and make another")
			if a.output == "json" {
				return writeJSON(a.stdout, resp)
			}
			fmt.Fprintln(a.stdout, resp.GetKey())
			return writeKey(a.stdout, resp.GetInfo())
		}),
	}
	f := c.Flags()
	f.StringVar(&req.Name, "name", "", "who the key is for, e.g. \"12345 热线平台\"")
	f.StringVar(&role, "role", "", "intake-clerk (a hotline platform), citizen (the citizens' app) or system (camera analytics)")
	f.StringVar(&srcs, "sources", "", "comma-separated sources it reports as: "+sources.help()+" (or HOTLINE_12345...)")
	f.BoolVar(&req.ReadAll, "read-all", false, "may read every case of the node, not only its own reports")
	f.StringVar(&req.Unit, "unit", "", "the unit the integrator speaks for (optional)")
	f.StringVar(&rid, "request-id", "", "idempotency key (default: a fresh random one, printed to stderr)")
	_ = c.MarkFlagRequired("name")
	_ = c.MarkFlagRequired("role")
	_ = c.MarkFlagRequired("sources")
	return c
}

func writeKey(w io.Writer, k *pb.APIKeyView) error {
	tw := newTable(w)
	row(tw, "id:", k.GetId())
	row(tw, "name:", k.GetName())
	row(tw, "role:", roles.name(k.GetRole()))
	row(tw, "sources:", orDash(sourceNames(k.GetSources())))
	row(tw, "reads:", keyReads(k))
	row(tw, "unit:", orDash(k.GetUnit()))
	row(tw, "created:", join(" by ", fmtTime(k.GetCreatedAt(), zoneTime), k.GetCreatedBy()))
	if k.GetRevokedAt() != nil {
		row(tw, "revoked:", fmtTime(k.GetRevokedAt(), zoneTime))
	}
	return tw.Flush()
}

func keyReads(k *pb.APIKeyView) string {
	if k.GetReadAll() {
		return "all"
	}
	return "own"
}

func (a *app) keysListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the node's API keys (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			cl, err := a.authClient()
			if err != nil {
				return err
			}
			cctx, cancel := a.call(ctx)
			defer cancel()
			resp, err := cl.ListAPIKeys(cctx, &pb.ListAPIKeysRequest{})
			if err != nil {
				return err
			}
			if a.output == "json" {
				return writeJSON(a.stdout, resp)
			}
			tw := newTable(a.stdout)
			tw.row("ID", "NAME", "ROLE", "SOURCES", "READS", "UNIT", "CREATED", "BY", "REVOKED")
			for _, k := range resp.GetKeys() {
				tw.row(k.GetId(), oneLine(k.GetName()), roles.name(k.GetRole()), orDash(sourceNames(k.GetSources())), keyReads(k),
					orDash(k.GetUnit()), fmtTime(k.GetCreatedAt(), zoneTime), orDash(k.GetCreatedBy()), fmtTime(k.GetRevokedAt(), zoneTime))
			}
			return tw.Flush()
		}),
	}
}

func (a *app) keysRevokeCmd() *cobra.Command {
	var rid string
	c := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API key at once",
		Args:  cobra.ExactArgs(1),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, args []string) error {
			id, err := a.requestID(rid)
			if err != nil {
				return err
			}
			cl, err := a.authClient()
			if err != nil {
				return err
			}
			cctx, cancel := a.call(ctx)
			defer cancel()
			if _, err := cl.RevokeAPIKey(cctx, &pb.RevokeAPIKeyRequest{RequestId: id, Id: args[0]}); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "revoked key %s\n", args[0])
			return nil
		}),
	}
	c.Flags().StringVar(&rid, "request-id", "", "idempotency key (default: a fresh random one, printed to stderr)")
	return c
}

// parseSince reads a --since or --until: RFC 3339, a date (local
// midnight), or a duration meaning that long ago (24h, 2d, 30m).
func parseSince(flag, s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if d, err := parseDuration(strings.TrimPrefix(s, "-")); err == nil {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02", s, displayLoc); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02 15:04:05", s, displayLoc); err == nil {
		return t, nil
	}
	return time.Time{}, usagef("--%s %q: want a duration ago (24h, 2d), RFC 3339 or a date (2026-11-22)", flag, s)
}

func (a *app) auditCmd() *cobra.Command {
	var (
		req          pb.ListAuditRequest
		since, until string
		limit        int
	)
	c := &cobra.Command{
		Use:   "audit",
		Short: "Who did what on the node: case writes, logins' identity changes, keys (administrators)",
		Long: `List the node's audit trail in a time range: one line per case write made
on this node (who, in which role and unit, which action on which case) and
per identity change (accounts, keys, sessions), oldest first, times in the
local zone.`,
		Example: `  cityhubctl audit                         # the last 24 hours
  cityhubctl audit --since 2h --principal acct:lead-1
  cityhubctl audit --since 2026-11-22 --until 2026-11-23 -o json`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			now := a.now()
			if since != "" {
				t, err := parseSince("since", since, now)
				if err != nil {
					return err
				}
				req.Since = timestamppb.New(t)
			}
			if until != "" {
				t, err := parseSince("until", until, now)
				if err != nil {
					return err
				}
				req.Until = timestamppb.New(t)
			}
			if limit < 0 {
				return usagef("--limit must not be negative")
			}
			cl, err := a.authClient()
			if err != nil {
				return err
			}
			out := &pb.ListAuditResponse{}
			for {
				if limit > 0 {
					req.PageSize = int32(min(limit-len(out.Events), 1000))
				}
				cctx, cancel := a.call(ctx)
				page, err := cl.ListAudit(cctx, &req)
				cancel()
				if err != nil {
					return err
				}
				out.Events = append(out.Events, page.GetEvents()...)
				out.NextPageToken = page.GetNextPageToken()
				if out.NextPageToken == "" || limit > 0 && len(out.Events) >= limit {
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
			if len(out.Events) == 0 {
				fmt.Fprintln(a.stderr, "no audit events in the range")
			}
			tw := newTable(a.stdout)
			tw.row("TIME", "PRINCIPAL", "ACTOR", "ROLE", "UNIT", "ACTION", "CASE", "DETAIL")
			for _, e := range out.Events {
				caseRef := e.GetCaseId()
				if caseRef != "" && e.GetVersion() != 0 {
					caseRef += " v" + strconv.FormatUint(e.GetVersion(), 10)
				}
				tw.row(time.UnixMilli(e.GetAtUnixMs()).In(displayLoc).Format(zoneTime), orDash(e.GetPrincipal()), orDash(oneLine(e.GetActor())),
					roles.name(e.GetRole()), orDash(e.GetUnit()), auditAction(e.GetAction()), orDash(caseRef), orDash(oneLine(e.GetDetail())))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if out.NextPageToken != "" {
				fmt.Fprintf(a.stdout, "more: --limit %d shown; next-page-token: %s\n", limit, out.NextPageToken)
			}
			return nil
		}),
	}
	f := c.Flags()
	f.StringVar(&since, "since", "", "from: a duration ago (24h, 2d), RFC 3339 or a date (default: 24 hours ago)")
	f.StringVar(&until, "until", "", "to (exclusive): the same forms (default: now)")
	f.StringVar(&req.Principal, "principal", "", "only this principal's events (acct:<name>, key:<id>)")
	f.IntVar(&limit, "limit", 0, "at most this many events (0: all in the range)")
	return c
}

// auditAction shows a workflow action by its CLI name (dispatch,
// check-pass), identity changes as they are (account.create).
func auditAction(s string) string {
	if v, ok := pb.Action_value[s]; ok {
		return actions.name(pb.Action(v))
	}
	return orDash(s)
}
