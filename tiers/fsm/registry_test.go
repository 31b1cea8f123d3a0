package fsm_test

import (
	"slices"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/cityhub/cityhub/tiers/fsm"
)

// kindRecorder is an EntryObserver that notes each entry's kind and checks
// that End gets Begin's value.
type kindRecorder struct {
	next  int64
	kinds []fsm.Kind
	bad   int
}

func (r *kindRecorder) Begin() int64 { r.next++; return r.next }

func (r *kindRecorder) End(k fsm.Kind, begin int64) {
	if begin != r.next {
		r.bad++
	}
	r.kinds = append(r.kinds, k)
}

// The observer is told of every command entry, with its body type: a
// report, an action, a registration, and an entry that is no command (0);
// entries applied before and configuration entries are not command
// entries.
func TestEntryObserverSeesEachCommandEntry(t *testing.T) {
	s := openStore(t)
	f := newFSM(t, s)
	rec := &kindRecorder{}
	f.ObserveEntries(rec)
	mustApply(t, f, 1, report("r1", stamp, "暴露垃圾"))
	mustApply(t, f, 2, registerNode("node-2"))
	res := result(t, f.Apply(entry(3, []byte{0xff, 0xff})))
	if res.Err == nil {
		t.Fatal("garbage applied")
	}
	f.ApplyBatch([]*raft.Log{
		{Index: 4, Term: 1, Type: raft.LogConfiguration},
		entry(2, encode(t, registerNode("node-3"))), // applied before: skipped
	})
	want := []fsm.Kind{10, 12, 0}
	if !slices.Equal(rec.kinds, want) {
		t.Fatalf("observed kinds %v, want %v", rec.kinds, want)
	}
	if rec.bad != 0 {
		t.Fatalf("%d End calls did not get their Begin's value", rec.bad)
	}
}
