package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/evaluation"
	"github.com/cityhub/cityhub/tiers/export"
)

// evaluationCmd is `cityhubctl report`: the 综合评价 of a period.
func (a *app) evaluationCmd() *cobra.Command {
	var (
		req         pb.EvaluationRequest
		dimensions  string
		consistency string
		xlsx        string
	)
	c := &cobra.Command{
		Use:   "report",
		Short: "Evaluation (综合评价): rank units, regions or inspectors over a day, week, month or quarter",
		Long: `Evaluation (综合评价) of one period: per unit, region (grid prefix) or
inspector, the cases filed, dispatched, due, closed, closed on time,
handled on time, reworked, overdue, extended and recurring, the rates
(closure, on-time closure, on-time handling, rework, extension, percent)
and a score under a scheme ("department" or "jinhua"), ranked best first.
The node answers from counters its state machine keeps, so a weekly or
quarterly report costs the same however many cases there are.

Output: -o table (default), json or csv. --xlsx FILE also writes the
workbook of the weekly bulletin; give several dimensions, comma
separated, for one sheet (and one table) each.`,
		Example: `  cityhubctl report --period week --at 2026-11-20 --dimension unit
  cityhubctl report --period quarter --dimension region --region-digits 6 --scheme jinhua
  cityhubctl report --period week --dimension unit,region,inspector --xlsx bulletin-2026-W47.xlsx
  cityhubctl -o csv report --period month --at 2026-11-01 --dimension inspector > inspectors.csv`,
		Args: cobra.NoArgs,
		// The root allows -o table|json; a report is also CSV.
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if a.output != "table" && a.output != "json" && a.output != "csv" {
				return usagef("--output %q: must be table, json or csv", a.output)
			}
			if a.timeout <= 0 {
				return usagef("--timeout must be positive")
			}
			if a.addr == "" {
				return usagef("--addr is empty")
			}
			return nil
		},
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			var dims []string
			for _, d := range strings.Split(dimensions, ",") {
				if d = strings.TrimSpace(d); d != "" {
					dims = append(dims, d)
				}
			}
			if len(dims) == 0 {
				return usagef("--dimension: give unit, region or inspector")
			}
			if len(dims) > 1 && a.output != "table" {
				return usagef("--dimension: one dimension with -o %s (several go with the table and --xlsx)", a.output)
			}
			if req.At == "" {
				req.At = a.now().Format(evaluation.DateLayout) // the operator's today
			}
			var err error
			if req.Consistency, err = parseOptional(consistencies, consistency); err != nil {
				return err
			}
			cl, err := a.caseClient()
			if err != nil {
				return err
			}
			reports := make([]*pb.EvaluationReport, 0, len(dims))
			for _, d := range dims {
				ctx, cancel := a.call(ctx)
				r := &pb.EvaluationRequest{Period: req.Period, At: req.At, Dimension: d, RegionDigits: req.RegionDigits,
					Scheme: req.Scheme, Consistency: req.Consistency}
				rep, err := cl.GetEvaluation(ctx, r)
				cancel()
				if err != nil {
					return err
				}
				reports = append(reports, rep)
			}
			if xlsx != "" {
				if err := writeXLSXFile(xlsx, reports); err != nil {
					return err
				}
				fmt.Fprintf(a.stderr, "wrote %s (%d sheet%s)\n", xlsx, len(reports), map[bool]string{true: "s"}[len(reports) > 1])
			}
			switch a.output {
			case "json":
				return writeJSON(a.stdout, reports[0])
			case "csv":
				return export.WriteEvaluationCSV(a.stdout, reports[0])
			}
			for i, rep := range reports {
				if i > 0 {
					fmt.Fprintln(a.stdout)
				}
				if err := writeEvaluation(a.stdout, rep); err != nil {
					return err
				}
			}
			return nil
		}),
	}
	f := c.Flags()
	f.StringVar(&req.Period, "period", "week", "day, week (ISO, Monday to Sunday), month or quarter")
	f.StringVar(&req.At, "at", "", "a date inside the period, YYYY-MM-DD (default today)")
	f.StringVar(&dimensions, "dimension", "unit", "unit, region (grid prefix) or inspector; several comma separated for the table and --xlsx")
	f.Int32Var(&req.RegionDigits, "region-digits", 9, "region level: 6 (district), 9 (street) or 12 (community)")
	f.StringVar(&req.Scheme, "scheme", "department", "scoring scheme: "+strings.Join(evaluation.SchemeNames(), ", "))
	f.StringVar(&consistency, "consistency", "", "read consistency: "+consistencies.help()+" (default leader)")
	f.StringVar(&xlsx, "xlsx", "", "also write the reports as an .xlsx workbook to FILE (one sheet per dimension)")
	return c
}

// writeXLSXFile writes the workbook whole, or leaves no file.
func writeXLSXFile(path string, reports []*pb.EvaluationReport) error {
	var buf bytes.Buffer
	if err := export.WriteEvaluationXLSX(&buf, reports...); err != nil {
		return err
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("--xlsx: %w", err)
	}
	return nil
}

// writeEvaluation prints a report as a ranked table.
func writeEvaluation(w io.Writer, rep *pb.EvaluationReport) error {
	fmt.Fprintf(w, "%s (%s) by %s, scheme %s: %d rows\n", rep.GetPeriodKey(), rep.GetPeriod(), rep.GetDimension(), rep.GetScheme(), len(rep.GetRows()))
	if len(rep.GetRows()) == 0 {
		return nil
	}
	tw := newTable(w)
	// The key goes last: inspector ids may be wide (Chinese) text.
	row(tw, "RANK", "SCORE", "FILED", "DISPATCHED", "DUE", "CLOSED", "ON TIME", "HANDLED ON TIME", "REWORK", "OVERDUE", "EXT", "RECUR",
		"CLOSURE%", "ON-TIME%", "HANDLING%", "REWORK%", "EXT%", strings.ToUpper(rep.GetDimension()))
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	pct := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
	for _, r := range rep.GetRows() {
		row(tw, strconv.Itoa(int(r.GetRank())), pct(r.GetScore()), n(r.GetFiled()), n(r.GetDispatched()), n(r.GetDue()), n(r.GetClosed()),
			n(r.GetClosedOnTime()), n(r.GetHandledOnTime()), n(r.GetRework()), n(r.GetOverdue()), n(r.GetExtensions()), n(r.GetRecurrence()),
			pct(r.GetClosureRate()), pct(r.GetOnTimeClosureRate()), pct(r.GetOnTimeHandlingRate()), pct(r.GetReworkRate()), pct(r.GetExtensionRate()),
			oneLine(r.GetKey()))
	}
	return tw.Flush()
}
