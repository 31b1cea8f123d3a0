package store_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

const hour = 60 * minute

// flowRecords are the D/f/ records of s (key and value), in key order.
func flowRecords(t *testing.T, s *store.Store) []record {
	t.Helper()
	var out []record
	for _, r := range parseSnapshot(t, snapshotBytes(t, s)) {
		if strings.HasPrefix(r.key, "D/f/") {
			out = append(out, r)
		}
	}
	return out
}

// flowHours are the distinct hours of recs.
func flowHours(recs []record) []string {
	var hs []string
	for _, r := range recs {
		h := r.key[len("D/f/") : len("D/f/")+10]
		if len(hs) == 0 || hs[len(hs)-1] != h {
			hs = append(hs, h)
		}
	}
	return hs
}

// stamped applies one command stamped at atMs that writes c.
func stamped(t *testing.T, s *store.Store, index uint64, atMs int64, old, c *pb.Case) {
	t.Helper()
	if err := s.Update(func(tx *store.Tx) error {
		tx.SetChangeContext(index, atMs)
		if err := tx.PutCase(old, c); err != nil {
			return err
		}
		return tx.SetApplied(index, 1)
	}); err != nil {
		t.Fatal(err)
	}
}

func reported(seq int, grid string, atMs int64) *pb.Case {
	return &pb.Case{Id: caseID("320505", seq), GridCode: grid, State: pb.State_STATE_REPORTED, Version: 1,
		History: []*pb.HistoryEntry{{Action: pb.Action_ACTION_REPORT, At: ts(atMs), ToState: pb.State_STATE_REPORTED, Version: 1}}}
}

func flowFloorOf(t *testing.T, s *store.Store) (int64, bool) {
	t.Helper()
	for _, r := range parseSnapshot(t, snapshotBytes(t, s)) {
		if r.key == "m/flowfloor" {
			if len(r.val) != 8 {
				t.Fatalf("m/flowfloor is %d bytes", len(r.val))
			}
			return int64(binary.BigEndian.Uint64([]byte(r.val))), true
		}
	}
	return 0, false
}

// TestDashboardFlowKeepsTheRecentHours: a backlog's flow of two months of
// old hours is trimmed once commands stamped today are applied, a
// transaction at a time within the budget and whole hours at a time; what
// is kept is the last FlowKeepHours hours before the newest stamp; a step
// below the floor is not counted; Verify agrees at every step; and the
// store rebuilt at Open, a restore into another store, and a replica that
// applied the same commands hold exactly the same flow.
func TestDashboardFlowKeepsTheRecentHours(t *testing.T) {
	defer store.SetTrimBudget(10)()
	dir := t.TempDir()
	s := openDisk(t, dir)
	replica := openMem(t)
	both := func(fn func(s *store.Store)) { fn(s); fn(replica) }

	// The backlog: 60 cases, one a day back from t0, written without a
	// stamp (as an earlier release kept them): every hour's flow is kept.
	var backlog []*pb.Case
	for i := range 60 {
		grid := dashGrid
		if i%2 == 1 {
			grid = dashGrid2
		}
		backlog = append(backlog, reported(i+1, grid, t0-int64(i+1)*24*hour))
	}
	both(func(s *store.Store) { putCases(t, s, backlog); setApplied(t, s, 99, 1) })
	mustVerify(t, s)
	if got := len(flowHours(flowRecords(t, s))); got != 60 {
		t.Fatalf("before any stamp: flow of %d hours, want the backlog's 60", got)
	}
	if _, ok := flowFloorOf(t, s); ok {
		t.Fatal("a floor is recorded before any stamped command")
	}

	// Commands stamped at t0: each trims up to the budget (10 entries:
	// an hour of the backlog is 2, district and grid; a hour begun is
	// finished), so the floor moves up a few days at a time.
	floor := store.FlowHour(time.UnixMilli(t0 - (store.FlowKeepHours-1)*hour))
	index := uint64(100)
	prev := 61
	for seq := 100; ; seq++ {
		index++
		c := reported(seq, dashGrid, t0)
		both(func(s *store.Store) { stamped(t, s, index, t0, nil, c) })
		mustVerify(t, s)
		hours := flowHours(flowRecords(t, s))
		if len(hours) >= prev {
			t.Fatalf("after command %d: %d hours of flow, %d before: nothing trimmed", seq, len(hours), prev)
		}
		if prev-len(hours) > 6 {
			t.Fatalf("after command %d: %d hours trimmed in one transaction, budget 10 entries (5 hours)", seq, prev-len(hours))
		}
		prev = len(hours)
		f, ok := flowFloorOf(t, s)
		if !ok {
			t.Fatalf("after command %d: no floor recorded", seq)
		}
		if got := store.FlowHour(time.Unix(f*3600, 0)); got > hours[0] {
			t.Fatalf("after command %d: floor %s above the oldest hour kept %s", seq, got, hours[0])
		}
		if hours[0] >= floor {
			// The backlog's newest day is within the hours kept.
			if want := []string{store.FlowHour(time.UnixMilli(t0 - 24*hour)), store.FlowHour(time.UnixMilli(t0))}; !slices.Equal(hours, want) {
				t.Fatalf("trimmed: hours %v, want %v", hours, want)
			}
			if got := store.FlowHour(time.Unix(f*3600, 0)); got != floor {
				t.Fatalf("trimmed: floor %s, want %s (%d hours before t0's)", got, floor, store.FlowKeepHours-1)
			}
			break
		}
		if seq > 100+60 {
			t.Fatal("the backlog's flow is never trimmed")
		}
	}

	// A step below the floor counts nowhere; one at the floor does.
	late := reported(200, dashGrid2, t0-72*hour)
	kept := reported(201, dashGrid2, t0-(store.FlowKeepHours-1)*hour)
	index++
	both(func(s *store.Store) { stamped(t, s, index, t0, nil, late) })
	index++
	both(func(s *store.Store) { stamped(t, s, index, t0, nil, kept) })
	mustVerify(t, s)
	want := []string{floor, store.FlowHour(time.UnixMilli(t0 - 24*hour)), store.FlowHour(time.UnixMilli(t0))}
	if got := flowHours(flowRecords(t, s)); !slices.Equal(got, want) {
		t.Fatalf("hours of flow %v, want %v", got, want)
	}
	day := hoursOf(t0, 1)
	if r := dash(t, s, store.DashboardQuery{Area: dashGrid[:6], Hours: day}); r.Area.Flow[store.FlowReported] == 0 {
		t.Fatalf("today's reports in the district: %v, want the stamped ones", r.Area.Flow)
	}

	// Every copy holds the same flow: the replica that applied the same
	// commands, the store rebuilt at Open, a restore into a fresh store.
	live := flowRecords(t, s)
	if got := flowRecords(t, replica); !slices.Equal(got, live) {
		t.Fatalf("the replica's flow differs:\n%v\nwant\n%v", got, live)
	}
	snap := snapshotBytes(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openDisk(t, dir)
	defer s.Close()
	mustVerify(t, s)
	if got := flowRecords(t, s); !slices.Equal(got, live) {
		t.Fatalf("rebuilt at Open, the flow differs:\n%v\nwant\n%v", got, live)
	}
	restored := openMem(t)
	if err := restored.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, restored)
	if got := flowRecords(t, restored); !slices.Equal(got, live) {
		t.Fatalf("restored, the flow differs:\n%v\nwant\n%v", got, live)
	}
}

// TestVerifyFindsFlowBelowTheFloor: a flow counter of an hour below the
// recorded floor is damage Verify names.
func TestVerifyFindsFlowBelowTheFloor(t *testing.T) {
	s := openMem(t)
	stamped(t, s, 1, t0, nil, reported(1, dashGrid, t0))
	mustVerify(t, s)
	old := store.FlowHour(time.UnixMilli(t0 - 72*hour))
	key := fmt.Sprintf("D/f/%s/06/%s/r", old, dashGrid[:6])
	if err := s.RawSet(key, binary.BigEndian.AppendUint64(nil, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(store.VerifyOptions{}); err == nil || !strings.Contains(err.Error(), "D/ counters") {
		t.Fatalf("verify with a counter below the floor: %v, want the D/ counters named", err)
	}
}
