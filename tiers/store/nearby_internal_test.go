package store

import (
	"encoding/binary"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

func openNearTest(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func nearOpenIDs(t *testing.T, s *Store, k NearbyClass) []string {
	t.Helper()
	var out []string
	if err := s.NearbyOpen(k, time.Unix(0, 0), func(e NearbyEntry) bool { out = append(out, e.ID); return true }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestNearbyIndexBuiltForAnOlderStore: a store written by a version
// without the nearby index (no N/ keys, no mark), and one where an older
// version applied entries after a newer one (the mark behind the applied
// index), get the index built when they are opened: a look-up never
// silently finds nothing.
func TestNearbyIndexBuiltForAnOlderStore(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	mk := func(id string) *pb.Case {
		return &pb.Case{Id: id, State: pb.State_STATE_REPORTED, Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02",
			GridCode: "320582110152102", ReportedAt: timestamppb.New(at), Location: &pb.Location{Lat: 31.3, Lng: 120.6}}
	}
	k := NearbyClassOf(mk(""))
	s := openNearTest(t, dir)
	if err := s.Update(func(tx *Tx) error {
		if err := tx.PutCase(nil, mk("a-1")); err != nil {
			return err
		}
		return tx.SetApplied(5, 1)
	}); err != nil {
		t.Fatal(err)
	}
	// What an older version leaves: the cases without their N/ entries.
	if err := s.db.DropPrefix([]byte(pfxNear)); err != nil {
		t.Fatal(err)
	}
	if got := nearOpenIDs(t, s, k); len(got) != 0 {
		t.Fatalf("fixture: index still there: %v", got)
	}
	s.Close()

	s = openNearTest(t, dir)
	if got := nearOpenIDs(t, s, k); !slices.Equal(got, []string{"a-1"}) {
		t.Fatalf("after opening a store without the index: %v", got)
	}
	// An older version applies entry 6 (a new case, no N/ entry, no mark).
	b, _ := proto.Marshal(mk("b-1"))
	if err := s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(caseKey("b-1"), b); err != nil {
			return err
		}
		v := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, 6), 1)
		return txn.Set([]byte(keyApplied), v)
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openNearTest(t, dir)
	defer s.Close()
	if got := nearOpenIDs(t, s, k); !slices.Equal(got, []string{"b-1", "a-1"}) {
		t.Fatalf("after an older version applied an entry: %v", got)
	}
	var mark uint64
	if err := s.View(func(tx *Tx) (err error) { mark, _, err = tx.nearbyMark(); return err }); err != nil || mark != 6 {
		t.Fatalf("mark %d, %v; want 6", mark, err)
	}
}
