// Package nearby finds cases at the same place: open cases of the same
// class reported recently nearby, offered to the reporter as possible
// duplicates, and a closed case of the same class at the same place that
// the new report brings back (反弹, recurrence), which the leader stamps
// into the report so the state machine links the two.
//
// Candidates come from the store's grid index (the new case's 15-digit unit
// grid), so a lookup reads one grid's cases, never the whole store.
package nearby

import (
	"slices"
	"sync/atomic"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/geo"
	"github.com/cityhub/cityhub/tiers/store"
	"github.com/cityhub/cityhub/tiers/workflow"
)

// Options set what counts as the same place and time.
type Options struct {
	// Radius is the distance in metres within which two located cases are
	// at the same place; cases without coordinates match by grid alone.
	Radius float64
	// DuplicateWindow is how far back an open case counts as a duplicate.
	DuplicateWindow time.Duration
	// RecurrenceWindow is how long after closing a problem that comes back
	// counts as recurrence.
	RecurrenceWindow time.Duration
}

// Finder looks up cases near a new one in a replica's store.
type Finder struct {
	opts  Options
	store atomic.Pointer[store.Store]
}

// New returns a finder; SetStore gives it the store once the node is open.
func New(opts Options) *Finder { return &Finder{opts: opts} }

// SetStore sets the store lookups read.
func (f *Finder) SetStore(s *store.Store) { f.store.Store(s) }

// maxCandidates bounds one lookup (a grid is about 10,000 m²).
const maxCandidates = 500

func (f *Finder) candidates(c *pb.Case) []*pb.Case {
	st := f.store.Load()
	if st == nil || len(c.GetGridCode()) == 0 {
		return nil
	}
	cases, _, err := st.List(store.Query{GridPrefix: c.GetGridCode(), PageSize: maxCandidates})
	if err != nil {
		return nil
	}
	out := cases[:0]
	for _, o := range cases {
		if o.GetId() != c.GetId() && o.GetGridCode() == c.GetGridCode() && o.GetKind() == c.GetKind() &&
			o.GetMajorCode() == c.GetMajorCode() && o.GetMinorCode() == c.GetMinorCode() && f.close(o, c) {
			out = append(out, o)
		}
	}
	return out
}

// Duplicates lists open cases of c's class at c's place reported within
// the duplicate window before now, most recent first.
func (f *Finder) Duplicates(c *pb.Case, now time.Time) []string {
	var out []*pb.Case
	for _, o := range f.candidates(c) {
		if workflow.IsOpen(o.GetState()) && o.GetReportedAt() != nil && now.Sub(o.GetReportedAt().AsTime()) <= f.opts.DuplicateWindow {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b *pb.Case) int { return b.GetReportedAt().AsTime().Compare(a.GetReportedAt().AsTime()) })
	ids := make([]string, len(out))
	for i, o := range out {
		ids[i] = o.GetId()
	}
	return ids
}

// Recurrence returns the most recently closed case of c's class at c's
// place closed within the recurrence window before now, or "".
func (f *Finder) Recurrence(c *pb.Case, now time.Time) string {
	var best *pb.Case
	for _, o := range f.candidates(c) {
		if o.GetState() != pb.State_STATE_CLOSED || o.GetClosedAt() == nil {
			continue
		}
		closed := o.GetClosedAt().AsTime()
		if closed.After(now) || now.Sub(closed) > f.opts.RecurrenceWindow {
			continue
		}
		if best == nil || closed.After(best.GetClosedAt().AsTime()) {
			best = o
		}
	}
	if best == nil {
		return ""
	}
	return best.GetId()
}

// Stamp links a report to the case it brings back (the leader calls it
// while stamping; the state machine stores what it is given).
func (f *Finder) Stamp(now time.Time, cmd *pb.Command, _ func(string) (*pb.Case, error)) {
	if r := cmd.GetReport(); r != nil && r.GetCase() != nil {
		r.Case.RecurrenceOf = f.Recurrence(r.Case, now)
	}
}

func (f *Finder) close(a, b *pb.Case) bool {
	la, lb := a.GetLocation(), b.GetLocation()
	if !located(la) || !located(lb) {
		return true // same grid, no coordinates to tell them apart
	}
	return Distance(la.Lat, la.Lng, lb.Lat, lb.Lng) <= f.opts.Radius
}

func located(l *pb.Location) bool { return l != nil && (l.Lat != 0 || l.Lng != 0) }

// Distance is the great-circle distance in metres between two WGS-84
// points (geo.Distance). Stored cases are in WGS-84: the API converts a
// GCJ-02 or BD-09 report before proposing it, so the radius is measured on
// one datum, never across the hundreds of metres between them.
func Distance(lat1, lng1, lat2, lng2 float64) float64 { return geo.Distance(lat1, lng1, lat2, lng2) }
