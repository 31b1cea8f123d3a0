package store

import (
	"encoding/binary"
	"fmt"
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

// TestNearbyIndexBuiltForAnOlderStore: the nearby index is built from the
// cases when a store opens, whatever badger holds of it: a store written
// by a release without the index (no N/ keys), one that kept it in badger
// (N/ keys and their mark, N/m, dropped at open), and one where an older
// release applied an entry after a newer one (a case with no N/ entry).
// A look-up never silently finds nothing, and badger keeps no N/ key.
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
	// What a release that kept the index in badger leaves: a stale entry
	// (a case since deleted) and the mark.
	stale := nearbyEntries(mk("gone-1"))[0]
	if err := s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(stale.key, stale.val); err != nil {
			return err
		}
		return txn.Set([]byte("N/m"), binary.BigEndian.AppendUint64(nil, 5))
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openNearTest(t, dir)
	if got := nearOpenIDs(t, s, k); !slices.Equal(got, []string{"a-1"}) {
		t.Fatalf("after opening a store that kept the index in badger: %v", got)
	}
	if _, err := s.Verify(VerifyOptions{}); err != nil {
		t.Fatalf("verify after the stale entries were dropped: %v", err)
	}
	// An older release applies entry 6 (a new case, no N/ entry).
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
		t.Fatalf("after an older release applied an entry: %v", got)
	}
	if err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pfxNear)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			return fmt.Errorf("badger still holds %q", it.Item().Key())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
