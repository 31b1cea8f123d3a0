package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// TestNearbyMemoryAnswersAsBadger: the in-memory window of the nearby
// index (nearmem.go) answers every look-up exactly as badger does (the
// same entries, in the same order, where fn stops), through random
// writes (reports, closures, reopenings, moves to another class, deletes,
// several to a transaction, some in transactions that fail), a reopen of
// the store and a restore of an older snapshot into it; and a window that
// starts before its horizon is left to badger.
func TestNearbyMemoryAnswersAsBadger(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	const window = 40 * 24 * time.Hour
	open := func() *Store {
		t.Helper()
		s, err := Open(Options{Dir: dir, NearbyWindow: window, Now: time.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	rng := rand.New(rand.NewPCG(7, 13))
	grids := []string{"320582110152102", "320582110152103"}
	minors := []string{"01", "02"}
	cases := map[string]*pb.Case{}
	var applied uint64
	at := func() time.Time { return now.Add(-time.Duration(rng.Int64N(int64(50 * 24 * time.Hour)))) }
	mutate := func(id string, old *pb.Case) *pb.Case {
		c := &pb.Case{Id: id, Kind: pb.Kind_KIND_EVENT, MajorCode: "01", Version: 1}
		if old != nil {
			c = proto.Clone(old).(*pb.Case)
			c.Version++
		}
		if old == nil || rng.IntN(4) == 0 { // a new case, or moved to another class
			c.GridCode, c.MinorCode = grids[rng.IntN(2)], minors[rng.IntN(2)]
			c.ReportedAt = timestamppb.New(at())
			c.Location = &pb.Location{Lat: 31 + rng.Float64(), Lng: 120 + rng.Float64()}
		}
		switch rng.IntN(3) {
		case 0:
			c.State, c.ClosedAt = pb.State_STATE_REPORTED, nil
		case 1:
			c.State, c.ClosedAt = pb.State_STATE_CLOSED, timestamppb.New(at())
		default:
			c.State = pb.State_STATE_DISPATCHED
		}
		return c
	}
	// write applies one transaction of up to five changes; fail makes it
	// fail after writing them.
	write := func(fail bool) {
		t.Helper()
		staged := map[string]*pb.Case{}
		err := s.Update(func(tx *Tx) error {
			for range 1 + rng.IntN(5) {
				id := fmt.Sprintf("c-%03d", rng.IntN(120))
				old := cases[id]
				if o, ok := staged[id]; ok {
					old = o
				}
				if old != nil && rng.IntN(8) == 0 {
					if err := tx.DeleteCase(id); err != nil {
						return err
					}
					staged[id] = nil
					continue
				}
				c := mutate(id, old)
				if err := tx.PutCase(old, c); err != nil {
					return err
				}
				staged[id] = c
			}
			applied++
			if err := tx.SetApplied(applied, 1); err != nil {
				return err
			}
			if fail {
				return errors.New("refused")
			}
			return nil
		})
		if fail {
			applied--
			if err == nil {
				t.Fatal("a failing transaction committed")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		for id, c := range staged {
			if c == nil {
				delete(cases, id)
			} else {
				cases[id] = c
			}
		}
	}
	compare := func(when string) {
		t.Helper()
		checked := 0
		for _, family := range []string{pfxNearOpen, pfxNearClosed} {
			for _, g := range grids {
				for _, m := range minors {
					k := NearbyClass{Grid: g, Kind: pb.Kind_KIND_EVENT, Major: "01", Minor: m}
					for _, w := range []time.Duration{time.Hour, 72 * time.Hour, 30 * 24 * time.Hour} {
						since := now.Add(-w)
						until := time.Time{}
						if family == pfxNearClosed {
							until = now.Add(-time.Duration(rng.Int64N(int64(w))))
						}
						stop := 1 + rng.IntN(6)
						collect := func(out *[]string) func(NearbyEntry) bool {
							return func(e NearbyEntry) bool {
								*out = append(*out, e.ID+"@"+e.At.Format(time.RFC3339Nano))
								return len(*out) < stop
							}
						}
						var fromMem, fromBadger []string
						if !s.near.lookup(nearClassPrefix(family, k), since, until, collect(&fromMem)) {
							t.Fatalf("%s: the memory did not answer a window inside its horizon", when)
						}
						win := s.near.window
						s.near.window = 0 // badger's answer
						if err := s.nearby(family, k, until, since, collect(&fromBadger)); err != nil {
							t.Fatal(err)
						}
						s.near.window = win
						if !slices.Equal(fromMem, fromBadger) {
							t.Fatalf("%s: %s %v since %v: memory %v, badger %v", when, family, k, since, fromMem, fromBadger)
						}
						checked += len(fromMem)
					}
				}
			}
		}
		if checked == 0 {
			t.Fatalf("%s: every look-up found nothing: the test checks nothing", when)
		}
	}
	for i := range 300 {
		write(i%10 == 9)
	}
	compare("after random writes")
	older := snapshotOf(t, s)
	olderCases := maps.Clone(cases)
	for range 100 {
		write(false)
	}
	compare("after more writes")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open()
	compare("after a reopen")
	if err := s.Restore(bytes.NewReader(older)); err != nil {
		t.Fatal(err)
	}
	cases = olderCases
	compare("after restoring an older snapshot")
	for range 50 {
		write(false)
	}
	compare("after writes on the restored store")
	// A window older than the horizon is badger's to answer.
	if s.near.lookup(nearClassPrefix(pfxNearOpen, NearbyClass{Grid: grids[0]}), now.Add(-window-time.Hour), time.Time{}, func(NearbyEntry) bool { return true }) {
		t.Fatal("the memory answered a window starting before its horizon")
	}
	_ = s.Close()
}

func snapshotOf(t *testing.T, s *Store) []byte {
	t.Helper()
	sn, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Release()
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkNearbyMemory reports the heap the in-memory window holds per
// entry (B/entry), loaded from 100,000 entries over 240 grids and 10
// classes: a district's 10,000 reports a day over a 72-hour duplicate
// window (30,000 open) and 70,000 cases closed in a 30-day recurrence
// window.
//
//	go test -run '^$' -bench NearbyMemory ./tiers/store/
func BenchmarkNearbyMemory(b *testing.B) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	const window, open, closed = 31 * 24 * time.Hour, 30_000, 70_000
	s, err := Open(Options{InMemory: true, NearbyWindow: window, Now: clock, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for start := 0; start < open+closed; start += 1000 {
		if err := s.Update(func(tx *Tx) error {
			for i := start; i < start+1000; i++ {
				c := &pb.Case{Id: fmt.Sprintf("320582-20261204-%06d", i), Kind: pb.Kind_KIND_EVENT, MajorCode: "01",
					MinorCode: fmt.Sprintf("%02d", i%10), GridCode: fmt.Sprintf("320582101001%03d", i%240),
					Location: &pb.Location{Lat: 31.3 + float64(i%100)*1e-4, Lng: 120.6}, State: pb.State_STATE_DISPATCHED,
					ReportedAt: timestamppb.New(now.Add(-time.Duration(i%open) * 72 * time.Hour / open))}
				if i >= open {
					c.State, c.ClosedAt = pb.State_STATE_CLOSED, timestamppb.New(now.Add(-time.Duration(i-open)*30*24*time.Hour/closed))
				}
				if err := tx.PutCase(nil, c); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	var perEntry float64
	for b.Loop() {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		m := newNearMem(window, clock)
		if err := m.load(s); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		n := 0
		for _, l := range m.classes {
			n += len(l)
		}
		if n != open+closed {
			b.Fatalf("%d entries in memory, want %d", n, open+closed)
		}
		perEntry = float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / float64(n)
		runtime.KeepAlive(&m)
	}
	b.ReportMetric(perEntry, "B/entry")
}
