package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/export"
)

// reconcileTimeout bounds a reconciliation run when --timeout is not given:
// a district's backlog takes minutes, not the 10 s of an ordinary call. A
// run cut short stays resumable.
const reconcileTimeout = 30 * time.Minute

// defaultPlanLimit is how many plan records the table shows by default.
const defaultPlanLimit = 50

func (a *app) ownershipClient() (pb.OwnershipServiceClient, error) {
	conn, err := a.dial()
	if err != nil {
		return nil, err
	}
	return pb.NewOwnershipServiceClient(conn), nil
}

// checkGlobals is the root's check of the global flags for commands that
// print other formats than table and json (csv).
func (a *app) checkGlobals(formats ...string) func(*cobra.Command, []string) error {
	return func(*cobra.Command, []string) error {
		if !slices.Contains(formats, a.output) {
			return usagef("--output %q: must be %s", a.output, orList(formats))
		}
		if a.timeout <= 0 {
			return usagef("--timeout must be positive")
		}
		if a.addr == "" {
			return usagef("--addr is empty")
		}
		return nil
	}
}

// orList renders a, b or c.
func orList(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// reconcileCmd is `cityhubctl reconcile`: run (or plan) reconciliation on
// the node the CLI talks to, and `reconcile report`: a stored run's report.
func (a *app) reconcileCmd() *cobra.Command {
	var (
		req      pb.ReconcileRequest
		limit    int
		planCSV  string
		progress bool
	)
	c := &cobra.Command{
		Use:   "reconcile",
		Short: "Move every open case of this node to the node and unit that own it (or plan it with --dry-run)",
		Long: `Reconcile scans the open cases the node holds and asks the city's
responsibility catalogue (责任清单) who owns each: a case owned above is
handed up (上交), one owned here or below is dispatched or reassigned
(改派) to its owner, and one the catalogue cannot give a single owner (or
whose owner sent it back twice) goes to the city's joint review queue
(疑难案件会诊, see 'cityhubctl review list'). Cases that cannot move now
(handled, suspended, a request pending) are counted as pending.

Run it against the node to reconcile (--addr; the default is the city).
A run goes through the node's Raft log in batches (--batch moves per
command, default the node's reconcile.batch_size) and is recorded: without
--run-id a run resumes the node's unfinished one, if any, so a run cut
short (timeout, Ctrl-C, a crash) is finished by running the command again,
and a second run after a finished one moves nothing. The call waits up to
--timeout when it is given, else 30 minutes.

--dry-run plans only: nothing is written; the table then also lists the
plan, one planned case per row (the first --limit, 0 for all).

Output: a summary line (run, scanned, in place, moved, pending, disputed,
rejected), then one table per dimension (kind, class, unit, age of the
case, destination node). -o json prints the report as protojson (with the
whole plan of a dry run); -o csv the counts (export.WriteReconcileCSV: run_id,
dimension, key, moved, pending, disputed, rejected, one row per dimension
and key, then a "total" row). The plan of a dry run is not part of that
CSV, which keeps one header; --plan-csv FILE writes it, every record, to a
CSV file of its own.`,
		Example: `  cityhubctl --addr 127.0.0.1:7102 reconcile --dry-run            # what 虎丘区 would move
  cityhubctl --addr 127.0.0.1:7102 reconcile --dry-run --plan-csv plan.csv
  cityhubctl --addr 127.0.0.1:7102 reconcile                      # do it
  cityhubctl --addr 127.0.0.1:7102 -o csv reconcile report > run.csv`,
		Args:              cobra.NoArgs,
		PersistentPreRunE: a.checkGlobals("table", "json", "csv"),
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			if req.BatchSize < 0 || req.BatchSize > 5000 {
				return usagef("--batch %d: between 1 and 5000 (0: the node's default)", req.BatchSize)
			}
			if limit < 0 {
				return usagef("--limit must not be negative")
			}
			if planCSV != "" && !req.DryRun {
				return usagef("--plan-csv goes with --dry-run (a run's records are in 'cityhubctl reconcile report')")
			}
			if req.DryRun && req.RunId != "" {
				return usagef("--run-id: a dry run records nothing and has no run id")
			}
			cl, err := a.ownershipClient()
			if err != nil {
				return err
			}
			timeout := a.timeout
			if f := cmd.Flag("timeout"); f == nil || !f.Changed {
				timeout = reconcileTimeout
			}
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			var rep *pb.ReconcileReport
			if !req.DryRun && a.wantProgress(cmd.Flags().Changed("progress"), progress) {
				rep, err = a.reconcileWithProgress(cctx, cl, &req)
			} else {
				rep, err = cl.Reconcile(cctx, &req)
			}
			if err != nil {
				return err
			}
			if planCSV != "" {
				if err := writePlanCSVFile(planCSV, rep.GetPlan()); err != nil {
					return err
				}
				fmt.Fprintf(a.stderr, "wrote %s (%d planned cases)\n", planCSV, len(rep.GetPlan()))
			}
			return a.printReconcileReport(rep, limit)
		}),
	}
	f := c.Flags()
	f.BoolVar(&req.DryRun, "dry-run", false, "plan only: write nothing, list the plan")
	f.StringVar(&req.RunId, "run-id", "", "run id to start, or to run again (default: resume the unfinished run, else a new one)")
	f.Int32Var(&req.BatchSize, "batch", 0, "moves per Raft command, 1-5000 (default: the node's reconcile.batch_size)")
	f.IntVar(&limit, "limit", defaultPlanLimit, "dry run: plan rows shown in the table (0: all)")
	f.StringVar(&planCSV, "plan-csv", "", "dry run: also write every planned case as CSV to FILE")
	f.BoolVar(&progress, "progress", false, "print the run's progress to stderr: cases done of those to act on, rate, time left (default: when stderr is a terminal)")
	c.AddCommand(a.reconcileReportCmd())
	return c
}

func (a *app) reconcileReportCmd() *cobra.Command {
	var (
		req         pb.ReconcileReportRequest
		consistency string
	)
	c := &cobra.Command{
		Use:   "report",
		Short: "Show a stored reconciliation run's report (the latest without --run-id)",
		Long: `Show the report of a reconciliation run of this node, as the node keeps it
(it survives restarts and leader changes): the latest run without
--run-id. Same output as 'cityhubctl reconcile' (-o table, json or csv);
dry runs are not stored.`,
		Example: `  cityhubctl --addr 127.0.0.1:7102 reconcile report
  cityhubctl --addr 127.0.0.1:7102 -o csv reconcile report --run-id d-320505-20261122T020000Z`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			var err error
			if req.Consistency, err = parseOptional(consistencies, consistency); err != nil {
				return err
			}
			cl, err := a.ownershipClient()
			if err != nil {
				return err
			}
			cctx, cancel := a.call(ctx)
			defer cancel()
			rep, err := cl.GetReconcileReport(cctx, &req)
			if err != nil {
				return err
			}
			return a.printReconcileReport(rep, defaultPlanLimit)
		}),
	}
	f := c.Flags()
	f.StringVar(&req.RunId, "run-id", "", "the run (default: the latest)")
	f.StringVar(&consistency, "consistency", "", "read consistency: "+consistencies.help()+" (default: the server's)")
	return c
}

// printReconcileReport prints rep in the chosen output format.
func (a *app) printReconcileReport(rep *pb.ReconcileReport, limit int) error {
	switch a.output {
	case "json":
		return writeJSON(a.stdout, rep)
	case "csv":
		return export.WriteReconcileCSV(a.stdout, rep)
	}
	return writeReconcileReport(a.stdout, rep, limit)
}

// reconcileSummary is the report's one-line summary.
func reconcileSummary(rep *pb.ReconcileReport) string {
	var what string
	switch {
	case rep.GetDryRun():
		what = "dry run (nothing written)"
	case rep.GetFinished() && rep.GetIncomplete():
		what = fmt.Sprintf("run %s (finished incomplete: %d moves refused, recorded with their reasons; fix the cases and run again)", rep.GetRunId(), rep.GetFailed())
	case rep.GetFinished():
		what = "run " + rep.GetRunId() + " (finished)"
	default:
		what = "run " + rep.GetRunId() + " (unfinished: run 'cityhubctl reconcile' again to resume it)"
	}
	line := fmt.Sprintf("%s at %s: scanned %d, in place %d, moved %d, pending %d, disputed %d, rejected %d",
		what, orDash(rep.GetNode()), rep.GetScanned(), rep.GetInPlace(), rep.GetMoved(), rep.GetPending(), rep.GetDisputed(), rep.GetRejected())
	if rep.GetFailed() > 0 {
		line += fmt.Sprintf(", failed %d", rep.GetFailed())
	}
	return line
}

// dimensionTitles names the report's dimensions, in the server's order.
var dimensionTitles = []struct{ dim, title, header string }{
	{"kind", "by kind", "KIND"},
	{"class", "by class", "CLASS"},
	{"unit", "by owner unit", "UNIT"},
	{"age", "by age of the case", "AGE"},
	{"to_node", "by destination node", "TO NODE"},
}

// writeReconcileReport prints the summary, a table per dimension and, for a
// dry run, the first limit records of the plan (0: all).
func writeReconcileReport(w io.Writer, rep *pb.ReconcileReport, limit int) error {
	fmt.Fprintln(w, reconcileSummary(rep))
	if t := rep.GetStartedAt(); t != nil {
		line := "started " + fmtTime(t, zoneTime)
		if f := rep.GetFinishedAt(); f != nil {
			line += ", finished " + fmtTime(f, zoneTime)
		}
		fmt.Fprintln(w, line)
	}
	byDim := map[string][]*pb.ReconcileCount{}
	var dims []string
	for _, c := range rep.GetCounts() {
		if _, ok := byDim[c.GetDimension()]; !ok {
			dims = append(dims, c.GetDimension())
		}
		byDim[c.GetDimension()] = append(byDim[c.GetDimension()], c)
	}
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	for _, d := range dims {
		title, header := d, strings.ToUpper(strings.ReplaceAll(d, "_", " "))
		for _, t := range dimensionTitles {
			if t.dim == d {
				title, header = t.title, t.header
			}
		}
		fmt.Fprintf(w, "\n%s:\n", title)
		tw := newTable(w)
		row(tw, header, "MOVED", "PENDING", "DISPUTED", "REJECTED", "TOTAL")
		for _, c := range byDim[d] {
			row(tw, orDash(c.GetKey()), n(c.GetMoved()), n(c.GetPending()), n(c.GetDisputed()), n(c.GetRejected()),
				n(c.GetMoved()+c.GetPending()+c.GetDisputed()+c.GetRejected()))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if !rep.GetDryRun() {
		return nil
	}
	plan := rep.GetPlan()
	fmt.Fprintf(w, "\nplan (%d cases to act on):\n", len(plan))
	if len(plan) == 0 {
		return nil
	}
	shown := plan
	if limit > 0 && len(shown) > limit {
		shown = shown[:limit]
	}
	tw := newTable(w)
	// The reason goes last: it may be wide (Chinese) text.
	row(tw, "CASE", "OUTCOME", "ACTION", "FROM→TO NODE", "FROM UNIT→OWNER", "RULE", "REASON")
	for _, r := range shown {
		row(tw, r.GetCaseId(), outcomeName(r.GetOutcome()), actions.name(r.GetAction()),
			orDash(r.GetFromNode())+"→"+orDash(r.GetToNode()),
			orDash(r.GetFromUnit())+"→"+orDash(r.GetUnit()),
			orDash(r.GetRule()), orDash(oneLine(r.GetReason())))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if more := len(plan) - len(shown); more > 0 {
		fmt.Fprintf(w, "… %d more (--limit 0 shows all; --plan-csv FILE or -o json has every record)\n", more)
	}
	return nil
}

// outcomeName is the lower-case name of a reconciliation outcome (moved,
// pending, disputed, rejected, in-place).
func outcomeName(o pb.ReconcileOutcome) string {
	if o == pb.ReconcileOutcome_RECONCILE_OUTCOME_UNSPECIFIED {
		return "-"
	}
	s := strings.TrimPrefix(o.String(), "RECONCILE_OUTCOME_")
	return strings.ReplaceAll(strings.ToLower(s), "_", "-")
}

// planHeader is the header of --plan-csv.
var planHeader = []string{"case_id", "outcome", "action", "kind", "class", "from_node", "to_node", "from_unit", "owner_unit", "rule", "reason", "reported_at"}

// writePlanCSV writes plan records as CSV.
func writePlanCSV(w io.Writer, plan []*pb.ReconcileRecord) error {
	cw := csv.NewWriter(w)
	_ = cw.Write(planHeader)
	for _, r := range plan {
		reported := ""
		if ms := r.GetReportedUnixMs(); ms != 0 {
			reported = time.UnixMilli(ms).In(displayLoc).Format(time.RFC3339)
		}
		kind := kinds.name(r.GetKind())
		if kind == "-" {
			kind = ""
		}
		action := actions.name(r.GetAction())
		if action == "-" {
			action = ""
		}
		_ = cw.Write([]string{r.GetCaseId(), outcomeName(r.GetOutcome()), action, kind, r.GetClassCode(),
			r.GetFromNode(), r.GetToNode(), r.GetFromUnit(), r.GetUnit(), r.GetRule(), r.GetReason(), reported})
	}
	cw.Flush()
	return cw.Error()
}

// writePlanCSVFile writes the plan whole, or leaves no file.
func writePlanCSVFile(path string, plan []*pb.ReconcileRecord) error {
	var buf bytes.Buffer
	if err := writePlanCSV(&buf, plan); err != nil {
		return err
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("--plan-csv: %w", err)
	}
	return nil
}

// reconcileWithProgress runs reconciliation while it follows the run's
// report (its records grow batch by batch) and prints how many of the
// cases to act on are done, the rate and the time left. The total comes
// from a dry run first: the cases the plan does not leave in place.
func (a *app) reconcileWithProgress(ctx context.Context, cl pb.OwnershipServiceClient, req *pb.ReconcileRequest) (*pb.ReconcileReport, error) {
	plan, err := cl.Reconcile(ctx, &pb.ReconcileRequest{DryRun: true})
	if err != nil {
		return nil, err
	}
	meter := newProgress(a.stderr, "reconcile", "cases", int(plan.GetScanned()-plan.GetInPlace()))
	type answer struct {
		rep *pb.ReconcileReport
		err error
	}
	done := make(chan answer, 1)
	go func() {
		rep, err := cl.Reconcile(ctx, req)
		done <- answer{rep, err}
	}()
	seen := 0
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case ans := <-done:
			if ans.err == nil {
				r := ans.rep
				meter.add(int(r.GetMoved()+r.GetPending()+r.GetDisputed()+r.GetRejected()+r.GetFailed()) - seen)
			}
			meter.done()
			return ans.rep, ans.err
		case <-tick.C:
			cur, err := cl.GetReconcileReport(ctx, &pb.ReconcileReportRequest{})
			if err != nil || cur.GetFinished() {
				continue // not started yet, or the previous run's report
			}
			n := int(cur.GetMoved() + cur.GetPending() + cur.GetDisputed() + cur.GetRejected() + cur.GetFailed())
			if n > seen {
				meter.add(n - seen)
				seen = n
			}
		}
	}
}
