package nearby

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/geo"
	"github.com/cityhub/cityhub/tiers/store"
)

var now = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func mk(id string, st pb.State, minor string, lat, lng float64, reportedAgo, closedAgo time.Duration) *pb.Case {
	c := &pb.Case{Id: id, State: st, Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: minor, GridCode: "320582110152102",
		Location: &pb.Location{Lat: lat, Lng: lng}, ReportedAt: timestamppb.New(now.Add(-reportedAgo))}
	if st == pb.State_STATE_CLOSED {
		c.ClosedAt = timestamppb.New(now.Add(-closedAgo))
	}
	return c
}

func TestDuplicatesAndRecurrence(t *testing.T) {
	st, err := store.Open(store.Options{InMemory: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const lat, lng = 31.30, 120.60
	cases := []*pb.Case{
		mk("a-open-near", pb.State_STATE_DISPATCHED, "02", lat+0.0001, lng, time.Hour, 0),        // ~11 m
		mk("b-open-near-older", pb.State_STATE_REPORTED, "02", lat, lng+0.0002, 48*time.Hour, 0), // ~19 m
		mk("c-open-far", pb.State_STATE_DISPATCHED, "02", lat+0.002, lng, time.Hour, 0),          // ~220 m
		mk("d-open-other-class", pb.State_STATE_DISPATCHED, "04", lat, lng, time.Hour, 0),        // dirty road
		mk("e-open-too-old", pb.State_STATE_DISPATCHED, "02", lat, lng, 100*time.Hour, 0),        // beyond 72 h
		mk("f-closed-recent", pb.State_STATE_CLOSED, "02", lat, lng, 20*24*time.Hour, 5*24*time.Hour),
		mk("g-closed-later", pb.State_STATE_CLOSED, "02", lat, lng, 20*24*time.Hour, 2*24*time.Hour),
		mk("h-closed-long-ago", pb.State_STATE_CLOSED, "02", lat, lng, 90*24*time.Hour, 60*24*time.Hour),
	}
	if err := st.Update(func(tx *store.Tx) error {
		for _, c := range cases {
			if err := tx.PutCase(nil, c); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	f := New(Options{Radius: 50, DuplicateWindow: 72 * time.Hour, RecurrenceWindow: 30 * 24 * time.Hour})
	if got := f.Duplicates(mk("new", pb.State_STATE_REPORTED, "02", lat, lng, 0, 0), now); len(got) != 0 {
		t.Fatalf("no store yet, got %v", got)
	}
	f.SetStore(st)
	fresh := mk("new", pb.State_STATE_REPORTED, "02", lat, lng, 0, 0)
	if got := f.Duplicates(fresh, now); !slices.Equal(got, []string{"a-open-near", "b-open-near-older"}) {
		t.Fatalf("duplicates %v", got)
	}
	if got := f.Recurrence(fresh, now); got != "g-closed-later" {
		t.Fatalf("recurrence of %q, want the most recently closed within 30 days", got)
	}
	// Without coordinates the grid decides.
	unlocated := mk("new2", pb.State_STATE_REPORTED, "02", 0, 0, 0, 0)
	if got := f.Duplicates(unlocated, now); len(got) != 3 {
		t.Fatalf("unlocated duplicates %v, want the 3 open recent ones of the grid", got)
	}
	// The leader stamps the link into a report.
	cmd := &pb.Command{Body: &pb.Command_Report{Report: &pb.ReportCase{Case: fresh}}}
	f.Stamp(now, cmd, nil)
	if cmd.GetReport().GetCase().GetRecurrenceOf() != "g-closed-later" {
		t.Fatal("recurrence not stamped")
	}
	if f.Recurrence(fresh, now.Add(-3*24*time.Hour)) != "f-closed-recent" {
		t.Fatal("a case closed after the report's time counted")
	}
	// Once stored (the answer to a report is the stored case), a case is
	// not its own duplicate; another reported in the same instant is.
	twin := mk("new-twin", pb.State_STATE_REPORTED, "02", lat, lng, 0, 0)
	if err := st.Update(func(tx *store.Tx) error {
		if err := tx.PutCase(nil, fresh); err != nil {
			return err
		}
		return tx.PutCase(nil, twin)
	}); err != nil {
		t.Fatal(err)
	}
	if got := f.Duplicates(fresh, now); !slices.Equal(got, []string{"new-twin", "a-open-near", "b-open-near-older"}) {
		t.Fatalf("duplicates of a stored case %v, want its twin and the two near ones, not itself", got)
	}
}

func TestDistance(t *testing.T) {
	// One thousandth of a degree of latitude is about 111 m.
	if d := Distance(31.0, 120.0, 31.001, 120.0); d < 110 || d > 112 {
		t.Fatalf("distance %v", d)
	}
}

// TestLookupsFindRecentCasesBehindABacklog: a grid holding a backlog of
// old cases of the same class (an imported one, say) still offers the
// recent duplicate and the recent recurrence, whatever their ids.
func TestLookupsFindRecentCasesBehindABacklog(t *testing.T) {
	st, err := store.Open(store.Options{InMemory: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const lat, lng = 31.30, 120.60
	if err := st.Update(func(tx *store.Tx) error {
		for i := 0; i < 1200; i++ {
			// ids that sort before the recent ones, times outside both windows.
			if err := tx.PutCase(nil, mk(fmt.Sprintf("a-open-%04d", i), pb.State_STATE_DISPATCHED, "02", lat, lng, 400*24*time.Hour, 0)); err != nil {
				return err
			}
			if err := tx.PutCase(nil, mk(fmt.Sprintf("a-closed-%04d", i), pb.State_STATE_CLOSED, "02", lat, lng, 400*24*time.Hour, 300*24*time.Hour)); err != nil {
				return err
			}
		}
		for _, c := range []*pb.Case{
			mk("z-recent", pb.State_STATE_REPORTED, "02", lat, lng, time.Hour, 0),
			mk("z-closed", pb.State_STATE_CLOSED, "02", lat, lng, 20*24*time.Hour, 24*time.Hour),
			mk("z-closed-same-instant", pb.State_STATE_CLOSED, "02", lat, lng, 20*24*time.Hour, 24*time.Hour),
		} {
			if err := tx.PutCase(nil, c); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	f := New(Options{Radius: 50, DuplicateWindow: 72 * time.Hour, RecurrenceWindow: 30 * 24 * time.Hour})
	f.SetStore(st)
	fresh := mk("new", pb.State_STATE_REPORTED, "02", lat, lng, 0, 0)
	if got := f.Duplicates(fresh, now); !slices.Equal(got, []string{"z-recent"}) {
		t.Fatalf("duplicates %v, want [z-recent]", got)
	}
	// Two closed at the same instant: the smaller id, as before the index.
	if got := f.Recurrence(fresh, now); got != "z-closed" {
		t.Fatalf("recurrence of %q, want z-closed", got)
	}
}

// TestPlaceHoldsAsTheGreatCircle: the flat-earth shortcut never changes
// an answer. Points are thrown around the radius (within ±5 %, where the
// shortcut must hand over to the haversine, and farther out) at China's
// latitudes and at radii from metres to kilometres; each answer must be
// Distance <= radius.
func TestPlaceHoldsAsTheGreatCircle(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	flat, exact := 0, 0
	for i := 0; i < 200_000; i++ {
		lat, lng := 18+rng.Float64()*36, 73+rng.Float64()*62
		radius := []float64{5, 50, 300, 2000, 10_000}[i%5]
		f := New(Options{Radius: radius})
		p := f.placeOf(&pb.Case{Location: &pb.Location{Lat: lat, Lng: lng}})
		// A point about radius*k away in a random direction.
		k := 0.95 + rng.Float64()*0.1
		if i%4 == 0 {
			k = rng.Float64() * 3
		}
		bearing := rng.Float64() * 2 * math.Pi
		dLat := radius * k * math.Cos(bearing) / (geo.EarthRadius * math.Pi / 180)
		dLng := radius * k * math.Sin(bearing) / (geo.EarthRadius * math.Pi / 180 * math.Cos(lat*math.Pi/180))
		e := store.NearbyEntry{Lat: lat + dLat, Lng: lng + dLng, Located: true}
		want := Distance(e.Lat, e.Lng, lat, lng) <= radius
		if got := p.holds(e); got != want {
			t.Fatalf("radius %v at (%v, %v), point (%v, %v) %v m away: holds %v, want %v", radius, lat, lng, e.Lat, e.Lng, Distance(e.Lat, e.Lng, lat, lng), got, want)
		}
		// How far the flat distance strays where it decides alone.
		dy, dx := (e.Lat-lat)*p.mPerDegLat, (e.Lng-lng)*p.mPerDegLngHere
		if d := Distance(e.Lat, e.Lng, lat, lng); d > 0 && k > 0.9 && k < 1.1 {
			if rel := math.Abs(math.Sqrt(dx*dx+dy*dy)-d) / d; rel > flatMargin/3 {
				t.Fatalf("radius %v at latitude %v: the flat distance is %.4f %% off the great circle's", radius, lat, rel*100)
			}
			exact++
		}
		flat++
	}
	if exact == 0 || flat == 0 {
		t.Fatal("no point near the radius")
	}
	// Unlocated on either side: the grid decides.
	f := New(Options{Radius: 50})
	if !f.placeOf(&pb.Case{}).holds(store.NearbyEntry{Lat: 31, Lng: 120, Located: true}) ||
		!f.placeOf(&pb.Case{Location: &pb.Location{Lat: 31, Lng: 120}}).holds(store.NearbyEntry{}) {
		t.Fatal("an unlocated case or entry must match by grid")
	}
}
