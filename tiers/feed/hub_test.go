package feed_test

import (
	"bytes"
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

// source is a store with the node's apply signal, moved by hand.
type source struct {
	st *store.Store
	mu sync.Mutex
	ch chan struct{}
	n  int // cases written
}

func newSource(tb testing.TB, o store.FeedOptions) *source {
	tb.Helper()
	st, err := store.Open(store.Options{InMemory: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Feed: o})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	return &source{st: st, ch: make(chan struct{})}
}

func (s *source) Store() *store.Store { return s.st }

func (s *source) Applied() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

// report writes n new cases in one transaction, each a command of its
// own as the state machine applies them (n changes, each a page), and
// signals.
func (s *source) report(tb testing.TB, n int) {
	tb.Helper()
	err := s.st.Update(func(tx *store.Tx) error {
		for i := 0; i < n; i++ {
			s.n++
			tx.SetChangeContext(uint64(s.n), 0)
			c := &pb.Case{Id: fmt.Sprintf("320582-20260501-%06d", s.n), State: pb.State_STATE_REPORTED, GridCode: "320582110152102", Version: 1}
			if err := tx.PutCase(nil, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	s.signal()
}

// signal is the node's apply signal.
func (s *source) signal() {
	s.mu.Lock()
	close(s.ch)
	s.ch = make(chan struct{})
	s.mu.Unlock()
}

func startHub(tb testing.TB, s *source, o feed.Options) *feed.Hub {
	tb.Helper()
	h := feed.NewHub(s, o)
	h.Start()
	tb.Cleanup(h.Stop)
	return h
}

// collect reads from w until it has want changes (a generous bound).
func collect(tb testing.TB, w *feed.Watcher, want int) []*pb.CaseChange {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*pb.CaseChange
	for len(out) < want {
		page, err := w.Next(ctx, 100, 0)
		if err != nil {
			tb.Fatalf("after %d of %d changes: %v", len(out), want, err)
		}
		out = append(out, page...)
	}
	return out
}

func checkOrder(tb testing.TB, got []*pb.CaseChange, from uint64) {
	tb.Helper()
	for i, ch := range got {
		if ch.Revision != from+uint64(i) {
			tb.Fatalf("change %d has revision %d, want %d", i, ch.Revision, from+uint64(i))
		}
	}
}

// TestWatcherFollowsFromAnyPosition: a watcher from an old position reads
// the store until it reaches the ring, then follows new changes as they
// are applied; every change comes once, in order.
func TestWatcherFollowsFromAnyPosition(t *testing.T) {
	s := newSource(t, store.FeedOptions{})
	s.report(t, 300)
	h := startHub(t, s, feed.Options{Buffer: 64})
	w, err := h.Watch(10)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	got := collect(t, w, 290)
	checkOrder(t, got, 11)
	if len(got) != 290 || w.Position() != 300 {
		t.Fatalf("%d changes up to %d, want 290 up to 300", len(got), w.Position())
	}
	// Nothing new: the wait ends empty.
	if page, err := w.Next(context.Background(), 10, 20*time.Millisecond); err != nil || len(page) != 0 {
		t.Fatalf("next with nothing new = %v, %v", page, err)
	}
	done := make(chan []*pb.CaseChange)
	go func() {
		page, _ := w.Next(context.Background(), 10, 0)
		done <- page
	}()
	s.report(t, 3)
	select {
	case page := <-done:
		checkOrder(t, page, 301)
		if len(page) != 3 {
			t.Fatalf("woken with %d changes, want 3", len(page))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a waiting watcher was not woken by the apply signal")
	}
}

// TestSlowWatcherIsCutOff: a watcher that had caught up and falls further
// behind than the buffer is cut off with its position; a new watcher from
// that position gets the rest (from the store).
func TestSlowWatcherIsCutOff(t *testing.T) {
	s := newSource(t, store.FeedOptions{})
	h := startHub(t, s, feed.Options{Buffer: 64})
	w, err := h.Watch(0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	s.report(t, 5)
	collect(t, w, 5)
	s.report(t, 200)
	testWaitHead(t, h, 205)
	_, err = w.Next(context.Background(), 10, 0)
	var se *feed.SlowError
	if !errors.As(err, &se) || !errors.Is(err, feed.ErrSlowWatcher) || se.Position != 5 || se.Head != 205 {
		t.Fatalf("slow watcher: %v, want ErrSlowWatcher at position 5 of 205", err)
	}
	if h.Cutoffs() != 1 {
		t.Fatalf("cutoffs = %d, want 1", h.Cutoffs())
	}
	again, err := h.Watch(se.Position)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	checkOrder(t, collect(t, again, 200), 6)
}

func testWaitHead(tb testing.TB, h *feed.Hub, want uint64) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for h.Head() < want {
		if time.Now().After(deadline) {
			tb.Fatalf("hub head %d, want %d", h.Head(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWatchRefusals: a compacted position, too many watchers, a stopped hub.
func TestWatchRefusals(t *testing.T) {
	s := newSource(t, store.FeedOptions{Window: 10})
	s.report(t, 30)
	h := startHub(t, s, feed.Options{Buffer: 64, MaxWatchers: 2})
	_, err := h.Watch(5)
	var ce *store.CompactedError
	if !errors.As(err, &ce) || ce.Oldest != 21 || ce.Head != 30 {
		t.Fatalf("watch from 5 = %v, want compacted (oldest 21, head 30)", err)
	}
	a, err := h.Watch(20)
	if err != nil {
		t.Fatalf("watch from just before the oldest: %v", err)
	}
	b, err := h.Watch(99) // a position this replica has not reached: it waits
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Watch(30); !errors.Is(err, feed.ErrTooManyWatchers) {
		t.Fatalf("third watcher of 2: %v", err)
	}
	b.Close()
	b.Close() // twice is once
	c, err := h.Watch(30)
	if err != nil {
		t.Fatalf("a watcher after one closed: %v", err)
	}
	checkOrder(t, collect(t, a, 10), 21)
	h.Stop()
	if _, err := c.Next(context.Background(), 10, 0); !errors.Is(err, feed.ErrClosed) {
		t.Fatalf("next on a stopped hub: %v", err)
	}
}

// TestFanOutSharesOneReader: many watchers follow the same writes
// concurrently, each gets every change once in order.
func TestFanOutSharesOneReader(t *testing.T) {
	s := newSource(t, store.FeedOptions{})
	h := startHub(t, s, feed.Options{Buffer: 4096})
	const watchers, batches, per = 20, 50, 10
	var wg sync.WaitGroup
	errs := make(chan error, watchers)
	for i := 0; i < watchers; i++ {
		w, err := h.Watch(0)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			next := uint64(1)
			for next <= batches*per {
				page, err := w.Next(ctx, 7, 0)
				if err != nil {
					errs <- err
					return
				}
				for _, ch := range page {
					if ch.Revision != next {
						errs <- fmt.Errorf("got revision %d, want %d", ch.Revision, next)
						return
					}
					next++
				}
			}
		}()
	}
	for i := 0; i < batches; i++ {
		s.report(t, per)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := h.Watchers(); n != 0 {
		t.Fatalf("%d watchers left open", n)
	}
}

func TestResumeToken(t *testing.T) {
	tok := feed.Token("d-320505", 42)
	if rev, err := feed.ParseToken("d-320505", tok); err != nil || rev != 42 {
		t.Fatalf("round trip = %d, %v", rev, err)
	}
	for name, bad := range map[string]string{
		"other node": feed.Token("d-320506", 42),
		"not base64": "%%%",
		"not ours":   "Y2YyOmQtMzIwNTA1OjQy", // cf2:d-320505:42
		"no number":  feed.Token("d-320505", 0)[:10],
	} {
		if _, err := feed.ParseToken("d-320505", bad); !errors.Is(err, feed.ErrBadToken) {
			t.Errorf("%s: %v, want ErrBadToken", name, err)
		}
	}
}

func TestFilterMatch(t *testing.T) {
	ch := &pb.CaseChange{CaseId: "x", State: pb.State_STATE_DISPATCHED, Holder: "c-1", OwnerUnit: "u1", GridCode: "320582110152102", Overdue: true}
	for _, tc := range []struct {
		f    feed.Filter
		want bool
	}{
		{feed.Filter{}, true},
		{feed.Filter{Holder: "c-1", States: []pb.State{pb.State_STATE_FILED, pb.State_STATE_DISPATCHED}, Overdue: true, GridPrefix: "3205821", OwnerUnit: "u1"}, true},
		{feed.Filter{Holder: "c-2"}, false},
		{feed.Filter{States: []pb.State{pb.State_STATE_FILED}}, false},
		{feed.Filter{GridPrefix: "3205822"}, false},
		{feed.Filter{OwnerUnit: "u2"}, false},
		{feed.Filter{Scope: func(c *pb.Case) bool { return c.OwnerUnit == "u1" }}, true},
		{feed.Filter{Scope: func(c *pb.Case) bool { return c.OwnerUnit == "u2" }}, false},
	} {
		if got := tc.f.Match(ch); got != tc.want {
			t.Errorf("%+v matches = %v, want %v", tc.f, got, tc.want)
		}
	}
	if (feed.Filter{Overdue: true}).Match(&pb.CaseChange{}) {
		t.Error("overdue filter passed a change that is not overdue")
	}
}

// TestCommitsReachTheRingWithoutAStoreRead: the ring follows the commits
// the store hands it (store.OnChanges): after the hub has read what the
// store held when it started, a hundred commits reach a watcher, in
// order, with no read of the store. A store that moves without handing
// its changes over (a restore from a snapshot that holds more) is read.
func TestCommitsReachTheRingWithoutAStoreRead(t *testing.T) {
	s := newSource(t, store.FeedOptions{})
	s.report(t, 5)
	h := startHub(t, s, feed.Options{Buffer: 4096})
	w, err := h.Watch(0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	checkOrder(t, collect(t, w, 5), 1)
	reads := h.StoreReads()
	if reads == 0 {
		t.Fatal("the hub did not read the changes the store held when it started")
	}
	for i := 0; i < 100; i++ {
		s.report(t, 1)
	}
	checkOrder(t, collect(t, w, 100), 6)
	if n := h.StoreReads(); n != reads {
		t.Fatalf("the hub read the store %d more times for 100 commits it was handed", n-reads)
	}

	// A store of 150 changes, restored into the hub's (105 changes).
	other := newSource(t, store.FeedOptions{})
	other.report(t, 150)
	sn, err := other.st.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, err = sn.WriteTo(&buf)
	sn.Release()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.st.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	s.signal()
	checkOrder(t, collect(t, w, 45), 106)
	if n := h.StoreReads(); n == reads {
		t.Fatal("the hub followed a restore without reading the store")
	}
}
