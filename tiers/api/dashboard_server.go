package api

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/auth"
	"github.com/cityhub/cityhub/tiers/catalogue"
	"github.com/cityhub/cityhub/tiers/store"
)

// AreaNamer names the areas of the dashboard and the federation nodes that
// serve them (the replica's grid register, when it has one).
type AreaNamer interface {
	AreaName(code string) string
	AreaNode(code string) string
}

// Dashboard limits.
const (
	DefaultOverdueLimit = 20
	MaxOverdueLimit     = 200
	titleRunes          = 60
)

// DashboardServer serves DashboardService: the command centre's summary of
// an area from the store's dashboard counters (tiers/store/dashboard.go),
// read on the answering replica in one view with the feed position they
// are as of.
type DashboardServer struct {
	pb.UnimplementedDashboardServiceServer
	r          Replica
	cat        *catalogue.Catalogue
	names      AreaNamer // nil: no names
	gridPrefix string
	loc        *time.Location
	node       string
	g          *guard
	now        func() time.Time
}

func newDashboardServer(opts Options, g *guard) *DashboardServer {
	d := &DashboardServer{r: opts.Replica, cat: opts.Catalogue, gridPrefix: opts.GridPrefix, loc: opts.Location,
		node: opts.FederationNode, g: g, now: time.Now}
	if n, ok := opts.Geo.(AreaNamer); ok {
		d.names = n
	}
	if d.loc == nil {
		d.loc = time.UTC
	}
	return d
}

// GetDashboard answers an area's numbers, within what the caller may see.
func (s *DashboardServer) GetDashboard(ctx context.Context, r *pb.GetDashboardRequest) (*pb.Dashboard, error) {
	if err := s.g.require(ctx, auth.DashboardRead, nil); err != nil {
		return nil, err
	}
	limit := int(r.OverdueLimit)
	switch {
	case limit < 0 || limit > MaxOverdueLimit:
		return nil, toStatus(invalid("overdue_limit", "between 0 and %d (0 means %d)", MaxOverdueLimit, DefaultOverdueLimit))
	case limit == 0:
		limit = DefaultOverdueLimit
	}
	area := r.AreaCode
	if area != "" {
		if !allDigits(area) || !slices.Contains(store.AreaLevels, len(area)) && len(area) != 6 {
			return nil, toStatus(invalid("area_code", "a grid code prefix of 4 (city), 6 (district; or the city's code), 9 (street), 12 (community) or 15 digits (grid)"))
		}
		area = cityPrefix(area)
	}
	q, err := s.scoped(ctx, area)
	if err != nil {
		return nil, toStatus(err)
	}
	now := s.now()
	q.OverdueLimit = limit
	q.Hours = dayHours(now, s.loc)
	res, err := s.r.Store().Dashboard(q)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.Dashboard{Revision: res.Revision, AsOf: timestamppb.New(now), TimeZone: s.loc.String(), Node: s.node,
		Today: &pb.DayFlow{Date: now.In(s.loc).Format(time.DateOnly)}}
	out.Area = s.counts(&res.Area, q.Unit != "")
	f := res.Area.Flow
	out.Today.Reported, out.Today.Filed, out.Today.Dispatched, out.Today.Handled, out.Today.Closed =
		f[store.FlowReported], f[store.FlowFiled], f[store.FlowDispatched], f[store.FlowHandled], f[store.FlowClosed]
	for i := range res.Children {
		out.Children = append(out.Children, s.counts(&res.Children[i], false))
	}
	for _, c := range res.Overdue {
		out.Overdue = append(out.Overdue, s.overdueLine(c, now))
	}
	return out, nil
}

// scoped turns the caller's scope and the area asked for into the store's
// query: node-wide seats see any area of the node's jurisdiction, an
// inspector the grids it patrols, a handling unit its unit's cases.
func (s *DashboardServer) scoped(ctx context.Context, area string) (store.DashboardQuery, error) {
	p := s.g.principal(ctx)
	scope := auth.ScopeNode
	if p != nil {
		scope, _ = auth.ScopeOf(p.Role, auth.DashboardRead)
	}
	deny := func(format string, args ...any) error {
		return &auth.DeniedError{Permission: auth.DashboardRead, Reason: fmt.Sprintf(format, args...)}
	}
	switch scope {
	case auth.ScopeNode:
		if area == "" {
			if s.gridPrefix == "" {
				return store.DashboardQuery{}, invalid("area_code", "required: this node has no jurisdiction of its own")
			}
			area = s.gridPrefix
		}
		if !strings.HasPrefix(area, s.gridPrefix) {
			return store.DashboardQuery{}, deny("area %s lies outside this node's jurisdiction (grid codes %s…)", area, s.gridPrefix)
		}
		if !slices.Contains(store.AreaLevels, len(area)) {
			return store.DashboardQuery{}, invalid("area_code", "%s is not an area code", area)
		}
		return store.DashboardQuery{Area: area}, nil
	case auth.ScopeGrids:
		if area == "" {
			if len(p.Grids) != 1 || !slices.Contains(store.AreaLevels, len(p.Grids[0])) {
				return store.DashboardQuery{}, invalid("area_code", "required: name one of the grids you patrol (%s)", strings.Join(p.Grids, ", "))
			}
			area = p.Grids[0]
		}
		if !p.InGrids(area) || !strings.HasPrefix(area, s.gridPrefix) {
			return store.DashboardQuery{}, deny("area %s lies outside the grids %s patrols (%s)", area, p.ID, strings.Join(p.Grids, ", "))
		}
		if !slices.Contains(store.AreaLevels, len(area)) {
			return store.DashboardQuery{}, invalid("area_code", "%s is not an area code", area)
		}
		return store.DashboardQuery{Area: area}, nil
	case auth.ScopeUnit:
		if area != "" {
			return store.DashboardQuery{}, deny("role %s sees its unit's cases, not an area: leave area_code empty", p.Role)
		}
		if p.Unit == "" {
			return store.DashboardQuery{}, deny("principal %s belongs to no unit", p.ID)
		}
		return store.DashboardQuery{Unit: p.Unit}, nil
	}
	return store.DashboardQuery{}, deny("scope %q has no dashboard", scope)
}

// cityPrefix maps a city's 6-digit code (ending in 00, e.g. 320500) to the
// 4-digit prefix its grid codes share; other codes stand as they are.
func cityPrefix(code string) string {
	if len(code) == 6 && strings.HasSuffix(code, "00") {
		return code[:4]
	}
	return code
}

// dayHours lists the UTC hours (store.FlowHour) of now's day in loc. In a
// zone whose offset is not whole hours the day's edges round down to the
// hour (China's is +8).
func dayHours(now time.Time, loc *time.Location) []string {
	l := now.In(loc)
	start := time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc)
	end := start.AddDate(0, 0, 1)
	var hs []string
	for t := start.UTC().Truncate(time.Hour); t.Before(end); t = t.Add(time.Hour) {
		hs = append(hs, store.FlowHour(t))
	}
	return hs
}

var areaLevels = map[int]pb.AreaLevel{4: pb.AreaLevel_AREA_LEVEL_CITY, 6: pb.AreaLevel_AREA_LEVEL_DISTRICT,
	9: pb.AreaLevel_AREA_LEVEL_STREET, 12: pb.AreaLevel_AREA_LEVEL_COMMUNITY, 15: pb.AreaLevel_AREA_LEVEL_GRID}

func (s *DashboardServer) counts(t *store.AreaTally, unit bool) *pb.AreaCounts {
	out := &pb.AreaCounts{Code: t.Code, Total: t.Total(), Open: t.Open(), Overdue: t.Overdue, InReview: t.InReview,
		ClosedToday: t.Flow[store.FlowClosed]}
	if unit {
		out.Level = pb.AreaLevel_AREA_LEVEL_UNIT
	} else {
		out.Level = areaLevels[len(t.Code)]
		if s.names != nil {
			out.Name, out.Node = s.names.AreaName(t.Code), s.names.AreaNode(t.Code)
		}
	}
	for st, n := range t.States {
		if n != 0 {
			out.States = append(out.States, &pb.StateCount{State: st, Count: n})
		}
	}
	slices.SortFunc(out.States, func(a, b *pb.StateCount) int { return int(a.State - b.State) })
	return out
}

func (s *DashboardServer) overdueLine(c *pb.Case, now time.Time) *pb.OverdueCase {
	o := &pb.OverdueCase{CaseId: c.Id, Title: title(c.Description), MajorCode: c.MajorCode, MinorCode: c.MinorCode,
		GridCode: c.GridCode, State: c.State, OwnerUnit: c.OwnerUnit, Holder: c.Holder,
		SuperviseCount: c.SuperviseCount, Urgency: c.Urgency}
	if s.cat != nil {
		if cl, err := s.cat.Lookup(c.Kind, c.MajorCode, c.MinorCode); err == nil {
			o.ClassName = cl.Name
		}
	}
	if s.names != nil {
		o.GridName = s.names.AreaName(c.GridCode)
	}
	due := c.StageDeadline
	if due == nil {
		due = c.Deadline
	}
	if due != nil {
		o.StageDeadline = due
		o.OverdueSeconds = max(0, int64(now.Sub(due.AsTime())/time.Second))
	}
	return o
}

// title is a description's first line, at most titleRunes characters.
func title(d string) string {
	d, _, _ = strings.Cut(strings.TrimSpace(d), "\n")
	if utf8.RuneCountInString(d) <= titleRunes {
		return d
	}
	r := []rune(d)
	return string(r[:titleRunes-1]) + "…"
}
