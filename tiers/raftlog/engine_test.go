package raftlog

import (
	"fmt"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// A follower whose log suffix raft clears (a new leader's log disagrees
// after a leader change) must reopen its log after a crash: raft-wal
// before v0.4.1 marked the truncated segment sealed without writing its
// index block, and the restart panicked in raft.NewRaft with "sealed
// segment has no index block" (hashicorp/raft-wal#31).
func TestWALReopensAfterTailTruncation(t *testing.T) {
	dir := t.TempDir()
	open := func() Log {
		t.Helper()
		l, err := OpenEngine(EngineWAL, Options{Dir: dir}, hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	l := open()
	var logs []*raft.Log
	for i := uint64(1); i <= 20; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte(fmt.Sprint("entry ", i))})
	}
	if err := l.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	// raft's "clearing log suffix": the last entries go, newer ones follow.
	if err := l.DeleteRange(18, 20); err != nil {
		t.Fatal(err)
	}
	if err := l.StoreLogs([]*raft.Log{{Index: 18, Term: 2, Type: raft.LogCommand, Data: []byte("new 18")}}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = open()
	defer l.Close()
	for i := uint64(1); i <= 18; i++ {
		var got raft.Log
		if err := l.GetLog(i, &got); err != nil {
			t.Fatalf("entry %d after reopening: %v", i, err)
		}
		if want := uint64(1 + i/18); got.Term != want {
			t.Fatalf("entry %d has term %d, want %d", i, got.Term, want)
		}
	}
	if last, err := l.LastIndex(); err != nil || last != 18 {
		t.Fatalf("last index %d (%v), want 18", last, err)
	}
}
