package store_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

// fillVerified writes n cases of prefix 110105 as the FSM would: each with
// its day's sequence, a request record and the applied index.
func fillVerified(tb testing.TB, s *store.Store, n int) []*pb.Case {
	tb.Helper()
	var cs []*pb.Case
	for start := 0; start < n; start += 200 {
		if err := s.Update(func(tx *store.Tx) error {
			for i := start; i < min(start+200, n); i++ {
				seq, err := tx.NextSeq("110105", "20260501")
				if err != nil {
					return err
				}
				st := []pb.State{pb.State_STATE_REPORTED, pb.State_STATE_DISPATCHED, pb.State_STATE_CLOSED}[i%3]
				c := mkCase(caseID("110105", int(seq)), st, fmt.Sprintf("unit-%d", i%4), "110105001001001", t0+int64(i)*minute)
				if i%5 == 0 {
					c.LegacyId, c.ReportedAtNode = fmt.Sprintf("old-%d", i), "110105"
				}
				if _, err := tx.GetRequest("req-" + c.Id); !errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("request %s: %v", c.Id, err)
				}
				if err := tx.PutCase(nil, c); err != nil {
					return err
				}
				if err := tx.PutRequest("req-"+c.Id, &pb.RequestRecord{CaseId: c.Id, Version: c.Version}); err != nil {
					return err
				}
				cs = append(cs, c)
			}
			return tx.SetApplied(uint64(start+200), 2)
		}); err != nil {
			tb.Fatalf("fill: %v", err)
		}
	}
	return cs
}

func TestVerifyFindsLostRecords(t *testing.T) {
	cs := func() (s *store.Store, cs []*pb.Case) {
		s = openMem(t)
		return s, fillVerified(t, s, 300)
	}
	s, all := cs()
	rep, err := s.Verify(store.VerifyOptions{IDPrefix: "110105"})
	if err != nil {
		t.Fatalf("verify an intact store: %v", err)
	}
	if rep.Cases != 300 || rep.Requests != 300 || rep.Applied != 400 || rep.LedgerStarted {
		t.Fatalf("report %+v, want 300 cases, 300 requests, applied 400, the count kept from the start", rep)
	}
	id := all[7].Id // DISPATCHED, unit-3
	seqKey := "q/110105/20260501"
	for _, tc := range []struct {
		name   string
		damage func(s *store.Store) error
		want   string
	}{
		{"case lost", func(s *store.Store) error { return s.RawDelete("c/" + id) }, "counter says"},
		{"state index entry lost", func(s *store.Store) error { return s.RawDelete("s/05/" + id) }, "s/ holds 299 entries"},
		{"unit index entry lost", func(s *store.Store) error { return s.RawDelete("u/unit-3\x00" + id) }, "u/ holds"},
		{"digest lost", func(s *store.Store) error { return s.RawDelete("h/" + id) }, "h/ holds 299"},
		{"digest stale", func(s *store.Store) error {
			return s.RawSet("h/"+id, append(binary.BigEndian.AppendUint64(make([]byte, 16), 99), 0))
		}, "h/ holds 300 entries that differ"},
		{"nearby entry lost", func(s *store.Store) error { return s.RawDelete(store.NearbyKeys(all[7])...) }, "N/ holds 199 entries, the cases need 200"},
		{"legacy id lost", func(s *store.Store) error { return s.RawDelete("x/110105\x00old-5") }, "x/ holds"},
		{"counter lost", func(s *store.Store) error { return s.RawDelete("k/05") }, "counter says 0"},
		{"sequence behind", func(s *store.Store) error { return s.RawSet(seqKey, binary.BigEndian.AppendUint64(nil, 250)) }, "would reuse an id"},
		{"sequence lost", func(s *store.Store) error { return s.RawDelete(seqKey) }, "sequence of that day is missing"},
		{"request record lost", func(s *store.Store) error { return s.RawDelete("r/req-" + id) }, "299 request records, the store wrote 300"},
		{"applied index lost", func(s *store.Store) error { return s.RawDelete("m/applied") }, "applied index is missing"},
		{"restore half way", func(s *store.Store) error { return s.RawSet("m/restoring", nil) }, "restore did not finish"},
		{"case garbled", func(s *store.Store) error { return s.RawSet("c/"+id, []byte{0xff, 0xff}) }, "does not decode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := cs()
			if err := tc.damage(s); err != nil {
				t.Fatal(err)
			}
			_, err := s.Verify(store.VerifyOptions{IDPrefix: "110105"})
			if !errors.Is(err, store.ErrDamaged) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("verify after %s: %v, want ErrDamaged saying %q", tc.name, err, tc.want)
			}
		})
	}
}

func TestVerifyStartsTheRequestCount(t *testing.T) {
	s := openMem(t)
	fillVerified(t, s, 10)
	if err := s.RawDelete("m/requests"); err != nil { // a store from before the count
		t.Fatal(err)
	}
	rep, err := s.Verify(store.VerifyOptions{})
	if err != nil || !rep.LedgerStarted || rep.Requests != 10 {
		t.Fatalf("verify without a count: %+v %v, want the 10 records counted", rep, err)
	}
	if err := s.Update(func(tx *store.Tx) error {
		return tx.PutRequest("one-more", &pb.RequestRecord{})
	}); err != nil {
		t.Fatal(err)
	}
	if rep, err := s.Verify(store.VerifyOptions{}); err != nil || rep.LedgerStarted || rep.Requests != 11 {
		t.Fatalf("verify after one more record: %+v %v", rep, err)
	}
	if err := s.RawDelete("r/one-more"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(store.VerifyOptions{}); err == nil || !strings.Contains(err.Error(), "10 request records, the store wrote 11") {
		t.Fatalf("verify after losing a record: %v", err)
	}
}

func TestRestoreKeepsTheRequestCount(t *testing.T) {
	src := openMem(t)
	fillVerified(t, src, 50)
	var buf strings.Builder
	sn, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	sn.Release()
	dst := openMem(t)
	if err := dst.Restore(strings.NewReader(buf.String())); err != nil {
		t.Fatal(err)
	}
	if rep, err := dst.Verify(store.VerifyOptions{IDPrefix: "110105"}); err != nil || rep.Requests != 50 || rep.LedgerStarted {
		t.Fatalf("verify the restored store: %+v %v", rep, err)
	}
}

// diskStore writes n verified cases to a store in dir and closes it: the
// files a stopped node leaves.
func diskStore(t *testing.T, dir string, n int) {
	t.Helper()
	s := openDisk(t, dir)
	fillVerified(t, s, n)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCheckFiles(t *testing.T) {
	base := filepath.Join(t.TempDir(), "base")
	diskStore(t, base, 3000)
	if f, err := store.CheckFiles(base); err != nil || !f.Exists || len(f.Orphans) != 0 || f.TornManifest {
		t.Fatalf("check an intact store: %+v %v", f, err)
	}
	if f, err := store.CheckFiles(filepath.Join(t.TempDir(), "none")); err != nil || f.Exists {
		t.Fatalf("check a missing directory: %+v %v", f, err)
	}
	ssts, _ := filepath.Glob(filepath.Join(base, "*.sst"))
	if len(ssts) == 0 {
		t.Fatalf("no table files in %s", base)
	}
	// A MANIFEST cut short no longer names the tables it recorded last:
	// badger would delete them, so they are reported before it opens.
	short := copyDir(t, base)
	if err := os.Truncate(filepath.Join(short, "MANIFEST"), 20); err != nil {
		t.Fatal(err)
	}
	if f, err := store.CheckFiles(short); err != nil || len(f.Orphans) != len(ssts) || !f.TornManifest {
		t.Fatalf("check after the MANIFEST was cut: %+v %v, want %d orphans and a torn MANIFEST", f, err, len(ssts))
	}
	for _, tc := range []struct {
		name   string
		damage func(dir string) error
		file   string
	}{
		{"MANIFEST deleted", func(dir string) error { return os.Remove(filepath.Join(dir, "MANIFEST")) }, "MANIFEST is missing"},
		{"MANIFEST garbled", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "MANIFEST"), []byte("not a manifest"), 0o600)
		}, "MANIFEST"},
		{"table truncated", func(dir string) error {
			p := filepath.Join(dir, filepath.Base(ssts[0]))
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			return os.Truncate(p, fi.Size()/2)
		}, filepath.Base(ssts[0])},
		{"table tail cut", func(dir string) error {
			p := filepath.Join(dir, filepath.Base(ssts[0]))
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			return os.Truncate(p, fi.Size()-3)
		}, filepath.Base(ssts[0])},
		{"table deleted", func(dir string) error { return os.Remove(filepath.Join(dir, filepath.Base(ssts[0]))) }, filepath.Base(ssts[0]) + " is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, base)
			if err := tc.damage(dir); err != nil {
				t.Fatal(err)
			}
			_, err := store.CheckFiles(dir)
			if !errors.Is(err, store.ErrDamaged) || !strings.Contains(err.Error(), tc.file) {
				t.Fatalf("check after %s: %v, want ErrDamaged naming %q", tc.name, err, tc.file)
			}
		})
	}
}

func copyDir(t *testing.T, from string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), filepath.Base(from))
	if err := os.MkdirAll(to, 0o750); err != nil {
		t.Fatal(err)
	}
	es, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return to
}
