package evaluation

import (
	"fmt"
	"math"
	"slices"
	"strings"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// CounterScanner reads counters by key prefix in key order; *store.Store
// implements it.
type CounterScanner interface {
	ScanCounters(prefix []byte, fn func(key []byte, v int64) error) error
}

// Query selects one report: a period, a dimension and a scoring scheme.
type Query struct {
	Period       string // day, week, month or quarter
	At           string // YYYY-MM-DD inside the period (required)
	Dimension    string // unit, region or inspector
	RegionDigits int    // region level: 6, 9 or 12; 0 means DefaultRegionDigits
	Scheme       string // preset name; "" means DefaultScheme
	// Weights, when set, scores with these weights instead of the preset
	// (the report is still labelled with Weights.Name).
	Weights *Scheme
}

// query is a validated Query.
type query struct {
	period period
	dim    byte
	digits int
	scheme Scheme
	q      Query
}

// check validates q and fills its defaults. Errors are *FieldError naming
// the request field: period, at, dimension, region_digits or scheme.
func (q Query) check() (query, error) {
	p, err := parsePeriod(q.Period, q.At)
	if err != nil {
		return query{}, err
	}
	out := query{period: p, q: q}
	switch q.Dimension {
	case Unit:
		out.dim = dimUnit
	case Region:
		out.dim = dimRegion
	case Inspector:
		out.dim = dimInspector
	default:
		return query{}, fieldErr("dimension", "%q is not unit, region or inspector", q.Dimension)
	}
	switch q.RegionDigits {
	case 0:
		out.q.RegionDigits = DefaultRegionDigits
	case 6, 9, 12:
	default:
		return query{}, fieldErr("region_digits", "%d: regions are kept at 6 (district), 9 (street) or 12 (community) digits", q.RegionDigits)
	}
	out.digits = out.q.RegionDigits
	if q.Weights != nil {
		out.scheme = *q.Weights
	} else {
		name := q.Scheme
		if name == "" {
			name = DefaultScheme
		}
		s, ok := Presets[name]
		if !ok {
			return query{}, fieldErr("scheme", "%q is not a scheme; presets: %s", q.Scheme, strings.Join(SchemeNames(), ", "))
		}
		out.scheme = s
	}
	out.q.Scheme = out.scheme.Name
	return out, nil
}

// counts holds one row's indicators: [0] over all cases, [1] over the
// cases from leaders and media only.
type counts [2][numIndicators + 1]int64

// Report reads the counters of one period × one dimension and returns the
// rows with their rates and scores, ranked best first (ties by key). Its
// cost is the number of counters under the period's prefixes (rows ×
// indicators, times 7 for a week summed from its days, 3 for a quarter
// from its months), not the number of cases.
func Report(r CounterScanner, q Query) (*pb.EvaluationReport, error) {
	cq, err := q.check()
	if err != nil {
		return nil, err
	}
	rows := map[string]*counts{}
	for _, part := range cq.period.parts() {
		if err := scanPart(r, dimPrefix(nil, part, cq.dim, cq.digits), rows); err != nil {
			return nil, err
		}
	}
	return cq.finish(rows), nil
}

// scanPart adds the counters under one stored period × dimension prefix to
// rows.
func scanPart(r CounterScanner, prefix []byte, rows map[string]*counts) error {
	var last string // keys arrive in order: a row's keys are adjacent
	var cur *counts
	return r.ScanCounters(prefix, func(key []byte, v int64) error {
		rest := key[len(prefix):]
		if len(rest) < 2 || rest[len(rest)-2] != 0 {
			return fmt.Errorf("evaluation: malformed counter key %q", key)
		}
		ind := rest[len(rest)-1]
		set := 0
		if ind&priorityBit != 0 {
			set, ind = 1, ind&^priorityBit
		}
		if ind < 1 || ind > numIndicators {
			return fmt.Errorf("evaluation: counter key %q has unknown indicator %d", key, ind)
		}
		name := rest[:len(rest)-2]
		if cur == nil || string(name) != last {
			last = string(name)
			if cur = rows[last]; cur == nil {
				cur = &counts{}
				rows[last] = cur
			}
		}
		cur[set][ind] += v
		return nil
	})
}

// finish turns counts into the ranked report.
func (cq query) finish(rows map[string]*counts) *pb.EvaluationReport {
	rep := &pb.EvaluationReport{
		Period:    cq.q.Period,
		PeriodKey: cq.period.String(),
		Dimension: cq.q.Dimension,
		Scheme:    cq.scheme.Name,
	}
	keys := make([]string, 0, len(rows))
	for k := range rows {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	s := cq.scheme
	var maxFiled float64
	for _, k := range keys {
		maxFiled = math.Max(maxFiled, s.weighted(rows[k], indFiled))
	}
	for _, k := range keys {
		c := rows[k]
		a := &c[0]
		rep.Rows = append(rep.Rows, &pb.EvaluationRow{
			Key:                k,
			Filed:              a[indFiled],
			Dispatched:         a[indDispatched],
			Due:                a[indDue],
			Closed:             a[indClosed],
			ClosedOnTime:       a[indClosedOnTime],
			HandledOnTime:      a[indHandledOnTime],
			Rework:             a[indRework],
			Overdue:            a[indOverdue],
			Extensions:         a[indExtensions],
			Recurrence:         a[indRecurrence],
			ClosureRate:        round2(rate(a[indClosed], a[indDue])),
			OnTimeClosureRate:  round2(rate(a[indClosedOnTime], a[indDue])),
			OnTimeHandlingRate: round2(rate(a[indHandledOnTime], a[indDue])),
			ReworkRate:         round2(rate(a[indRework], a[indDue])),
			ExtensionRate:      round2(rate(a[indExtensions], a[indDispatched])),
			Score:              round2(s.score(c, maxFiled)),
		})
	}
	slices.SortStableFunc(rep.Rows, func(x, y *pb.EvaluationRow) int {
		switch {
		case x.Score > y.Score:
			return -1
		case x.Score < y.Score:
			return 1
		}
		return strings.Compare(x.Key, y.Key)
	})
	for i, r := range rep.Rows {
		r.Rank = int32(i + 1)
	}
	return rep
}

// rate is n/d in percent, 0 when nothing is due (d = 0).
func rate(n, d int64) float64 {
	if d == 0 {
		return 0
	}
	return 100 * float64(n) / float64(d)
}

func rateF(n, d float64) float64 {
	if d == 0 {
		return 0
	}
	return 100 * n / d
}

// round2 rounds to two decimals, as reports show rates and scores.
func round2(x float64) float64 { return math.Round(x*100) / 100 }
