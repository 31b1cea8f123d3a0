package relay

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/store"
)

// fakeLocal stands for the sending node's group: a leader with an
// in-memory store; a trim is applied to the store (the tests read the
// marks), anything else proposed is recorded.
type fakeLocal struct {
	st       *store.Store
	mu       sync.Mutex
	proposed []*pb.Command
}

func (f *fakeLocal) IsLeader() bool { return true }
func (f *fakeLocal) Now() time.Time { return time.Now() }
func (f *fakeLocal) ApplyLocal(_ context.Context, cmd *pb.Command) (*fsm.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.proposed = append(f.proposed, cmd)
	if t := cmd.GetTrimOutbox(); t != nil {
		return &fsm.Result{}, f.st.Update(func(tx *store.Tx) error { _, err := tx.Trim(t.Link, t.Upto); return err })
	}
	return &fsm.Result{}, nil
}
func (f *fakeLocal) Applied() <-chan struct{} { return make(chan struct{}) }
func (f *fakeLocal) Store() *store.Store      { return f.st }

func testLocal(t *testing.T) *fakeLocal {
	t.Helper()
	st, err := store.Open(store.Options{InMemory: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &fakeLocal{st: st}
}

// lead runs r as its node's leader job would (node.AddLeaderJob) for one
// term that lasts until the test ends, then closes it.
func lead(t *testing.T, r *Relay) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Lead(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		r.Close()
	})
}
