package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

// backupBytes makes a backup of a store holding cases cases at index 40,
// term 3, the way Save writes one.
func backupBytes(t *testing.T, cases int) []byte {
	t.Helper()
	s, err := store.Open(store.Options{InMemory: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Update(func(tx *store.Tx) error {
		for i := 1; i <= cases; i++ {
			c := &pb.Case{Id: "320505-20261122-" + strings.Repeat("0", 5) + string(rune('0'+i)), State: pb.State_STATE_REPORTED, Version: 1}
			if err := tx.PutCase(nil, c); err != nil {
				return err
			}
		}
		return tx.SetApplied(40, 3)
	}); err != nil {
		t.Fatal(err)
	}
	sn, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Release()
	var buf bytes.Buffer
	if err := writeHeader(&buf, &pb.SnapshotInfo{NodeId: "n2", Index: 40, Term: 3, LogVersion: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	buf.Write(sum[:])
	return buf.Bytes()
}

func TestInspectChecksAndCounts(t *testing.T) {
	b := backupBytes(t, 5)
	st, err := Inspect(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	whole := sha256.Sum256(b)
	if !st.ChecksumOK || st.Cases != 5 || st.Info.GetIndex() != 40 || st.Info.GetTerm() != 3 || st.Bytes != int64(len(b)) || st.SHA256 != hex.EncodeToString(whole[:]) {
		t.Fatalf("status %+v (problem %q)", st, st.Problem)
	}
	// One flipped bit anywhere after the header is found.
	for _, at := range []int{len(Magic) + 10, len(b) / 2, len(b) - 40, len(b) - 1} {
		d := bytes.Clone(b)
		d[at] ^= 0x08
		st, err := Inspect(bytes.NewReader(d))
		if err != nil {
			continue // the header itself no longer parses: also found
		}
		if st.ChecksumOK {
			t.Errorf("a bit flipped at %d of %d went unnoticed", at, len(b))
		}
	}
	// Cut short: no trailing checksum, or a broken state.
	if st, err := Inspect(bytes.NewReader(b[:len(b)-10])); err != nil || st.ChecksumOK {
		t.Errorf("a truncated backup: %v, %v", st, err)
	}
	// Not a backup at all.
	if _, err := Inspect(strings.NewReader("cityhub-state-v1\n")); !errors.Is(err, ErrBadBackup) {
		t.Errorf("not a backup: %v", err)
	}
}

func TestInspectFileComparesTheSideFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "d.snap")
	b := backupBytes(t, 2)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := InspectFile(path)
	if err != nil || st.SideFile != "missing" {
		t.Fatalf("no side file: %v %v", st, err)
	}
	if err := writeSideFile(path, st.SHA256); err != nil {
		t.Fatal(err)
	}
	if st, _ := InspectFile(path); st.SideFile != "ok" {
		t.Fatalf("side file: %q", st.SideFile)
	}
	side, _ := os.ReadFile(SideFile(path))
	if !strings.HasSuffix(string(side), "  d.snap\n") {
		t.Errorf("side file %q is not in sha256sum's format", side)
	}
	if err := writeSideFile(path, strings.Repeat("0", 64)); err != nil {
		t.Fatal(err)
	}
	if st, _ := InspectFile(path); st.SideFile != "differs" {
		t.Fatalf("a wrong side file: %q", st.SideFile)
	}
}

func TestOpenStateYieldsTheStateAlone(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "d.snap")
	if err := os.WriteFile(path, backupBytes(t, 3), 0o600); err != nil {
		t.Fatal(err)
	}
	info, r, c, err := openState(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := store.Open(store.Options{InMemory: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Restore(r); err != nil {
		t.Fatal(err)
	}
	idx, term, err := s.Applied()
	if err != nil || idx != info.Index || term != 3 {
		t.Fatalf("restored %d %d %v, header %v", idx, term, err, info)
	}
}

func TestParseCluster(t *testing.T) {
	ms, err := ParseCluster("n1=10.0.0.1:7001, n2=10.0.0.2:7001,n3=10.0.0.3:7001")
	if err != nil || len(ms) != 3 || ms[1] != (Member{"n2", "10.0.0.2:7001"}) {
		t.Fatalf("%v %v", ms, err)
	}
	for _, bad := range []string{"", "n1", "n1=", "=a:1", "n1=a:1,n1=b:1"} {
		if _, err := ParseCluster(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
