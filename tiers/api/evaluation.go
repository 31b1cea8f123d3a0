package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/auth"
	"github.com/cityhub/cityhub/tiers/evaluation"
	"github.com/cityhub/cityhub/tiers/export"
)

// GetEvaluation scores units, regions or inspectors over a day, week, month
// or quarter (综合评价) from the counters the state machine keeps. Defaults:
// period week, at today (this process's local date), dimension unit,
// region_digits 9, scheme department, consistency LEADER (a follower
// forwards to the leader, as for ListCases). Bad fields are refused with
// InvalidArgument naming the field.
func (s *CaseServer) GetEvaluation(ctx context.Context, r *pb.EvaluationRequest) (*pb.EvaluationReport, error) {
	if err := s.g.require(ctx, auth.EvaluationRead, nil); err != nil {
		return nil, err
	}
	q, err := s.evaluationQuery(r)
	if err != nil {
		return nil, toStatus(err)
	}
	r.Consistency = orDefault(r.Consistency, pb.Consistency_CONSISTENCY_LEADER)
	if leader, err := s.leaderFor(ctx, r.Consistency); err != nil {
		return nil, toStatus(err)
	} else if leader != nil {
		// The leader answers for the same day, whatever its clock says.
		fwd := &pb.EvaluationRequest{Period: q.Period, At: q.At, Dimension: q.Dimension,
			RegionDigits: int32(q.RegionDigits), Scheme: q.Scheme, Consistency: r.Consistency}
		return leader.GetEvaluation(forwardCtx(ctx), fwd)
	}
	rep, err := evaluation.Report(s.replica.Store(), q)
	if err != nil {
		return nil, toStatus(evaluationErr(err))
	}
	return rep, nil
}

// evaluationQuery fills the request's defaults and checks it.
func (s *CaseServer) evaluationQuery(r *pb.EvaluationRequest) (evaluation.Query, error) {
	q := evaluation.Query{
		Period:       strings.ToLower(strings.TrimSpace(r.GetPeriod())),
		At:           strings.TrimSpace(r.GetAt()),
		Dimension:    strings.ToLower(strings.TrimSpace(r.GetDimension())),
		RegionDigits: int(r.GetRegionDigits()),
		Scheme:       strings.ToLower(strings.TrimSpace(r.GetScheme())),
	}
	if q.Period == "" {
		q.Period = evaluation.Week
	}
	if q.At == "" {
		q.At = s.now().Format(evaluation.DateLayout)
	}
	if q.Dimension == "" {
		q.Dimension = evaluation.Unit
	}
	if q.RegionDigits == 0 {
		q.RegionDigits = evaluation.DefaultRegionDigits
	}
	if q.Scheme == "" {
		q.Scheme = evaluation.DefaultScheme
	}
	if _, ok := pb.Consistency_name[int32(r.GetConsistency())]; !ok {
		return q, invalid("consistency", "STALE, LEADER or LINEARIZABLE")
	}
	if _, err := evaluation.ParsePeriod(q.Period, q.At); err != nil {
		return q, evaluationErr(err)
	}
	switch q.Dimension {
	case evaluation.Unit, evaluation.Region, evaluation.Inspector:
	default:
		return q, invalid("dimension", "%q is not unit, region or inspector", q.Dimension)
	}
	switch q.RegionDigits {
	case 6, 9, 12:
	default:
		return q, invalid("region_digits", "%d: 6 (district), 9 (street) or 12 (community)", q.RegionDigits)
	}
	if sc, ok := s.schemes[q.Scheme]; ok {
		q.Weights = &sc
		return q, nil
	}
	if _, ok := evaluation.Presets[q.Scheme]; !ok {
		names := evaluation.SchemeNames()
		for n := range s.schemes {
			names = append(names, n)
		}
		slices.Sort(names)
		return q, invalid("scheme", "%q is not a scheme; known: %s", q.Scheme, strings.Join(names, ", "))
	}
	return q, nil
}

// evaluationErr turns the evaluation package's field errors into this
// package's, so they become InvalidArgument naming the field.
func evaluationErr(err error) error {
	var fe *evaluation.FieldError
	if errors.As(err, &fe) {
		return invalid(fe.Field, "%s", fe.Reason)
	}
	return err
}

// Evaluation downloads (REST only): GET /v1/evaluation.csv and
// /v1/evaluation.xlsx take the query parameters of GET /v1/evaluation
// (period, at, dimension, region_digits, scheme, consistency) and answer
// the report as a file. The workbook takes several dimensions, comma
// separated or repeated (dimension=unit,region,inspector: the weekly
// bulletin), one sheet each.
func registerEvaluationDownloads(mux *http.ServeMux, cs *CaseServer) {
	mux.HandleFunc("GET /v1/evaluation.csv", func(w http.ResponseWriter, req *http.Request) {
		serveEvaluation(w, req, cs, "csv")
	})
	mux.HandleFunc("GET /v1/evaluation.xlsx", func(w http.ResponseWriter, req *http.Request) {
		serveEvaluation(w, req, cs, "xlsx")
	})
}

const xlsxContentType = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

func serveEvaluation(w http.ResponseWriter, req *http.Request, cs *CaseServer, format string) {
	reqs, err := evaluationRequests(req, format == "xlsx", cs.now())
	if err != nil {
		writeError(w, status.Convert(toStatus(err)))
		return
	}
	reports := make([]*pb.EvaluationReport, 0, len(reqs))
	for _, r := range reqs {
		rep, err := cs.GetEvaluation(req.Context(), r)
		if err != nil {
			writeError(w, status.Convert(err))
			return
		}
		reports = append(reports, rep)
	}
	var buf bytes.Buffer
	contentType := "text/csv; charset=utf-8"
	if format == "csv" {
		err = export.WriteEvaluationCSV(&buf, reports[0])
	} else {
		contentType = xlsxContentType
		err = export.WriteEvaluationXLSX(&buf, reports...)
	}
	if err != nil {
		writeError(w, status.New(codes.Internal, "write "+format+": "+err.Error()))
		return
	}
	name := "evaluation-" + reports[0].GetPeriodKey()
	for _, rep := range reports {
		name += "-" + rep.GetDimension()
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name+"."+format))
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	_, _ = buf.WriteTo(w)
}

// evaluationRequests reads the query parameters of a download.
func evaluationRequests(req *http.Request, manyDimensions bool, now time.Time) ([]*pb.EvaluationRequest, error) {
	v := req.URL.Query()
	base := &pb.EvaluationRequest{Period: v.Get("period"), At: v.Get("at"), Scheme: v.Get("scheme")}
	if s := v.Get("region_digits"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, invalid("region_digits", "%q is not a number", s)
		}
		base.RegionDigits = int32(n)
	}
	if s := v.Get("consistency"); s != "" {
		c, ok := parseConsistency(s)
		if !ok {
			return nil, invalid("consistency", "%q: STALE, LEADER or LINEARIZABLE", s)
		}
		base.Consistency = c
	}
	var dims []string
	for _, d := range v["dimension"] {
		for _, part := range strings.Split(d, ",") {
			if part = strings.TrimSpace(part); part != "" {
				dims = append(dims, part)
			}
		}
	}
	if len(dims) == 0 {
		dims = []string{""}
	}
	if len(dims) > 1 && !manyDimensions {
		return nil, invalid("dimension", "one dimension per CSV file (the .xlsx download takes several)")
	}
	if len(dims) > 3 {
		return nil, invalid("dimension", "at most 3 dimensions")
	}
	// Every sheet of one workbook is for the same day.
	if base.At == "" {
		base.At = now.Format(evaluation.DateLayout)
	}
	out := make([]*pb.EvaluationRequest, len(dims))
	for i, d := range dims {
		out[i] = &pb.EvaluationRequest{Period: base.Period, At: base.At, Dimension: d,
			RegionDigits: base.RegionDigits, Scheme: base.Scheme, Consistency: base.Consistency}
	}
	return out, nil
}

// parseConsistency accepts CONSISTENCY_STALE, stale, 1 and the like.
func parseConsistency(s string) (pb.Consistency, bool) {
	u := strings.ToUpper(strings.TrimSpace(s))
	if n, err := strconv.Atoi(u); err == nil {
		_, ok := pb.Consistency_name[int32(n)]
		return pb.Consistency(n), ok
	}
	if !strings.HasPrefix(u, "CONSISTENCY_") {
		u = "CONSISTENCY_" + u
	}
	c, ok := pb.Consistency_value[u]
	return pb.Consistency(c), ok
}
