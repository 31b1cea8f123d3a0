package node

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityhub/cityhub/tiers/fsm"
)

// applySecondsBuckets cover an entry's processing: tens of microseconds
// for a report to a second for a large batch (an import, a delivery).
var applySecondsBuckets = []float64{.00002, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}

// applyTimer times each command entry the state machine processes, by
// command type (cityhub_fsm_apply_seconds{command="report"}): the
// fsm.EntryObserver tiers/node injects, so the clock is read here and never
// inside the state machine. The time is the entry's own processing inside
// its batch's transaction; the commit of the transaction is
// cityhub_raft_fsm_apply_batch_seconds. The observer of each type is
// resolved once, so an entry costs two clock reads and no allocation.
type applyTimer struct {
	vec  *prometheus.HistogramVec
	base time.Time
	// byKind holds the observer of each known type, indexed by its body
	// number; other is for numbers this binary does not know, invalid
	// for entries that are no valid command.
	byKind         []prometheus.Observer
	other, invalid prometheus.Observer
}

var _ fsm.EntryObserver = (*applyTimer)(nil)

func newApplyTimer() *applyTimer {
	vec := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "cityhub_fsm_apply_seconds",
		Help:    "Time the state machine takes to process one committed command entry, by command type (invalid: an entry that is no valid command).",
		Buckets: applySecondsBuckets,
	}, []string{"command"})
	t := &applyTimer{vec: vec, base: time.Now()}
	types := fsm.CommandTypes()
	t.byKind = make([]prometheus.Observer, int(types[len(types)-1].Kind)+1)
	for _, ct := range types {
		t.byKind[ct.Kind] = vec.WithLabelValues(ct.Name)
	}
	t.invalid = vec.WithLabelValues(fsm.Kind(0).String())
	t.other = vec.WithLabelValues("unknown")
	return t
}

// Begin is the time since base (monotonic), in nanoseconds.
func (t *applyTimer) Begin() int64 { return int64(time.Since(t.base)) }

// End observes the entry's time under its type.
func (t *applyTimer) End(kind fsm.Kind, begin int64) {
	d := time.Duration(int64(time.Since(t.base)) - begin)
	t.observer(kind).Observe(d.Seconds())
}

func (t *applyTimer) observer(kind fsm.Kind) prometheus.Observer {
	switch {
	case kind == 0:
		return t.invalid
	case int(kind) < len(t.byKind) && t.byKind[kind] != nil:
		return t.byKind[kind]
	}
	return t.other
}
