package reconcile

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/store"
)

// refusingLeader leads, reads a real (in-memory) store and refuses every
// command: a resumed run fails when it records its end.
type refusingLeader struct{ st *store.Store }

var errRefused = errors.New("refused by the test")

func (l refusingLeader) IsLeader() bool { return true }
func (l refusingLeader) ApplyLocal(context.Context, *pb.Command) (*fsm.Result, error) {
	return nil, errRefused
}
func (l refusingLeader) Applied() <-chan struct{} { return make(chan struct{}) }
func (l refusingLeader) Store() *store.Store      { return l.st }
func (l refusingLeader) Now() time.Time           { return time.Now() }

// countingHandler counts the records of one message at Info or above.
type countingHandler struct {
	msg string
	mu  sync.Mutex
	n   int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg && r.Level >= slog.LevelInfo {
		h.mu.Lock()
		h.n++
		h.mu.Unlock()
	}
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

func (h *countingHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// storeWithRuns is an in-memory store holding runs.
func storeWithRuns(t *testing.T, runs ...*pb.ReconcileRun) *store.Store {
	t.Helper()
	st, err := store.Open(store.Options{InMemory: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Update(func(tx *store.Tx) error {
		for _, run := range runs {
			if err := tx.PutReconcileRun(run); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestResumeAnnouncedOncePerRun: while a run is going on (a user's run is
// unfinished until it ends) the follow loop's resumption says nothing and
// leaves it alone; a run left unfinished is announced at Info once, however
// often its resumption fails and is tried again.
func TestResumeAnnouncedOncePerRun(t *testing.T) {
	st := storeWithRuns(t, &pb.ReconcileRun{RunId: "city-20261123T090000Z", Node: "city", StartedUnixMs: 1})
	h := &countingHandler{msg: "resuming a reconciliation run left unfinished"}
	r := New(Options{Self: "city", Topology: sampleTopology(t), Owners: fixedOwners{}, Local: refusingLeader{st},
		FollowInterval: time.Second, Logger: slog.New(h)})
	ctx := context.Background()

	// A run in progress holds r.running: every follow interval finds its
	// run unfinished, and must neither announce nor try it.
	r.running.Lock()
	for range 5 {
		if err := r.resumeUnfinished(ctx); !errors.Is(err, ErrRunning) {
			t.Fatalf("with a run in progress: %v, want ErrRunning", err)
		}
	}
	r.running.Unlock()
	if n := h.count(); n != 0 {
		t.Fatalf("announced %d resumptions while the run was going on, want 0", n)
	}

	// Left unfinished: resumed, failing each time (the test refuses every
	// command), announced once.
	for i := range 3 {
		if err := r.resumeUnfinished(ctx); !errors.Is(err, errRefused) {
			t.Fatalf("resumption %d: %v, want the refusal", i+1, err)
		}
	}
	if n := h.count(); n != 1 {
		t.Errorf("announced %d times over 3 attempts at one run, want once", n)
	}
	// Another run left unfinished is announced in its turn.
	if err := st.Update(func(tx *store.Tx) error {
		if err := tx.PutReconcileRun(&pb.ReconcileRun{RunId: "city-20261123T090000Z", Node: "city", Finished: true}); err != nil {
			return err
		}
		return tx.PutReconcileRun(&pb.ReconcileRun{RunId: "city-20261124T090000Z", Node: "city", StartedUnixMs: 2})
	}); err != nil {
		t.Fatal(err)
	}
	if err := r.resumeUnfinished(ctx); !errors.Is(err, errRefused) {
		t.Fatalf("second run: %v", err)
	}
	if n := h.count(); n != 2 {
		t.Errorf("announced %d times over two runs, want 2", n)
	}
}

// TestIdleResumeCheckLeavesTheRunLockAlone: with no run left unfinished
// (a finished run, and the follow run, which never finishes), the follow
// loop's look for one never takes the run's lock: a user's Reconcile that
// came while the look held it would be refused as if a run were in
// progress.
func TestIdleResumeCheckLeavesTheRunLockAlone(t *testing.T) {
	st := storeWithRuns(t,
		&pb.ReconcileRun{RunId: "city-20261123T090000Z", Node: "city", StartedUnixMs: 1, Finished: true},
		&pb.ReconcileRun{RunId: FollowRun, Node: "city", StartedUnixMs: 2})
	r := New(Options{Self: "city", Topology: sampleTopology(t), Owners: fixedOwners{}, Local: refusingLeader{st},
		FollowInterval: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	// The lock is held (as by a user's run that has just begun): a check
	// that does not take it answers nothing to resume, where one that
	// tried it would answer ErrRunning.
	r.running.Lock()
	for range 5 {
		if err := r.resumeUnfinished(context.Background()); err != nil {
			t.Fatalf("nothing unfinished, the run's lock held elsewhere: %v, want nil (the check must not contend for the lock)", err)
		}
	}
	r.running.Unlock()
	if !r.running.TryLock() {
		t.Fatal("the run's lock is held after the checks")
	}
	r.running.Unlock()
}
