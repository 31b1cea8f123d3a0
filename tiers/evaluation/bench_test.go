package evaluation

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

// The benchmark city: 1,000,000 cases reported over the fourth quarter of
// 2026 (about 10,900 a day, Hangzhou's yearly volume in three months), 300
// units, 10 districts × 10 streets × 10 communities × 5 grids, 600
// inspectors.
const (
	benchCases       = 1_000_000
	benchUnits       = 300
	benchInspectors  = 600
	benchWriteChunk  = 20_000
	benchDistrict0   = 320501
	benchStreets     = 10
	benchCommunities = 10
	benchGrids       = 5
)

var bench struct {
	once     sync.Once
	store    *store.Store
	counters int
	setup    time.Duration
	err      error
}

// benchStore builds, once per process, a real badger store (in memory)
// holding the counters of benchCases synthetic cases: each case is observed
// as it ends (one Observe of the whole history, as a mirror receiving the
// final copy), into memory, and the resulting counters are written through
// Tx.AddCounter.
func benchStore(b *testing.B) *store.Store {
	b.Helper()
	bench.once.Do(func() {
		start := time.Now()
		w := memCounters{}
		c := &pb.Case{}
		rnd := rand.New(rand.NewPCG(1, 2))
		q4 := time.Date(2026, 10, 1, 0, 0, 0, 0, cstZone).UnixMilli()
		span := int64(92 * 24 * 3600 * 1000)
		for i := range benchCases {
			synthCase(c, i, rnd, q4+rnd.Int64N(span))
			if err := Observe(w, nil, c, cst); err != nil {
				bench.err = err
				return
			}
		}
		s, err := store.Open(store.Options{InMemory: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			bench.err = err
			return
		}
		keys := make([]string, 0, len(w))
		for k := range w {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for len(keys) > 0 {
			n := min(benchWriteChunk, len(keys))
			chunk := keys[:n]
			keys = keys[n:]
			if err := s.Update(func(tx *store.Tx) error {
				for _, k := range chunk {
					if err := tx.AddCounter([]byte(k), w[k]); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				bench.err = err
				return
			}
		}
		bench.store, bench.counters, bench.setup = s, len(w), time.Since(start)
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.store
}

// synthCase overwrites c with case number i, reported at ms: a realistic
// mix of lifecycles (rejected, fixed on the spot, open at each stage,
// extended, reworked, overdue, closed on time or late, voided).
func synthCase(c *pb.Case, i int, rnd *rand.Rand, ms int64) {
	src := pb.Source(1 + rnd.IntN(7))
	district := benchDistrict0 + rnd.IntN(10)
	*c = pb.Case{
		Id:       fmt.Sprintf("%d-%d", district, i),
		Source:   src,
		GridCode: fmt.Sprintf("%d%03d%03d%03d", district, 1+rnd.IntN(benchStreets), 1+rnd.IntN(benchCommunities), 1+rnd.IntN(benchGrids)),
		History:  c.History[:0],
		State:    pb.State_STATE_REPORTED,
	}
	inspector := fmt.Sprintf("insp-%03d", rnd.IntN(benchInspectors))
	unit := fmt.Sprintf("unit-%03d", rnd.IntN(benchUnits))
	if rnd.IntN(20) == 0 {
		c.RecurrenceOf = "earlier"
	}
	add := func(a pb.Action, actor string, role pb.Role, note, u string) {
		ms += int64(5+rnd.IntN(600)) * 60_000
		c.History = append(c.History, &pb.HistoryEntry{Action: a, Actor: actor, Role: role, Note: note, Unit: u,
			At: timestamppb.New(time.UnixMilli(ms)), Version: uint64(len(c.History) + 1)})
	}
	add(pb.Action_ACTION_REPORT, inspector, pb.Role_ROLE_INSPECTOR, "", "")
	switch r := rnd.IntN(100); {
	case r < 4:
		add(pb.Action_ACTION_REJECT, "lead", pb.Role_ROLE_SHIFT_LEADER, "", "")
		c.State = pb.State_STATE_NOT_FILED
		return
	case r < 9:
		add(pb.Action_ACTION_SELF_HANDLE, inspector, pb.Role_ROLE_INSPECTOR, "", "")
		c.State = pb.State_STATE_CLOSED
		return
	case r < 12:
		return
	}
	if src != pb.Source_SOURCE_INSPECTOR {
		add(pb.Action_ACTION_VERIFY, inspector, pb.Role_ROLE_INSPECTOR, "", "")
	}
	add(pb.Action_ACTION_FILE, "lead", pb.Role_ROLE_SHIFT_LEADER, "", "")
	add(pb.Action_ACTION_DISPATCH, "disp", pb.Role_ROLE_DISPATCHER, "", unit)
	deadline := ms + int64(4+rnd.IntN(44))*3600_000
	c.State = pb.State_STATE_DISPATCHED
	defer func() { c.Deadline = timestamppb.New(time.UnixMilli(deadline)) }()
	if rnd.IntN(10) == 0 {
		add(pb.Action_ACTION_REQUEST_EXTENSION, unit, pb.Role_ROLE_HANDLING_UNIT, "", "")
		add(pb.Action_ACTION_APPROVE_EXTENSION, "disp", pb.Role_ROLE_DISPATCHER, "", "")
		deadline += 24 * 3600_000
	}
	for rework := 0; ; rework++ {
		add(pb.Action_ACTION_ACCEPT, unit, pb.Role_ROLE_HANDLING_UNIT, "", "")
		if rnd.IntN(10) == 0 {
			ms = max(ms, deadline) + 60_000
			add(pb.Action_ACTION_SUPERVISE, "system", pb.Role_ROLE_SYSTEM, OverdueNotePrefix+" handle", "")
		}
		if rnd.IntN(25) == 0 {
			c.State = pb.State_STATE_ACCEPTED
			return
		}
		add(pb.Action_ACTION_HANDLE, unit, pb.Role_ROLE_HANDLING_UNIT, "", "")
		if rework < 2 && rnd.IntN(8) == 0 {
			add(pb.Action_ACTION_CHECK_FAIL, inspector, pb.Role_ROLE_INSPECTOR, "", unit)
			continue
		}
		break
	}
	add(pb.Action_ACTION_CHECK_PASS, inspector, pb.Role_ROLE_INSPECTOR, "", "")
	if rnd.IntN(50) == 0 {
		add(pb.Action_ACTION_VOID, "lead", pb.Role_ROLE_SHIFT_LEADER, "", "")
		c.State = pb.State_STATE_VOIDED
		return
	}
	add(pb.Action_ACTION_CLOSE, "lead", pb.Role_ROLE_SHIFT_LEADER, "", "")
	c.State = pb.State_STATE_CLOSED
}

func benchReport(b *testing.B, period, at string) {
	s := benchStore(b)
	b.Logf("%d cases, %d counters in the store, built in %s", benchCases, bench.counters, bench.setup.Round(time.Second))
	for _, q := range []Query{
		{Dimension: Unit},
		{Dimension: Region, RegionDigits: 9},
		{Dimension: Region, RegionDigits: 12},
		{Dimension: Inspector, Scheme: "jinhua"},
	} {
		name := q.Dimension
		if q.RegionDigits != 0 {
			name = fmt.Sprintf("%s%d", q.Dimension, q.RegionDigits)
		}
		b.Run(name, func(b *testing.B) {
			q.Period, q.At = period, at
			var rows int
			b.ReportAllocs()
			for b.Loop() {
				rep, err := Report(s, q)
				if err != nil {
					b.Fatal(err)
				}
				rows = len(rep.Rows)
			}
			b.ReportMetric(float64(rows), "rows")
		})
	}
}

// BenchmarkWeeklyReport1M: one ISO week (2026-W47) over the counters of
// 1,000,000 cases.
func BenchmarkWeeklyReport1M(b *testing.B) { benchReport(b, Week, "2026-11-18") }

// BenchmarkQuarterlyReport1M: the whole quarter (2026-Q4) over the same.
func BenchmarkQuarterlyReport1M(b *testing.B) { benchReport(b, Quarter, "2026-11-18") }

// BenchmarkObserve is the state machine's cost per write: one action (a
// close) on a case with a dozen entries, old and new copies given.
func BenchmarkObserve(b *testing.B) {
	rnd := rand.New(rand.NewPCG(3, 4))
	var c pb.Case
	for {
		synthCase(&c, 1, rnd, time.Date(2026, 11, 18, 9, 0, 0, 0, cstZone).UnixMilli())
		if c.State == pb.State_STATE_CLOSED && len(c.History) > 8 {
			break
		}
	}
	old := proto.Clone(&c).(*pb.Case)
	old.History = old.History[:len(old.History)-1]
	old.State = pb.State_STATE_CHECKED
	b.ReportAllocs()
	for b.Loop() {
		w := memCounters{}
		if err := Observe(w, old, &c, cst); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkObserveStore is the same write against a badger store, in its
// own transaction: the close, then its undo (old and new swapped), in turn.
func BenchmarkObserveStore(b *testing.B) {
	rnd := rand.New(rand.NewPCG(3, 4))
	var c pb.Case
	for {
		synthCase(&c, 1, rnd, time.Date(2026, 11, 18, 9, 0, 0, 0, cstZone).UnixMilli())
		if c.State == pb.State_STATE_CLOSED && len(c.History) > 8 {
			break
		}
	}
	old := proto.Clone(&c).(*pb.Case)
	old.History = old.History[:len(old.History)-1]
	old.State = pb.State_STATE_CHECKED
	s, err := store.Open(store.Options{InMemory: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.Update(func(tx *store.Tx) error { return Observe(tx, nil, old, cst) }); err != nil {
		b.Fatal(err)
	}
	keys := memCounters{}
	if err := Observe(keys, old, &c, cst); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		from, to := old, &c
		if i%2 == 1 {
			from, to = to, from
		}
		i++
		if err := s.Update(func(tx *store.Tx) error { return Observe(tx, from, to, cst) }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(keys)), "counters/write")
}
