package store_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/cityhub/cityhub/tiers/store"
)

// counters reads every counter under prefix.
func counters(tb testing.TB, s *store.Store, prefix string) map[string]int64 {
	tb.Helper()
	out := map[string]int64{}
	var keys []string
	if err := s.ScanCounters([]byte(prefix), func(k []byte, v int64) error {
		keys = append(keys, string(k))
		out[string(k)] = v
		return nil
	}); err != nil {
		tb.Fatalf("scan counters %q: %v", prefix, err)
	}
	if !slices.IsSorted(keys) {
		tb.Fatalf("scan of %q not in key order: %q", prefix, keys)
	}
	return out
}

func addCounters(tb testing.TB, s *store.Store, deltas ...any) {
	tb.Helper()
	if err := s.Update(func(tx *store.Tx) error {
		for i := 0; i < len(deltas); i += 2 {
			if err := tx.AddCounter([]byte(deltas[i].(string)), int64(deltas[i+1].(int))); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		tb.Fatalf("add counters: %v", err)
	}
}

func TestAddCounter(t *testing.T) {
	s := openMem(t)
	addCounters(t, s, "e/a\x00\x01", 3, "e/a\x00\x02", 1, "e/b\x00\x01", -2)
	addCounters(t, s, "e/a\x00\x01", 4, "e/a\x00\x02", 0) // a zero delta writes nothing
	want := map[string]int64{"e/a\x00\x01": 7, "e/a\x00\x02": 1, "e/b\x00\x01": -2}
	if got := counters(t, s, "e/"); !equalMaps(got, want) {
		t.Fatalf("counters = %v, want %v", got, want)
	}
	// Reaching zero deletes the key: no dead keys for reports to scan.
	addCounters(t, s, "e/a\x00\x02", -1, "e/b\x00\x01", 2)
	if got, want := counters(t, s, "e/"), map[string]int64{"e/a\x00\x01": 7}; !equalMaps(got, want) {
		t.Fatalf("after zeroing: %v, want %v", got, want)
	}
	if keys := keysWithPrefix(parseSnapshot(t, snapshotBytes(t, s)), "e/"); !slices.Equal(keys, []string{"e/a\x00\x01"}) {
		t.Fatalf("stored counter keys %q", keys)
	}
	// Extremes round-trip through the big-endian encoding.
	addCounters(t, s, "e/min", -1<<62, "e/max", 1<<62)
	if got := counters(t, s, "e/m"); got["e/min"] != -1<<62 || got["e/max"] != 1<<62 {
		t.Fatalf("extremes: %v", got)
	}
}

func TestAddCounterInOneTransaction(t *testing.T) {
	s := openMem(t)
	if err := s.Update(func(tx *store.Tx) error {
		for range 5 {
			if err := tx.AddCounter([]byte("e/x"), 2); err != nil {
				return err
			}
		}
		if v, err := tx.Counter([]byte("e/x")); err != nil || v != 10 {
			return fmt.Errorf("counter inside the transaction = %d, %v; want 10", v, err)
		}
		if err := tx.AddCounter([]byte("e/x"), -10); err != nil {
			return err
		}
		if v, err := tx.Counter([]byte("e/x")); err != nil || v != 0 {
			return fmt.Errorf("counter after zeroing = %d, %v; want 0", v, err)
		}
		return tx.AddCounter([]byte("e/y"), 1)
	}); err != nil {
		t.Fatal(err)
	}
	if got, want := counters(t, s, "e/"), map[string]int64{"e/y": 1}; !equalMaps(got, want) {
		t.Fatalf("counters = %v, want %v", got, want)
	}
	// A failed update adds nothing.
	boom := errors.New("boom")
	if err := s.Update(func(tx *store.Tx) error {
		if err := tx.AddCounter([]byte("e/y"), 5); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("update err = %v", err)
	}
	if got := counters(t, s, "e/"); got["e/y"] != 1 {
		t.Fatalf("failed update changed a counter: %v", got)
	}
}

func TestCountersStayInTheirFamily(t *testing.T) {
	s := openMem(t)
	putCase(t, s, nil, mkCase(caseID("110105", 1), 5, "unit-a", "110105001001001", t0))
	for _, k := range []string{"", "e", "e/", "k/05", "c/" + caseID("110105", 1), "E/x"} {
		err := s.Update(func(tx *store.Tx) error { return tx.AddCounter([]byte(k), 1) })
		if !errors.Is(err, store.ErrNotCounterKey) {
			t.Errorf("AddCounter(%q) = %v, want ErrNotCounterKey", k, err)
		}
	}
	for _, p := range []string{"", "k/", "c/", "e"} {
		err := s.ScanCounters([]byte(p), func([]byte, int64) error { t.Fatalf("scan %q visited a key", p); return nil })
		if !errors.Is(err, store.ErrNotCounterKey) {
			t.Errorf("ScanCounters(%q) = %v, want ErrNotCounterKey", p, err)
		}
	}
	if got := counters(t, s, "e/"); len(got) != 0 {
		t.Fatalf("counters: %v", got)
	}
}

func TestScanCountersPrefixAndStop(t *testing.T) {
	s := openMem(t)
	addCounters(t, s, "e/w1u\x00\x01", 1, "e/w1ua\x00\x01", 2, "e/w1r\x00\x01", 3, "e/w2u\x00\x01", 4, "e/w1u\x00\x02", 5)
	got := counters(t, s, "e/w1u")
	want := map[string]int64{"e/w1u\x00\x01": 1, "e/w1u\x00\x02": 5, "e/w1ua\x00\x01": 2}
	if !equalMaps(got, want) {
		t.Fatalf("scan e/w1u = %v, want %v", got, want)
	}
	stop := errors.New("stop")
	n := 0
	err := s.ScanCounters([]byte("e/"), func([]byte, int64) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Fatalf("scan stopped with %v after %d keys, want stop after 2", err, n)
	}
}

func equalMaps(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
