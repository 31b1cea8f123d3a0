// Package nearby finds cases at the same place: open cases of the same
// class reported recently nearby, offered to the reporter as possible
// duplicates, and a closed case of the same class at the same place that
// the new report brings back (反弹, recurrence), which the leader stamps
// into the report so the state machine links the two.
//
// Candidates come from the store's nearby index (grid, class, time): a
// lookup reads the index entries of the new case's grid and class inside
// the window (mostly from the store's list of the class's newest 64),
// never a case and never more than those and 64, so a report costs the
// same with ten cases stored or a million.
package nearby

import (
	"math"
	"slices"
	"sync/atomic"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/geo"
	"github.com/cityhub/cityhub/tiers/store"
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

// maxCandidates bounds the index entries one lookup visits, the most
// recent first (a grid is about 10,000 m²). A busy grid (a market's
// vending reports, a camera's detections) holds hundreds of open cases of
// one class inside the window; visiting them all cost a third of the
// leader's CPU under batched reports (BENCHMARKS.md), and a person
// deciding whether a report is a duplicate reads the latest few. The 64
// most recent are plenty for both the hint and recurrence.
const maxCandidates = 64 // the store keeps the newest 64 of a class in one list (store.nearListLen)

// self is true for c's own index entry: its id, at its time (the
// millisecond is compared first, from the entry itself: the id's bytes
// live elsewhere in memory, and a dense window visits 64 entries).
func self(e store.NearbyEntry, ms int64, id string) bool {
	return e.At.UnixMilli() == ms && e.ID == id
}

// Duplicates lists open cases of c's class at c's place reported within
// the duplicate window before now, most recent first.
func (f *Finder) Duplicates(c *pb.Case, now time.Time) []string {
	st := f.store.Load()
	if st == nil || c.GetGridCode() == "" {
		return nil
	}
	var out []store.NearbyEntry
	seen := 0
	ms, id, at := c.GetReportedAt().AsTime().UnixMilli(), c.GetId(), f.placeOf(c)
	err := st.NearbyOpen(store.NearbyClassOf(c), now.Add(-f.opts.DuplicateWindow), func(e store.NearbyEntry) bool {
		if !self(e, ms, id) && at.holds(e) {
			out = append(out, e)
		}
		seen++
		return seen < maxCandidates
	})
	if err != nil {
		return nil
	}
	// The index gives them newest first by millisecond; within one, by id.
	slices.SortStableFunc(out, func(a, b store.NearbyEntry) int { return b.At.Compare(a.At) })
	ids := make([]string, len(out))
	for i, e := range out {
		ids[i] = e.ID
	}
	return ids
}

// Recurrence returns the most recently closed case of c's class at c's
// place closed within the recurrence window before now, or "" (of two
// closed at the same instant, the smaller id).
func (f *Finder) Recurrence(c *pb.Case, now time.Time) string {
	st := f.store.Load()
	if st == nil || c.GetGridCode() == "" {
		return ""
	}
	var best *store.NearbyEntry
	seen := 0
	at := f.placeOf(c)
	err := st.NearbyClosed(store.NearbyClassOf(c), now.Add(-f.opts.RecurrenceWindow), now, func(e store.NearbyEntry) bool {
		// Entries come by millisecond, newest first: once one matched,
		// only the rest of its millisecond can beat it.
		if best != nil && e.At.UnixMilli() != best.At.UnixMilli() {
			return false
		}
		if e.ID != c.GetId() && at.holds(e) &&
			(best == nil || e.At.After(best.At) || e.At.Equal(best.At) && e.ID < best.ID) {
			best = &e
		}
		seen++
		return seen < maxCandidates
	})
	if err != nil || best == nil {
		return ""
	}
	return best.ID
}

// Stamp links a report to the case it brings back (the leader calls it
// while stamping; the state machine stores what it is given).
func (f *Finder) Stamp(now time.Time, cmd *pb.Command, _ func(string) (*pb.Case, error)) {
	if r := cmd.GetReport(); r != nil && r.GetCase() != nil {
		r.Case.RecurrenceOf = f.Recurrence(r.Case, now)
	}
}

// place is where a case was reported, as the look-ups compare entries
// with it: within radius metres, or anywhere in the grid (the look-up's
// class) when either has no coordinates to tell them apart.
type place struct {
	located        bool
	lat, lng       float64
	radius         float64
	mPerDegLat     float64 // metres per degree of latitude
	mPerDegLngHere float64 // metres per degree of longitude at lat
}

func (f *Finder) placeOf(c *pb.Case) place {
	l := c.GetLocation()
	if !located(l) {
		return place{}
	}
	perDeg := geo.EarthRadius * math.Pi / 180
	return place{located: true, lat: l.Lat, lng: l.Lng, radius: f.opts.Radius,
		mPerDegLat: perDeg, mPerDegLngHere: perDeg * math.Cos(l.Lat*math.Pi/180)}
}

// flatMargin is how far from the radius the flat-earth distance must be
// to decide alone. At the radii a grid uses (metres to kilometres) and
// China's latitudes it is within 0.3 % of the great circle's for points
// near the radius (the error grows with the distance and the tangent of
// the latitude); farther ones are decided far from the boundary.
const flatMargin = 0.01

// holds reports whether the entry is at the place. A look-up in a busy
// grid compares 64 entries: the flat-earth (equirectangular) distance,
// a few multiplications, decides all but those within flatMargin of the
// radius, which pay for the haversine (geo.Distance), so the answer is
// exactly Distance <= radius.
func (p place) holds(e store.NearbyEntry) bool {
	if !p.located || !e.Located {
		return true
	}
	dLng := e.Lng - p.lng
	if math.Abs(dLng) < 90 {
		dy, dx := (e.Lat-p.lat)*p.mPerDegLat, dLng*p.mPerDegLngHere
		switch d2 := dx*dx + dy*dy; {
		case d2 <= p.radius*p.radius*(1-flatMargin)*(1-flatMargin):
			return true
		case d2 >= p.radius*p.radius*(1+flatMargin)*(1+flatMargin):
			return false
		}
	}
	return Distance(e.Lat, e.Lng, p.lat, p.lng) <= p.radius
}

func located(l *pb.Location) bool { return l != nil && (l.Lat != 0 || l.Lng != 0) }

// Distance is the great-circle distance in metres between two WGS-84
// points (geo.Distance). Stored cases are in WGS-84: the API converts a
// GCJ-02 or BD-09 report before proposing it, so the radius is measured on
// one datum, never across the hundreds of metres between them.
func Distance(lat1, lng1, lat2, lng2 float64) float64 { return geo.Distance(lat1, lng1, lat2, lng2) }
