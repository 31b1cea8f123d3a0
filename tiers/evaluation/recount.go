package evaluation

import (
	"fmt"
	"strings"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// Recount computes the report of q straight from the cases' histories, the
// slow way: every case, every entry, no counters. It is written apart from
// Observe (its own walk, its own period names from the time package) so
// tests can check the two against each other. It returns nil for an
// invalid query.
func Recount(cases []*pb.Case, q Query, offsetS int32) *pb.EvaluationReport {
	cq, err := q.check()
	if err != nil {
		return nil
	}
	target := cq.period.String()
	zone := time.FixedZone(fmt.Sprintf("UTC%+d", offsetS), int(offsetS))
	inPeriod := func(at time.Time) bool {
		return recountPeriodName(cq.q.Period, at.In(zone)) == target
	}
	rows := map[string]*counts{}
	count := func(c *pb.Case, ind byte, at time.Time, unit string, inspectors ...string) {
		if !inPeriod(at) {
			return
		}
		var names []string
		switch cq.q.Dimension {
		case Unit:
			if unit != "" {
				names = append(names, unit)
			}
		case Region:
			if g := c.GetGridCode(); len(g) >= cq.digits {
				names = append(names, g[:cq.digits])
			}
		case Inspector:
			for i, n := range inspectors {
				if n != "" && (i == 0 || n != inspectors[0]) {
					names = append(names, n)
				}
			}
		}
		leaderOrMedia := c.GetSource() == pb.Source_SOURCE_LEADER || c.GetSource() == pb.Source_SOURCE_MEDIA
		for _, n := range names {
			r := rows[n]
			if r == nil {
				r = &counts{}
				rows[n] = r
			}
			r[0][ind]++
			if leaderOrMedia {
				r[1][ind]++
			}
		}
	}
	for _, c := range cases {
		recountCase(c, count)
	}
	return cq.finish(rows)
}

// recountCase walks one case and reports every indicator it counts for.
func recountCase(c *pb.Case, count func(c *pb.Case, ind byte, at time.Time, unit string, inspectors ...string)) {
	var (
		unit, inspector          string
		reportedAt, firstFiledAt time.Time
		lastHandledAt, closedAt  time.Time
		wasReported, wasFiled    bool
		wasHandled, wasClosed    bool
	)
	for _, h := range c.GetHistory() {
		at := h.GetAt().AsTime()
		switch h.GetAction() {
		case pb.Action_ACTION_REPORT:
			if !wasReported {
				reportedAt, wasReported = at, true
			}
			if c.GetSource() == pb.Source_SOURCE_INSPECTOR && inspector == "" {
				inspector = h.GetActor()
			}
		case pb.Action_ACTION_VERIFY, pb.Action_ACTION_SELF_HANDLE:
			if h.GetRole() == pb.Role_ROLE_INSPECTOR && inspector == "" {
				inspector = h.GetActor()
			}
			if h.GetAction() == pb.Action_ACTION_SELF_HANDLE && !wasFiled {
				firstFiledAt, wasFiled = at, true
			}
		case pb.Action_ACTION_FILE:
			if !wasFiled {
				firstFiledAt, wasFiled = at, true
			}
		case pb.Action_ACTION_DISPATCH:
			unit = h.GetUnit()
			count(c, indDispatched, at, unit, inspector)
		case pb.Action_ACTION_APPROVE_RETURN, pb.Action_ACTION_TRANSFER_UP:
			unit = ""
		case pb.Action_ACTION_HANDLE:
			lastHandledAt, wasHandled = at, true
		case pb.Action_ACTION_CHECK_FAIL:
			checker := ""
			if h.GetRole() == pb.Role_ROLE_INSPECTOR {
				checker = h.GetActor()
			}
			count(c, indRework, at, unit, inspector, checker)
		case pb.Action_ACTION_CLOSE:
			closedAt, wasClosed = at, true
		case pb.Action_ACTION_APPROVE_EXTENSION:
			count(c, indExtensions, at, unit, inspector)
		case pb.Action_ACTION_SUPERVISE:
			if h.GetRole() == pb.Role_ROLE_SYSTEM && strings.HasPrefix(h.GetNote(), "overdue:") {
				count(c, indOverdue, at, unit, inspector)
			}
		}
	}
	// What the case counts for as it stands now.
	if c.GetState() == pb.State_STATE_VOIDED {
		return
	}
	if wasFiled {
		count(c, indFiled, firstFiledAt, unit, inspector)
	}
	if wasReported && c.GetRecurrenceOf() != "" {
		count(c, indRecurrence, reportedAt, "", inspector)
	}
	if c.GetDeadline() == nil || unit == "" || c.GetState() == pb.State_STATE_SUSPENDED {
		return
	}
	deadline := c.GetDeadline().AsTime()
	count(c, indDue, deadline, unit, inspector)
	if c.GetState() == pb.State_STATE_CLOSED && wasClosed {
		count(c, indClosed, deadline, unit, inspector)
		if !closedAt.After(deadline) {
			count(c, indClosedOnTime, deadline, unit, inspector)
		}
	}
	switch c.GetState() {
	case pb.State_STATE_HANDLED, pb.State_STATE_CHECKED, pb.State_STATE_CLOSED:
		if wasHandled && !lastHandledAt.After(deadline) {
			count(c, indHandledOnTime, deadline, unit, inspector)
		}
	}
}

// recountPeriodName names the period of kind name that t falls in, with
// the time package's own calendar.
func recountPeriodName(name string, t time.Time) string {
	switch name {
	case Day:
		return t.Format("2006-01-02")
	case Week:
		y, w := t.ISOWeek()
		return fmt.Sprintf("%d-W%02d", y, w)
	case Month:
		return t.Format("2006-01")
	default:
		return fmt.Sprintf("%d-Q%d", t.Year(), (int(t.Month())+2)/3)
	}
}
