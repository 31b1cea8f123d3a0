package node

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/cityhub/cityhub/tiers/fsm"
)

// applyCounts reads the sample count of each command label.
func applyCounts(t *testing.T, at *applyTimer) map[string]uint64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(at.vec)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, f := range fams {
		if f.GetName() != "cityhub_fsm_apply_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			out[label(m, "command")] = m.GetHistogram().GetSampleCount()
		}
	}
	return out
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// Each entry is observed under its command type's name; an invalid entry
// and a number this binary does not know have their own labels; every
// known type has its series from the start (no label resolved per entry).
func TestApplyTimerObservesByCommandType(t *testing.T) {
	at := newApplyTimer()
	for _, k := range []fsm.Kind{10, 10, 11, 23, 0, 999} {
		at.End(k, at.Begin())
	}
	got := applyCounts(t, at)
	for name, want := range map[string]uint64{"report": 2, "act": 1, "attach_evidence": 1, "invalid": 1, "unknown": 1, "deliver": 0} {
		n, ok := got[name]
		if !ok || n != want {
			t.Errorf("command=%q: %d observations (series present %v), want %d", name, n, ok, want)
		}
	}
	if len(got) != len(fsm.CommandTypes())+2 {
		t.Errorf("%d series, want one per command type and invalid, unknown: %v", len(got), got)
	}
}

// Timing an entry allocates nothing: the observers are resolved up front.
func TestApplyTimerDoesNotAllocate(t *testing.T) {
	at := newApplyTimer()
	if n := testing.AllocsPerRun(100, func() { at.End(11, at.Begin()) }); n != 0 {
		t.Fatalf("%v allocations per entry", n)
	}
}
