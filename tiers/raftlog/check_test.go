package raftlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// walWithSegments writes n entries to a raft-wal log of small segments,
// sets raft's term and closes it: the files a stopped replica leaves.
func walWithSegments(t *testing.T, dir string, n int) []string {
	t.Helper()
	l, err := OpenEngine(EngineWAL, Options{Dir: dir, SegmentSize: 64 << 10}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i += 50 {
		var logs []*raft.Log
		for j := i; j < i+50 && j <= n; j++ {
			logs = append(logs, &raft.Log{Index: uint64(j), Term: 3, Type: raft.LogCommand, Data: []byte(fmt.Sprintf("entry %d %0400d", j, j))})
		}
		if err := l.StoreLogs(logs); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.SetUint64([]byte("CurrentTerm"), 3); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	segs, err := segmentFiles(dir)
	if err != nil || len(segs) < 3 {
		t.Fatalf("want at least 3 segments, have %v (%v)", segs, err)
	}
	return segs
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
}

func TestDamagedWALIsNamed(t *testing.T) {
	base := filepath.Join(t.TempDir(), "raft")
	segs := walWithSegments(t, base, 620) // the last segment holds 601..620
	name := func(i int) string { return filepath.Base(segs[i]) }
	truncate := func(f string, by func(int64) int64) func(string) error {
		return func(dir string) error {
			p := filepath.Join(dir, f)
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			return os.Truncate(p, by(fi.Size()))
		}
	}
	for _, tc := range []struct {
		name   string
		damage func(dir string) error
		// file named in the error; "" when the log opens and verifies
		// (a crash-torn tail) and lastBelow says where it ends now.
		file      string
		lastBelow uint64
	}{
		{"meta deleted", func(dir string) error { return os.Remove(filepath.Join(dir, MetaFile)) }, MetaFile + " is missing", 0},
		{"meta truncated", truncate(MetaFile, func(n int64) int64 { return n / 3 }), MetaFile, 0},
		{"meta garbled", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, MetaFile), []byte(strings.Repeat("garbage ", 2048)), 0o600)
		}, MetaFile, 0},
		{"head segment header cut", truncate(name(0), func(int64) int64 { return 10 }), name(0), 0},
		{"head segment halved", truncate(name(0), func(n int64) int64 { return n / 2 }), name(0), 0},
		{"middle segment deleted", func(dir string) error { return os.Remove(filepath.Join(dir, name(1))) }, name(1), 0},
		{"last sealed segment cut", truncate(name(len(segs)-2), func(n int64) int64 { return n - 100 }), name(len(segs) - 2), 0},
		// raft-wal reads the unsealed tail as a crash may have left it:
		// entries after the cut are gone, the rest is a shorter log (the
		// node compares it with its state's applied index).
		{"tail segment cut", truncate(name(len(segs)-1), func(int64) int64 { return 300 }), "", 620},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "raft")
			copyTree(t, base, dir)
			if err := tc.damage(dir); err != nil {
				t.Fatal(err)
			}
			l, err := OpenEngine(EngineWAL, Options{Dir: dir, SegmentSize: 64 << 10}, hclog.NewNullLogger())
			var last uint64
			if err == nil {
				_, last, err = Verify(l)
				_ = l.Close()
			}
			if tc.file == "" {
				if err != nil || last >= tc.lastBelow {
					t.Fatalf("open and verify after %s: last %d, %v; want a shorter log, no error", tc.name, last, err)
				}
				return
			}
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), tc.file) {
				t.Fatalf("open and verify after %s: %v, want ErrDamaged naming %s", tc.name, err, tc.file)
			}
			t.Logf("%s: %v", tc.name, err)
		})
	}
}
