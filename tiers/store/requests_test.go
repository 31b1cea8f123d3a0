package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

// TestRequestIDsFoundAfterReopenAndRestore: the request-id filter never
// hides a stored id — after PutRequest, after reopening the store (the
// filter built from the stored ids) and in a store restored from a
// snapshot — and a new id is answered without a read.
func TestRequestIDsFoundAfterReopenAndRestore(t *testing.T) {
	dir := t.TempDir()
	s := openDisk(t, dir)
	const n = 3000
	if err := s.Update(func(tx *store.Tx) error {
		for i := 0; i < n; i++ {
			if err := tx.PutRequest(fmt.Sprint("req-", i), &pb.RequestRecord{CaseId: fmt.Sprint("c-", i)}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	check := func(what string, s *store.Store) {
		t.Helper()
		for i := 0; i < n; i++ {
			r, err := getRequest(t, s, fmt.Sprint("req-", i))
			if err != nil || r.CaseId != fmt.Sprint("c-", i) {
				t.Fatalf("%s: request req-%d: %v, %v", what, i, r, err)
			}
		}
		stats := s.EnableStats()
		before := stats.Snapshot()
		misses := 0
		for i := 0; i < 1000; i++ {
			if _, err := getRequest(t, s, fmt.Sprint("new-", i)); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("%s: a new id: %v", what, err)
			}
		}
		misses = int(stats.Snapshot().Sub(before).Gets)
		// 1 % false positives by design; 5 % would say the filter is not used.
		if misses > 50 {
			t.Fatalf("%s: %d of 1,000 new ids were read from the store", what, misses)
		}
	}
	check("after PutRequest", s)
	s.Close()
	s = openDisk(t, dir)
	defer s.Close()
	check("after reopening", s)
	dst := openMem(t)
	if err := dst.Update(func(tx *store.Tx) error {
		return tx.PutRequest("junk", &pb.RequestRecord{CaseId: "junk"})
	}); err != nil {
		t.Fatal(err)
	}
	if err := dst.Restore(bytes.NewReader(snapshotBytes(t, s))); err != nil {
		t.Fatal(err)
	}
	check("after a restore", dst)
	if _, err := getRequest(t, dst, "junk"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an id of the state a restore replaced: %v", err)
	}
}
