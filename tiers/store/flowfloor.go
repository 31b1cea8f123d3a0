package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The dashboard's flow (D/f/) is kept for the recent hours only. It is
// read for today (the node's time zone, DashboardService), but it is a
// function of every case's history: summed from a million imported cases
// it was a million counters of hours nobody reads, each an object of its
// own on the heap of every replica, and it grew by the hours of every new
// step for as long as the node ran.
//
// The floor is the first hour kept. Apply moves it, never the clock: a
// command's stamped time (SetChangeContext) sets the target, the hour
// FlowKeepHours-1 before its own, once the command changes a case; the
// transaction deletes the entries below it as it commits (up to
// trimBudget a transaction, whole hours at a time) and records the hour
// it got to under m/flowfloor. A step below the floor counts nowhere:
// putDash skips it, and the rebuild at Open and Verify read the recorded
// floor and skip it too, so every replica and every rebuild hold the same
// entries.
const (
	// FlowKeepHours is how many hours of flow the floor keeps, up to the
	// newest stamped command's: a day in any zone and a day to spare.
	FlowKeepHours = 48
	keyFlowFloor  = "m/flowfloor" // int64 BE: the first Unix hour of flow kept
	// noFloor: every hour is kept (a store whose floor never moved).
	noFloor = math.MinInt64
)

// trimBudget bounds the entries one transaction deletes (it finishes the
// hour it is in): a store of an earlier release holds the flow of every
// hour its cases ever had. A variable for the tests.
var trimBudget = 20_000

// unixHour is the hour the Unix millisecond ms lies in, counted from the
// epoch (the hour before it for a time before 1970).
func unixHour(ms int64) int64 {
	h := ms / 3_600_000
	if ms < 0 && ms%3_600_000 != 0 {
		h--
	}
	return h
}

// flowTarget notes the floor a command stamped at atUnixMs asks for, once
// it changes a case (flowChanged): a command refused or replayed writes
// nothing.
func (tx *Tx) flowTarget(atUnixMs int64) {
	tx.flow.asked = noFloor
	if atUnixMs > 0 {
		tx.flow.asked = unixHour(atUnixMs) - (FlowKeepHours - 1)
	}
}

// flowChanged is called for every case the transaction writes (putDash).
func (tx *Tx) flowChanged() {
	if tx.flow.asked > tx.flow.target {
		tx.flow.target = tx.flow.asked
	}
}

// flowState is a write transaction's floor: the one it began with (what
// its steps are counted against), the highest its commands that changed a
// case asked for, and what the command being applied asks for.
type flowState struct {
	floor, target, asked int64
	moved                bool // floor is new: written, and published on commit
}

// trimFlow deletes the flow below the transaction's target, up to
// trimBudget entries, and records the floor it reached (prepare, last:
// a counter this transaction moved below the floor goes too).
func (tx *Tx) trimFlow() error {
	if tx.flow.target <= tx.flow.floor {
		return nil
	}
	end := []byte(pfxDashFlow + FlowHour(time.Unix(tx.flow.target*3600, 0)))
	it := tx.iterator(badger.IteratorOptions{Prefix: []byte(pfxDashFlow)})
	var doomed [][]byte
	reached, last := tx.flow.target, ""
	for it.Seek([]byte(pfxDashFlow)); it.Valid(); it.Next() {
		k := it.Item().KeyCopy(nil)
		if string(k) >= string(end) {
			break
		}
		if len(k) < len(pfxDashFlow)+10 {
			it.Close()
			return fmt.Errorf("%w: flow counter %q", ErrDamaged, k)
		}
		hour := string(k[len(pfxDashFlow) : len(pfxDashFlow)+10])
		if len(doomed) >= trimBudget && hour != last {
			h, err := parseFlowHour(hour)
			if err != nil {
				it.Close()
				return err
			}
			reached = h
			break
		}
		doomed, last = append(doomed, k), hour
	}
	it.Close()
	for _, k := range doomed {
		if err := tx.del(k); err != nil {
			return err
		}
	}
	if reached <= tx.flow.floor {
		return nil
	}
	tx.flow.floor, tx.flow.moved = reached, true
	return tx.set([]byte(keyFlowFloor), binary.BigEndian.AppendUint64(nil, uint64(reached)))
}

func parseFlowHour(s string) (int64, error) {
	t, err := time.Parse("2006010215", s)
	if err != nil {
		return 0, fmt.Errorf("%w: flow hour %q: %v", ErrDamaged, s, err)
	}
	return t.Unix() / 3600, nil
}

// readFlowFloor reads the recorded floor (noFloor when none is).
func readFlowFloor(txn *badger.Txn) (int64, error) {
	item, err := txn.Get([]byte(keyFlowFloor))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return noFloor, nil
	}
	if err != nil {
		return 0, err
	}
	var floor int64
	err = item.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("%w: %s is %d bytes", ErrDamaged, keyFlowFloor, len(v))
		}
		floor = int64(binary.BigEndian.Uint64(v))
		return nil
	})
	return floor, err
}

// loadFlowFloor reads the recorded floor into the store (Open, Restore:
// before the in-memory families are built against it).
func (s *Store) loadFlowFloor() error {
	return s.db.View(func(txn *badger.Txn) error {
		floor, err := readFlowFloor(txn)
		if err == nil {
			s.flowFloor.Store(floor)
		}
		return err
	})
}
