package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/feed"
	"github.com/cityhub/cityhub/tiers/store"
)

// memSource is an in-memory store with a hand-moved apply signal.
type memSource struct {
	st *store.Store
	mu sync.Mutex
	ch chan struct{}
	n  int
}

func (s *memSource) Store() *store.Store { return s.st }

func (s *memSource) Applied() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

// write applies one change in a transaction of its own and signals it.
func (s *memSource) write(t *testing.T) {
	t.Helper()
	s.n++
	c := &pb.Case{Id: fmt.Sprintf("320582-20261203-%06d", s.n), State: pb.State_STATE_REPORTED, Version: 1}
	if err := s.st.Update(func(tx *store.Tx) error { return tx.PutCase(nil, c) }); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	close(s.ch)
	s.ch = make(chan struct{})
	s.mu.Unlock()
}

// TestWatchGathersABurst: with feed.batch_delay, changes applied one at a
// time after a first one go out in one message (here the delay is long,
// so the message closes when the page is full), not one message each.
func TestWatchGathersABurst(t *testing.T) {
	st, err := store.Open(store.Options{InMemory: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	src := &memSource{st: st, ch: make(chan struct{})}
	hub := feed.NewHub(src, feed.Options{})
	hub.Start()
	defer hub.Stop()
	f := newFeedServer(hub, nil, FeedOptions{Group: "320582", Heartbeat: time.Hour, BatchDelay: time.Hour}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	zero := uint64(0)
	wt, err := f.open(ctx, position{after: &zero}, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer wt.w.Close()
	msgs := make(chan *pb.WatchCasesResponse, 4)
	done := make(chan error, 1)
	go func() { done <- f.follow(ctx, wt, func(m *pb.WatchCasesResponse) error { msgs <- m; return nil }) }()
	for i := 0; i < feedPage; i++ {
		src.write(t)
	}
	select {
	case m := <-msgs:
		if len(m.Changes) != feedPage || m.Revision != feedPage || m.Heartbeat {
			t.Fatalf("first message: %d changes up to revision %d, want one message of %d", len(m.Changes), m.Revision, feedPage)
		}
	case err := <-done:
		t.Fatalf("follow ended: %v", err)
	case <-ctx.Done():
		t.Fatal("no message")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("follow after cancel: %v", err)
	}
}
