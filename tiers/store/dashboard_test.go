package store_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

const (
	dashGrid  = "320505001002007" // city 3205, district 320505, street 320505001, community 320505001002
	dashGrid2 = "320505002001001" // another street of the district
)

// step appends a history entry moving c to st at ms and bumps its version.
func step(c *pb.Case, a pb.Action, st pb.State, ms int64) *pb.Case {
	n := clone(c)
	n.Version++
	n.History = append(n.History, &pb.HistoryEntry{Action: a, At: ts(ms), FromState: c.State, ToState: st, Version: n.Version})
	n.State = st
	return n
}

func dash(t *testing.T, s *store.Store, q store.DashboardQuery) store.DashboardResult {
	t.Helper()
	r, err := s.Dashboard(q)
	if err != nil {
		t.Fatalf("dashboard %+v: %v", q, err)
	}
	return r
}

// hoursOf lists the UTC hours from ms to ms+n hours.
func hoursOf(ms int64, n int) []string {
	var hs []string
	for i := range n {
		hs = append(hs, store.FlowHour(time.UnixMilli(ms).Add(time.Duration(i)*time.Hour)))
	}
	return hs
}

func mustVerify(t *testing.T, s *store.Store) {
	t.Helper()
	if _, err := s.Verify(store.VerifyOptions{}); err != nil {
		t.Fatalf("verify: %v", err)
	}
}

// TestDashboardFollowsTheCase: the counters of every level of the case's
// grid, its unit's, the day's flow and the overdue list move with each
// step of report → file → dispatch → overdue → handle → close, and Verify
// agrees with them after each.
func TestDashboardFollowsTheCase(t *testing.T) {
	s := openMem(t)
	day := hoursOf(t0, 24)
	c := &pb.Case{Id: "320505-20260501-000001", GridCode: dashGrid, State: pb.State_STATE_REPORTED, Version: 1,
		History: []*pb.HistoryEntry{{Action: pb.Action_ACTION_REPORT, At: ts(t0), ToState: pb.State_STATE_REPORTED, Version: 1}}}
	other := &pb.Case{Id: "320505-20260501-000002", GridCode: dashGrid2, State: pb.State_STATE_REPORTED, Version: 1,
		History: []*pb.HistoryEntry{{Action: pb.Action_ACTION_REPORT, At: ts(t0 - 48*60*minute), ToState: pb.State_STATE_REPORTED, Version: 1}}}
	index := uint64(1)
	put := func(old, c *pb.Case) {
		t.Helper()
		putCase(t, s, old, c)
		index++
		setApplied(t, s, index, 1)
		mustVerify(t, s)
	}
	put(nil, c)
	put(nil, other) // reported two days before: not in today's flow

	check := func(what string, area string, want map[pb.State]int64, open, overdue int64, flow [5]int64) {
		t.Helper()
		r := dash(t, s, store.DashboardQuery{Area: area, Hours: day, OverdueLimit: 10})
		if !mapsEqual(r.Area.States, want) || r.Area.Open() != open || r.Area.Overdue != overdue || r.Area.Flow != flow {
			t.Fatalf("%s: area %s = states %v open %d overdue %d flow %v; want %v, %d, %d, %v",
				what, area, r.Area.States, r.Area.Open(), r.Area.Overdue, r.Area.Flow, want, open, overdue, flow)
		}
	}
	rep := pb.State_STATE_REPORTED
	check("reported", "3205", map[pb.State]int64{rep: 2}, 2, 0, [5]int64{1})
	check("reported", "320505001", map[pb.State]int64{rep: 1}, 1, 0, [5]int64{1})
	check("reported", dashGrid, map[pb.State]int64{rep: 1}, 1, 0, [5]int64{1})
	r := dash(t, s, store.DashboardQuery{Area: "320505", Hours: day})
	if codes := tallyCodes(r.Children); !slices.Equal(codes, []string{"320505001", "320505002"}) {
		t.Fatalf("children of the district: %v", codes)
	}
	if r.Children[0].Flow[store.FlowReported] != 1 || r.Children[1].Flow[store.FlowReported] != 0 {
		t.Fatalf("children's flow: %+v", r.Children)
	}
	// A street's children are its communities, summed from their grids.
	r = dash(t, s, store.DashboardQuery{Area: dashGrid[:9], Hours: day})
	if len(r.Children) != 1 || r.Children[0].Code != dashGrid[:12] || r.Children[0].States[rep] != 1 || r.Children[0].Flow[store.FlowReported] != 1 {
		t.Fatalf("children of the street: %+v", r.Children)
	}

	c2 := step(c, pb.Action_ACTION_FILE, pb.State_STATE_FILED, t0+minute)
	put(c, c2)
	c3 := step(c2, pb.Action_ACTION_DISPATCH, pb.State_STATE_DISPATCHED, t0+2*minute)
	c3.OwnerUnit, c3.StageDeadline = "sanitation", ts(t0+60*minute)
	put(c2, c3)
	check("dispatched", "320505001002", map[pb.State]int64{pb.State_STATE_DISPATCHED: 1}, 1, 0, [5]int64{1, 1, 1})
	// The feed's change names what the case moved from, so a client can
	// keep these counts on top of a dashboard.
	chs, head, _, err := s.Changes(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if first, last := chs[0], chs[len(chs)-1]; first.Before != nil || last.Revision != head || last.State != pb.State_STATE_DISPATCHED ||
		last.Before.GetState() != pb.State_STATE_FILED || last.Before.GetOwnerUnit() != "" || last.OwnerUnit != "sanitation" || last.Before.GetGridCode() != dashGrid {
		t.Fatalf("feed: first change's before %v; last change %v", first.Before, last)
	}
	u := dash(t, s, store.DashboardQuery{Unit: "sanitation", OverdueLimit: 10})
	if u.Area.States[pb.State_STATE_DISPATCHED] != 1 || u.Area.Open() != 1 {
		t.Fatalf("the unit's counts: %+v", u.Area)
	}

	// Overdue: marked by the sweeper (a supervision step), listed most
	// overdue first beside another overdue case with a later deadline.
	c4 := step(c3, pb.Action_ACTION_SUPERVISE, pb.State_STATE_DISPATCHED, t0+61*minute)
	c4.Overdue = true
	put(c3, c4)
	o2 := step(other, pb.Action_ACTION_SUPERVISE, pb.State_STATE_REPORTED, t0+62*minute)
	o2.Overdue, o2.StageDeadline = true, ts(t0+30*minute)
	put(other, o2)
	r = dash(t, s, store.DashboardQuery{Area: "3205", Hours: day, OverdueLimit: 10})
	if r.Area.Overdue != 2 || !slices.Equal(ids(r.Overdue), []string{other.Id, c.Id}) {
		t.Fatalf("overdue %d, list %v; want 2, most overdue first [%s %s]", r.Area.Overdue, ids(r.Overdue), other.Id, c.Id)
	}
	if r = dash(t, s, store.DashboardQuery{Area: "3205", OverdueLimit: 1}); len(r.Overdue) != 1 {
		t.Fatalf("limit 1 gave %d", len(r.Overdue))
	}
	if r = dash(t, s, store.DashboardQuery{Area: "320505001", OverdueLimit: 10}); !slices.Equal(ids(r.Overdue), []string{c.Id}) {
		t.Fatalf("the street's overdue list: %v", ids(r.Overdue))
	}
	if u = dash(t, s, store.DashboardQuery{Unit: "sanitation", OverdueLimit: 10}); u.Area.Overdue != 1 || !slices.Equal(ids(u.Overdue), []string{c.Id}) {
		t.Fatalf("the unit's overdue: %d %v", u.Area.Overdue, ids(u.Overdue))
	}

	c5 := step(c4, pb.Action_ACTION_HANDLE, pb.State_STATE_HANDLED, t0+90*minute)
	c5.Overdue = false
	put(c4, c5)
	c6 := step(c5, pb.Action_ACTION_CHECK_PASS, pb.State_STATE_CHECKED, t0+100*minute)
	put(c5, c6)
	c7 := step(c6, pb.Action_ACTION_CLOSE, pb.State_STATE_CLOSED, t0+110*minute)
	put(c6, c7)
	check("closed", "320505001", map[pb.State]int64{pb.State_STATE_CLOSED: 1}, 0, 0, [5]int64{1, 1, 1, 1, 1})
	check("closed", "3205", map[pb.State]int64{pb.State_STATE_CLOSED: 1, rep: 1}, 1, 1, [5]int64{1, 1, 1, 1, 1})
	// The next day's flow is empty.
	if r = dash(t, s, store.DashboardQuery{Area: "3205", Hours: hoursOf(t0+24*60*minute, 24)}); r.Area.Flow != [5]int64{} {
		t.Fatalf("tomorrow's flow: %v", r.Area.Flow)
	}

	// A stray mirror dropped by anti-entropy takes its numbers with it.
	if err := s.Update(func(tx *store.Tx) error { return tx.DeleteCase(other.Id) }); err != nil {
		t.Fatal(err)
	}
	index++
	setApplied(t, s, index, 1)
	mustVerify(t, s)
	check("deleted", "3205", map[pb.State]int64{pb.State_STATE_CLOSED: 1}, 0, 0, [5]int64{1, 1, 1, 1, 1})

	// A snapshot restored elsewhere answers the same.
	want := dash(t, s, store.DashboardQuery{Area: "320505", Hours: day, OverdueLimit: 10})
	dst := openMem(t)
	if err := dst.Restore(bytes.NewReader(snapshotBytes(t, s))); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, dst)
	if got := dash(t, dst, store.DashboardQuery{Area: "320505", Hours: day, OverdueLimit: 10}); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("restored: %+v\nwant %+v", got, want)
	}
}

// TestDashboardRebuiltForAnOlderStore: a store written without the D/
// family (an older binary), or one an older binary applied entries to
// since (the mark lags), gets it rebuilt at Open; Verify then passes and
// the numbers are those of the cases.
func TestDashboardRebuiltForAnOlderStore(t *testing.T) {
	dir := t.TempDir()
	s := openDisk(t, dir)
	cs := fillVerified(t, s, 300) // grid 110105001001001
	mustVerify(t, s)
	want := dash(t, s, store.DashboardQuery{Area: "110105001", OverdueLimit: 5})
	if want.Area.Total() != 300 {
		t.Fatalf("total %d, want 300", want.Area.Total())
	}
	// Drop every D/ record, as an older binary's store has none.
	var keys []string
	for _, r := range parseSnapshot(t, snapshotBytes(t, s)) {
		if strings.HasPrefix(r.key, "D/") {
			keys = append(keys, r.key)
		}
	}
	if err := s.RawDelete(keys...); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(store.VerifyOptions{}); err == nil || !strings.Contains(err.Error(), "D/ counters") {
		t.Fatalf("verify without the D/ family: %v, want the counters named", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openDisk(t, dir)
	mustVerify(t, s)
	if got := dash(t, s, store.DashboardQuery{Area: "110105001", OverdueLimit: 5}); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("rebuilt: %+v\nwant %+v", got, want)
	}
	// reopenRebuilt reopens the store, which rebuilds the family, and
	// checks it against the cases.
	reopenRebuilt := func() {
		t.Helper()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openDisk(t, dir)
		mustVerify(t, s)
		if got := dash(t, s, store.DashboardQuery{Area: "110105001", OverdueLimit: 5}); got.Area.States[pb.State_STATE_REPORTED] != int64(len(cs)+2)/3 {
			t.Fatalf("reported after the rebuild: %d", got.Area.States[pb.State_STATE_REPORTED])
		}
	}
	// What releases that kept the family in badger leave there: the
	// mark (D/n; D/m before 2026-12-04), a counter an older binary left
	// wrong, and a street's counter of the layout before 2026-12-04. The
	// next Open drops them all and builds the family from the cases.
	idx, _, err := s.Applied()
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string][]byte{
		"D/n":                       binary.BigEndian.AppendUint64(nil, 1),
		"D/m":                       binary.BigEndian.AppendUint64(nil, idx),
		"D/c/15/110105001001001/01": binary.BigEndian.AppendUint64(nil, 9),
		"D/c/09/110105001/01":       binary.BigEndian.AppendUint64(nil, 9),
	} {
		if err := s.RawSetStored(k, v); err != nil {
			t.Fatal(err)
		}
	}
	reopenRebuilt()
	if got := dash(t, s, store.DashboardQuery{Area: "110105001", OverdueLimit: 5}); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("rebuilt: %+v\nwant %+v", got, want)
	}
	if n := s.StoredKeys("D/"); n != 0 {
		t.Fatalf("badger still holds %d D/ keys", n)
	}
}

// TestVerifyFindsDashboardDamage: a lost or wrong counter, an extra
// overdue entry and a record of no known shape are each found.
func TestVerifyFindsDashboardDamage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(s *store.Store) error
		want   string
	}{
		{"counter wrong", func(s *store.Store) error { return s.RawSet("D/c/06/110105/05", []byte{0, 0, 0, 0, 0, 0, 0, 7}) }, "D/ counters holds"},
		{"counter lost", func(s *store.Store) error { return s.RawDelete("D/c/15/110105001001001/01") }, "D/ counters holds"},
		{"a street's counter (the layout before 2026-12-04)", func(s *store.Store) error {
			return s.RawSet("D/c/09/110105001/01", []byte{0, 0, 0, 0, 0, 0, 0, 10})
		}, "D/ counters holds"},
		{"flow counter extra", func(s *store.Store) error {
			return s.RawSet("D/f/2026050100/04/1101/r", []byte{0, 0, 0, 0, 0, 0, 0, 1})
		}, "D/ counters holds"},
		{"overdue entry extra", func(s *store.Store) error { return s.RawSet("D/o/1101/\x00\x00\x00\x00\x00\x00\x00\x01x", nil) }, "D/ overdue lists holds"},
		{"a mark of a release that kept the family in badger", func(s *store.Store) error { return s.RawSet("D/n", []byte{0, 0, 0, 0, 0, 0, 0, 1}) }, "malformed"},
		{"malformed", func(s *store.Store) error { return s.RawSet("D/zz", nil) }, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openMem(t)
			fillVerified(t, s, 30)
			mustVerify(t, s)
			if err := tc.damage(s); err != nil {
				t.Fatal(err)
			}
			_, err := s.Verify(store.VerifyOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("verify: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestDashboardCostDoesNotGrowWithTheCases counts the keys one Dashboard
// reads with 200 and with 4,000 cases in the same areas (and as many
// overdue): the same, since it reads counters, not cases.
func TestDashboardCostDoesNotGrowWithTheCases(t *testing.T) {
	cost := func(n int) store.StatsSnapshot {
		s := openMem(t)
		grids := []string{dashGrid, dashGrid2, "320505001001001", "320506001001001"}
		var cs []*pb.Case
		unit1 := int64(0)
		for i := range n {
			if i%3 == 1 {
				unit1++
			}
			st := []pb.State{pb.State_STATE_REPORTED, pb.State_STATE_DISPATCHED, pb.State_STATE_CLOSED}[i%3]
			c := mkCase(fmt.Sprintf("320505-20260501-%06d", i+1), st, fmt.Sprintf("unit-%d", i%3), grids[i%len(grids)], t0+int64(i)*minute)
			c.Overdue = i%2 == 0 && st != pb.State_STATE_CLOSED
			cs = append(cs, c)
		}
		putCases(t, s, cs)
		stats := s.EnableStats()
		before := stats.Snapshot()
		r := dash(t, s, store.DashboardQuery{Area: "3205", Hours: hoursOf(t0, 24), OverdueLimit: 20})
		if r.Area.Total() != int64(n) || len(r.Overdue) != 20 {
			t.Fatalf("%d cases: total %d, %d overdue listed", n, r.Area.Total(), len(r.Overdue))
		}
		ru := dash(t, s, store.DashboardQuery{Unit: "unit-1", OverdueLimit: 20})
		if ru.Area.Total() != unit1 {
			t.Fatalf("unit total %d, want %d", ru.Area.Total(), unit1)
		}
		// A district (its streets summed from its grids) and a street
		// (itself and its communities summed from its grids).
		inDistrict, inStreet := int64(0), int64(0)
		for _, c := range cs {
			if strings.HasPrefix(c.GridCode, "320505") {
				inDistrict++
			}
			if strings.HasPrefix(c.GridCode, dashGrid[:9]) {
				inStreet++
			}
		}
		rd := dash(t, s, store.DashboardQuery{Area: "320505", Hours: hoursOf(t0, 24), OverdueLimit: 20})
		rs := dash(t, s, store.DashboardQuery{Area: dashGrid[:9], Hours: hoursOf(t0, 24), OverdueLimit: 20})
		if rd.Area.Total() != inDistrict || len(rd.Children) != 2 || rs.Area.Total() != inStreet || len(rs.Children) != 2 {
			t.Fatalf("district total %d (want %d) with %d streets; street total %d (want %d) with %d communities",
				rd.Area.Total(), inDistrict, len(rd.Children), rs.Area.Total(), inStreet, len(rs.Children))
		}
		return stats.Snapshot().Sub(before)
	}
	small, large := cost(200), cost(4000)
	t.Logf("200 cases: %+v; 4000 cases: %+v", small, large)
	if large.Reads() > small.Reads() || large.Decoded > small.Decoded {
		t.Fatalf("a dashboard read %d keys and decoded %d cases with 4000 cases, %d and %d with 200", large.Reads(), large.Decoded, small.Reads(), small.Decoded)
	}
}

func tallyCodes(ts []store.AreaTally) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Code)
	}
	return out
}

func mapsEqual(a, b map[pb.State]int64) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

// TestDashboardCountersAfterRestoreIntoTheSameStore: the counters' values a
// store keeps from its last writes (countercache.go) are not the values of a
// snapshot restored over it. Restore an older snapshot into the store that
// went on writing, write again: the counters are the snapshot's plus the
// new write (Verify counts them from the cases), not the lost life's.
func TestDashboardCountersAfterRestoreIntoTheSameStore(t *testing.T) {
	s := openMem(t)
	mk := func(n int, st pb.State) *pb.Case {
		return &pb.Case{Id: fmt.Sprintf("320505-20260501-%06d", n), GridCode: dashGrid, State: st, Version: 1,
			History: []*pb.HistoryEntry{{Action: pb.Action_ACTION_REPORT, At: ts(t0), ToState: pb.State_STATE_REPORTED, Version: 1}}}
	}
	index := uint64(0)
	put := func(old, c *pb.Case) {
		t.Helper()
		putCase(t, s, old, c)
		index++
		setApplied(t, s, index, 1)
	}
	put(nil, mk(1, pb.State_STATE_REPORTED))
	put(nil, mk(2, pb.State_STATE_REPORTED))
	older := snapshotBytes(t, s) // two reported cases
	for n := 3; n <= 10; n++ {
		put(nil, mk(n, pb.State_STATE_REPORTED)) // the cache now says 10
	}
	if err := s.Restore(bytes.NewReader(older)); err != nil {
		t.Fatal(err)
	}
	index = 2
	put(nil, mk(3, pb.State_STATE_REPORTED))
	mustVerify(t, s)
	r := dash(t, s, store.DashboardQuery{Area: dashGrid})
	if got := r.Area.States[pb.State_STATE_REPORTED]; got != 3 {
		t.Fatalf("reported in the grid after the restore and one report: %d, want 3", got)
	}
}

// TestCountersAfterRestoreIntoTheSameStore: the same for the other
// counters the store keeps in memory (countercache.go): the day's case
// sequence and an evaluation counter go on from the snapshot's values
// after a restore, and a transaction that fails leaves the cache as it
// was (its values never reach it).
func TestCountersAfterRestoreIntoTheSameStore(t *testing.T) {
	s := openMem(t)
	key := []byte("e/d\x07\xea\x04\xb4r\x06320505\x00\x01")
	index := uint64(0)
	step := func(fn func(tx *store.Tx) error) {
		t.Helper()
		index++
		if err := s.Update(func(tx *store.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			return tx.SetApplied(index, 1)
		}); err != nil {
			t.Fatal(err)
		}
	}
	seq := func(tx *store.Tx) (uint64, error) { return tx.NextSeq("320505", "20260501") }
	count := func() int64 {
		t.Helper()
		var n int64
		if err := s.View(func(tx *store.Tx) (err error) { n, err = tx.Counter(key); return err }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for range 2 {
		step(func(tx *store.Tx) error {
			if _, err := seq(tx); err != nil {
				return err
			}
			return tx.AddCounter(key, 5)
		})
	}
	older := snapshotBytes(t, s) // sequence 2, counter 10
	for range 8 {
		step(func(tx *store.Tx) error {
			if _, err := seq(tx); err != nil {
				return err
			}
			return tx.AddCounter(key, 5)
		}) // the cache now says 10 and 50
	}
	// A failing transaction: its values must not reach the cache.
	if err := s.Update(func(tx *store.Tx) error {
		for range 3 {
			if _, err := seq(tx); err != nil {
				return err
			}
		}
		if err := tx.AddCounter(key, 1000); err != nil {
			return err
		}
		return errors.New("refused")
	}); err == nil {
		t.Fatal("the failing transaction committed")
	}
	var n uint64
	step(func(tx *store.Tx) (err error) { n, err = seq(tx); return err })
	if n != 11 || count() != 50 {
		t.Fatalf("after a failed transaction: sequence %d, counter %d; want 11 and 50", n, count())
	}
	if err := s.Restore(bytes.NewReader(older)); err != nil {
		t.Fatal(err)
	}
	index = 2
	step(func(tx *store.Tx) (err error) {
		if n, err = seq(tx); err != nil {
			return err
		}
		// Twice in one transaction: the second add reads the first's value.
		if err := tx.AddCounter(key, 1); err != nil {
			return err
		}
		return tx.AddCounter(key, -11)
	})
	if n != 3 || count() != 0 {
		t.Fatalf("after the restore: sequence %d, counter %d; want 3 and 0 (the snapshot's 2 and 10, moved on)", n, count())
	}
	// At zero the counter is deleted, as without the cache.
	if err := s.ScanCounters(key, func(k []byte, v int64) error { return fmt.Errorf("counter %q = %d left at zero", k, v) }); err != nil {
		t.Fatal(err)
	}
}
