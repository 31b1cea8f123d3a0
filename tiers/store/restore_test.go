package store_test

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

func TestInLinkKeepsIncarnationAndReadsOldMarks(t *testing.T) {
	s := openMem(t)
	if err := s.Update(func(tx *store.Tx) error {
		if err := tx.SetInHighWater("city", 7); err != nil { // the 8-byte form
			return err
		}
		if err := tx.SetInLink("s-1", 12, 99); err != nil {
			return err
		}
		// A mark moved by a delivery keeps the incarnation it was numbered by.
		return tx.SetInHighWater("s-1", 13)
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		peer    string
		hw, inc uint64
	}{{"city", 7, 0}, {"s-1", 13, 99}, {"nobody", 0, 0}} {
		ls, err := s.Link(tc.peer)
		if err != nil {
			t.Fatal(err)
		}
		if ls.InHighWater != tc.hw || ls.InIncarnation != tc.inc {
			t.Errorf("%s: high-water %d incarnation %d, want %d %d", tc.peer, ls.InHighWater, ls.InIncarnation, tc.hw, tc.inc)
		}
	}
}

func TestBumpSeqOnlyMovesUp(t *testing.T) {
	s := openMem(t)
	var first, next uint64
	if err := s.Update(func(tx *store.Tx) error {
		var err error
		if first, err = tx.NextSeq("110105", "20260501"); err != nil {
			return err
		}
		if moved, err := tx.BumpSeq("110105", "20260501", 41); err != nil || !moved {
			t.Errorf("bump to 41: moved %v, %v", moved, err)
		}
		if moved, err := tx.BumpSeq("110105", "20260501", 5); err != nil || moved {
			t.Errorf("bump to 5 below 41: moved %v, %v", moved, err)
		}
		next, err = tx.NextSeq("110105", "20260501")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if first != 1 || next != 42 {
		t.Errorf("sequence numbers %d then %d, want 1 then 42", first, next)
	}
}

func TestSplitCaseID(t *testing.T) {
	for _, tc := range []struct {
		id           string
		prefix, date string
		seq          uint64
		ok           bool
	}{
		{"320505-20261122-000105", "320505", "20261122", 105, true},
		{"320505-20261122-1000001", "320505", "20261122", 1000001, true},
		{"320505-2026112-000105", "", "", 0, false},
		{"320505-20261122-", "", "", 0, false},
		{"320505", "", "", 0, false},
		{"-20261122-000001", "", "", 0, false},
	} {
		p, d, n, ok := store.SplitCaseID(tc.id)
		if p != tc.prefix || d != tc.date || n != tc.seq || ok != tc.ok {
			t.Errorf("SplitCaseID(%q) = %q %q %d %v, want %q %q %d %v", tc.id, p, d, n, ok, tc.prefix, tc.date, tc.seq, tc.ok)
		}
	}
}

func TestRestoreStateRoundTrip(t *testing.T) {
	s := openMem(t)
	if rs, err := s.RestoreState(); err != nil || rs != nil {
		t.Fatalf("never restored: %v, %v", rs, err)
	}
	want := &pb.RestoreState{Index: 10, Term: 2, BackupSha256: "ab", CatchingUp: true, CaughtUp: []string{"city"}, Incarnation: 5}
	if err := s.Update(func(tx *store.Tx) error { return tx.PutRestoreState(want) }); err != nil {
		t.Fatal(err)
	}
	got, err := s.RestoreState()
	if err != nil || !proto.Equal(got, want) {
		t.Fatalf("restore state %v, %v; want %v", got, err, want)
	}
}

func TestNextBatchReadsIncarnationAndMarksWithEntries(t *testing.T) {
	s := openMem(t)
	if err := s.Update(func(tx *store.Tx) error {
		for i := 1; i <= 4; i++ {
			if _, err := tx.Enqueue("city", &pb.LinkEntry{Case: mkCase(caseID("110105", i), pb.State_STATE_REPORTED, "", "", 0)}); err != nil {
				return err
			}
		}
		if _, err := tx.Trim("city", 2); err != nil {
			return err
		}
		return tx.PutRestoreState(&pb.RestoreState{Incarnation: 1234})
	}); err != nil {
		t.Fatal(err)
	}
	b, err := s.NextBatch("city", 1, 10, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if b.Incarnation != 1234 || b.Acked != 2 || b.LastSeq != 4 || len(b.Entries) != 2 || b.Entries[0].Seq != 3 {
		t.Errorf("batch: incarnation %d acked %d last %d, %d entries from %d; want 1234 2 4, 2 from 3",
			b.Incarnation, b.Acked, b.LastSeq, len(b.Entries), b.Entries[0].GetSeq())
	}
}

func TestReadSnapshotCountsAndChecks(t *testing.T) {
	s := openMem(t)
	if err := s.Update(func(tx *store.Tx) error {
		for i := 1; i <= 3; i++ {
			c := mkCase(caseID("110105", i), pb.State_STATE_REPORTED, "", "", 0)
			if err := tx.PutCase(nil, c); err != nil {
				return err
			}
		}
		return tx.SetApplied(42, 3)
	}); err != nil {
		t.Fatal(err)
	}
	sn, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Release()
	if idx, term, err := sn.Applied(); err != nil || idx != 42 || term != 3 {
		t.Fatalf("snapshot applied %d %d, %v; want 42 3", idx, term, err)
	}
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	cases := 0
	n, err := store.ReadSnapshot(bytes.NewReader(buf.Bytes()), func(k, _ []byte) error {
		if bytes.HasPrefix(k, []byte("c/")) {
			cases++
		}
		return nil
	})
	if err != nil || cases != 3 || n < 4 {
		t.Fatalf("read: %d records, %d cases, %v; want 3 cases", n, cases, err)
	}
	damaged := bytes.Clone(buf.Bytes())
	damaged[len(damaged)/2] ^= 0x40
	if _, err := store.ReadSnapshot(bytes.NewReader(damaged), func(_, _ []byte) error { return nil }); !errors.Is(err, store.ErrBadSnapshot) {
		t.Errorf("damaged snapshot: %v, want ErrBadSnapshot", err)
	}
}
