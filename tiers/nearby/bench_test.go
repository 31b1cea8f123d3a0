package nearby

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

// BenchmarkDuplicatesDenseWindow is one report's duplicate look-up in a
// busy grid: 20,000 open cases of its class at its place inside the
// window (the index is in the store's memory), of which the
// look-up visits the newest 64.
func BenchmarkDuplicatesDenseWindow(b *testing.B) {
	st, err := store.Open(store.Options{InMemory: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	const lat, lng, n = 31.30, 120.60, 20_000
	for start := 0; start < n; start += 1000 {
		if err := st.Update(func(tx *store.Tx) error {
			for i := start; i < start+1000; i++ {
				c := mk(fmt.Sprintf("320582-20261123-%06d", i), pb.State_STATE_REPORTED, "02", lat, lng, time.Duration(n-i)*time.Second, 0)
				if err := tx.PutCase(nil, c); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	f := New(Options{Radius: 50, DuplicateWindow: 72 * time.Hour, RecurrenceWindow: 30 * 24 * time.Hour})
	f.SetStore(st)
	c := mk("320582-20261123-999999", pb.State_STATE_REPORTED, "02", lat, lng, 0, 0)
	for b.Loop() {
		if got := f.Duplicates(c, now); len(got) != maxCandidates {
			b.Fatalf("%d duplicates, want %d", len(got), maxCandidates)
		}
	}
}
