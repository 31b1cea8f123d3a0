package store

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// TestPutCaseWritesOnlyTheIndexEntriesThatChange: a write of a case sets
// the index entries it adds and deletes those it drops, and leaves the
// others alone (each one rewritten would be work for nothing on every
// replica): the in-memory families see exactly those keys, and the
// case's own badger key moves on.
func TestPutCaseWritesOnlyTheIndexEntriesThatChange(t *testing.T) {
	s := openNearTest(t, t.TempDir())
	defer s.Close()
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	v1 := &pb.Case{Id: "c-1", State: pb.State_STATE_DISPATCHED, Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02",
		GridCode: "320582110152102", OwnerUnit: "u-1", ReportedAt: timestamppb.New(at), Version: 1,
		StageDeadline: timestamppb.New(at.Add(time.Hour))}
	var set, deleted []string
	memWritten = func(key string, del bool) {
		if strings.HasPrefix(key, pfxDash) {
			return // the dashboard's counters: dashboard_test.go
		}
		if del {
			deleted = append(deleted, key)
		} else {
			set = append(set, key)
		}
	}
	defer func() { memWritten = nil }()
	applied := uint64(0)
	put := func(old, c *pb.Case) {
		t.Helper()
		applied++
		set, deleted = nil, nil
		if err := s.Update(func(tx *Tx) error {
			if err := tx.PutCase(old, c); err != nil {
				return err
			}
			return tx.SetApplied(applied, 1)
		}); err != nil {
			t.Fatal(err)
		}
	}
	version := func(key []byte) uint64 {
		t.Helper()
		var v uint64
		if err := s.db.View(func(txn *badger.Txn) error {
			item, err := txn.Get(key)
			if err != nil {
				return err
			}
			v = item.Version()
			return nil
		}); err != nil {
			t.Fatalf("%q: %v", key, err)
		}
		return v
	}
	keys := func(ks ...[]byte) []string {
		var out []string
		for _, k := range ks {
			out = append(out, string(k))
		}
		slices.Sort(out)
		return out
	}
	sorted := func(ks []string) []string { slices.Sort(ks); return ks }
	digest := digestKey(v1.Id)
	put(nil, v1)
	if want := keys(gridKey(v1.GridCode, v1.Id), unitKey("u-1", v1.Id), stateKey(v1.State, v1.Id), dueKey(at.Add(time.Hour).UnixMilli(), v1.Id), digest, nearbyEntries(v1)[0].key); !slices.Equal(sorted(set), want) || len(deleted) > 0 {
		t.Fatalf("a new case set %q and deleted %q, want %q set", set, deleted, want)
	}
	caseV := version(caseKey(v1.Id))

	// The description changes: no index entry does (the digest does).
	v2 := proto.Clone(v1).(*pb.Case)
	v2.Description, v2.Version = "更新", 2
	put(v1, v2)
	if version(caseKey(v1.Id)) == caseV {
		t.Fatal("the case's key was not written")
	}
	if want := keys(digest); !slices.Equal(sorted(set), want) || len(deleted) > 0 {
		t.Fatalf("a new description set %q and deleted %q, want only %q set", set, deleted, want)
	}

	// The state and the unit change: their entries move, the grid's stays.
	v3 := proto.Clone(v2).(*pb.Case)
	v3.State, v3.OwnerUnit, v3.Version = pb.State_STATE_ACCEPTED, "u-2", 3
	put(v2, v3)
	if want := keys(stateKey(pb.State_STATE_ACCEPTED, v1.Id), unitKey("u-2", v1.Id), digest); !slices.Equal(sorted(set), want) {
		t.Fatalf("a new state and unit set %q, want %q", set, want)
	}
	if want := keys(stateKey(pb.State_STATE_DISPATCHED, v1.Id), unitKey("u-1", v1.Id)); !slices.Equal(sorted(deleted), want) {
		t.Fatalf("a new state and unit deleted %q, want %q", deleted, want)
	}
	for _, gone := range [][]byte{stateKey(pb.State_STATE_DISPATCHED, v1.Id), unitKey("u-1", v1.Id)} {
		if err := s.View(func(tx *Tx) error { _, err := tx.get(gone); return err }); err == nil {
			t.Fatalf("%q is still there", gone)
		}
	}
	for _, there := range [][]byte{stateKey(pb.State_STATE_ACCEPTED, v1.Id), unitKey("u-2", v1.Id), gridKey(v1.GridCode, v1.Id)} {
		if err := s.View(func(tx *Tx) error { _, err := tx.get(there); return err }); err != nil {
			t.Fatalf("%q: %v", there, err)
		}
	}
	if _, err := s.Verify(VerifyOptions{}); err != nil {
		t.Fatalf("verify: %v", err)
	}
}

// The state keys and counters are stored: built without fmt, they must
// stay byte for byte what fmt made.
func TestStateKeysAreFmtsFormat(t *testing.T) {
	for n := int32(-120); n <= 120; n++ {
		st := pb.State(n)
		if got, want := string(stateKey(st, "c-1")), fmt.Sprintf("%s%02d/%s", pfxByState, n, "c-1"); got != want {
			t.Fatalf("stateKey(%d) = %q, want %q", n, got, want)
		}
		if got, want := string(statePrefix(st)), fmt.Sprintf("%s%02d/", pfxByState, n); got != want {
			t.Fatalf("statePrefix(%d) = %q, want %q", n, got, want)
		}
		if got, want := string(countKey(st)), fmt.Sprintf("%s%02d", pfxCount, n); got != want {
			t.Fatalf("countKey(%d) = %q, want %q", n, got, want)
		}
		if got, want := stateSuffix(st), fmt.Sprintf("%02d", n); got != want {
			t.Fatalf("stateSuffix(%d) = %q, want %q", n, got, want)
		}
	}
}
