package raftlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func openTest(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(Options{Dir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func testLog(idx, term uint64) *raft.Log {
	return &raft.Log{
		Index:      idx,
		Term:       term,
		Type:       raft.LogCommand,
		Data:       []byte(fmt.Sprintf("data-%d", idx)),
		Extensions: []byte(fmt.Sprintf("ext-%d", idx)),
		AppendedAt: time.Unix(1_700_000_000, int64(idx)).UTC(),
	}
}

func storeRange(t testing.TB, s *Store, lo, hi uint64) {
	t.Helper()
	var logs []*raft.Log
	for i := lo; i <= hi; i++ {
		logs = append(logs, testLog(i, 1))
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatalf("StoreLogs(%d..%d): %v", lo, hi, err)
	}
}

func assertBounds(t testing.TB, s *Store, first, last uint64) {
	t.Helper()
	f, err := s.FirstIndex()
	if err != nil {
		t.Fatalf("FirstIndex: %v", err)
	}
	l, err := s.LastIndex()
	if err != nil {
		t.Fatalf("LastIndex: %v", err)
	}
	if f != first || l != last {
		t.Fatalf("bounds = [%d,%d], want [%d,%d]", f, l, first, last)
	}
}

func assertLogsEqual(t testing.TB, got, want *raft.Log) {
	t.Helper()
	if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type ||
		!bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) ||
		!got.AppendedAt.Equal(want.AppendedAt) {
		t.Fatalf("log mismatch:\n got  %+v\n want %+v", got, want)
	}
}

func assertPresent(t testing.TB, s *Store, lo, hi uint64) {
	t.Helper()
	for i := lo; i <= hi; i++ {
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		if l.Index != i {
			t.Fatalf("GetLog(%d) returned index %d", i, l.Index)
		}
	}
}

func assertAbsent(t testing.TB, s *Store, lo, hi uint64) {
	t.Helper()
	for i := lo; i <= hi; i++ {
		var l raft.Log
		if err := s.GetLog(i, &l); !errors.Is(err, raft.ErrLogNotFound) {
			t.Fatalf("GetLog(%d) = %v, want ErrLogNotFound", i, err)
		}
	}
}

func TestEmptyStore(t *testing.T) {
	s := openTest(t, t.TempDir())
	assertBounds(t, s, 0, 0)
	assertAbsent(t, s, 0, 3)
	if err := s.DeleteRange(1, 10); err != nil {
		t.Fatalf("DeleteRange on empty store: %v", err)
	}
	if err := s.StoreLogs(nil); err != nil {
		t.Fatalf("StoreLogs(nil): %v", err)
	}
	assertBounds(t, s, 0, 0)
}

func TestOpenRequiresDir(t *testing.T) {
	if _, err := Open(Options{}); err == nil {
		t.Fatal("Open without Dir succeeded")
	}
}

func TestStoreLogsRoundTrip(t *testing.T) {
	s := openTest(t, t.TempDir())
	logs := []*raft.Log{
		{Index: 1, Term: 1, Type: raft.LogConfiguration, Data: []byte("cfg"), AppendedAt: time.Now()},
		{Index: 2, Term: 1, Type: raft.LogNoop},
		{Index: 3, Term: 2, Type: raft.LogCommand, Data: []byte{0, 1, 2, 0xff}, Extensions: []byte("trace-id"),
			AppendedAt: time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.UTC)},
		{Index: 4, Term: 1<<64 - 1, Type: raft.LogBarrier, Data: bytes.Repeat([]byte("x"), 70_000),
			Extensions: bytes.Repeat([]byte{7}, 300)},
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	single := testLog(5, 3)
	if err := s.StoreLog(single); err != nil {
		t.Fatal(err)
	}
	logs = append(logs, single)
	assertBounds(t, s, 1, 5)
	for _, want := range logs {
		var got raft.Log
		if err := s.GetLog(want.Index, &got); err != nil {
			t.Fatalf("GetLog(%d): %v", want.Index, err)
		}
		assertLogsEqual(t, &got, want)
	}
	assertAbsent(t, s, 6, 6)

	// Overwriting an index (follower re-append after truncation) replaces it.
	repl := testLog(5, 9)
	repl.Data = []byte("replaced")
	if err := s.StoreLog(repl); err != nil {
		t.Fatal(err)
	}
	var got raft.Log
	if err := s.GetLog(5, &got); err != nil {
		t.Fatal(err)
	}
	assertLogsEqual(t, &got, repl)
	assertBounds(t, s, 1, 5)
}

func TestGetLogReturnedBuffersAreOwned(t *testing.T) {
	s := openTest(t, t.TempDir())
	storeRange(t, s, 1, 2)
	var a, b raft.Log
	if err := s.GetLog(1, &a); err != nil {
		t.Fatal(err)
	}
	if err := s.GetLog(2, &b); err != nil {
		t.Fatal(err)
	}
	if string(a.Data) != "data-1" || string(b.Data) != "data-2" {
		t.Fatalf("data aliased: %q %q", a.Data, b.Data)
	}
}

func TestLargeEntryGoesThroughValueLog(t *testing.T) {
	s := openTest(t, t.TempDir())
	big := &raft.Log{Index: 1, Term: 1, Type: raft.LogCommand, Data: bytes.Repeat([]byte("abcdefgh"), 512<<10)} // 4 MiB
	if err := s.StoreLog(big); err != nil {
		t.Fatal(err)
	}
	var got raft.Log
	if err := s.GetLog(1, &got); err != nil {
		t.Fatal(err)
	}
	assertLogsEqual(t, &got, big)
}

func TestStoreLogsSplitsWhenTxnTooBig(t *testing.T) {
	dir := t.TempDir()
	// 1 MiB memtable => ~150 KiB per transaction, so 200 x 8 KiB entries need
	// several transactions.
	s, err := Open(Options{Dir: dir, Logger: quietLogger(), MemTableSize: 1 << 20, ValueLogFileSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var logs []*raft.Log
	for i := uint64(1); i <= 200; i++ {
		l := testLog(i, 1)
		l.Data = bytes.Repeat([]byte{byte(i)}, 8<<10)
		logs = append(logs, l)
	}
	// Precondition: the batch really does not fit one badger transaction.
	txn := s.db.NewTransaction(true)
	var fitErr error
	for _, l := range logs {
		if fitErr = txn.Set(logKey(l.Index), encodeLog(l)); fitErr != nil {
			break
		}
	}
	txn.Discard()
	if !errors.Is(fitErr, badger.ErrTxnTooBig) {
		t.Fatalf("test batch fits in one txn (err %v); make it bigger", fitErr)
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatalf("StoreLogs: %v", err)
	}
	assertBounds(t, s, 1, 200)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(Options{Dir: dir, Logger: quietLogger(), MemTableSize: 1 << 20, ValueLogFileSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	assertBounds(t, s, 1, 200)
	for _, want := range logs {
		var got raft.Log
		if err := s.GetLog(want.Index, &got); err != nil {
			t.Fatalf("GetLog(%d): %v", want.Index, err)
		}
		assertLogsEqual(t, &got, want)
	}

	// An entry larger than a value-log file can never be stored.
	tooBig := &raft.Log{Index: 201, Term: 1, Data: make([]byte, 2<<20)}
	if err := s.StoreLog(tooBig); err == nil {
		t.Fatal("storing an entry larger than the value log file succeeded")
	}
	assertBounds(t, s, 1, 200)
}

func TestDeleteRangePrefix(t *testing.T) {
	s := openTest(t, t.TempDir())
	storeRange(t, s, 1, 100)
	// Log compaction after a snapshot: drop the head.
	if err := s.DeleteRange(1, 40); err != nil {
		t.Fatal(err)
	}
	assertBounds(t, s, 41, 100)
	assertAbsent(t, s, 1, 40)
	assertPresent(t, s, 41, 100)
	// A range starting below first (raft may use stale minimums) works too.
	if err := s.DeleteRange(0, 50); err != nil {
		t.Fatal(err)
	}
	assertBounds(t, s, 51, 100)
	// Appending after compaction keeps first.
	storeRange(t, s, 101, 110)
	assertBounds(t, s, 51, 110)
}

func TestDeleteRangeSuffix(t *testing.T) {
	s := openTest(t, t.TempDir())
	storeRange(t, s, 1, 100)
	// Conflict truncation on a follower: drop the tail, then re-append.
	if err := s.DeleteRange(61, 100); err != nil {
		t.Fatal(err)
	}
	assertBounds(t, s, 1, 60)
	assertAbsent(t, s, 61, 100)
	assertPresent(t, s, 1, 60)
	if err := s.DeleteRange(55, 1<<64-1); err != nil {
		t.Fatal(err)
	}
	assertBounds(t, s, 1, 54)
	storeRange(t, s, 55, 70)
	assertBounds(t, s, 1, 70)
}

func TestDeleteRangeMiddleAndAll(t *testing.T) {
	s := openTest(t, t.TempDir())
	storeRange(t, s, 10, 20)
	if err := s.DeleteRange(13, 15); err != nil {
		t.Fatal(err)
	}
	assertBounds(t, s, 10, 20)
	assertAbsent(t, s, 13, 15)
	assertPresent(t, s, 16, 20)
	if err := s.DeleteRange(5, 4); err != nil { // empty range
		t.Fatal(err)
	}
	assertBounds(t, s, 10, 20)
	if err := s.DeleteRange(0, 1<<64-1); err != nil {
		t.Fatal(err)
	}
	assertBounds(t, s, 0, 0)
	assertAbsent(t, s, 10, 20)
	// The store is reusable and a new log can start anywhere (snapshot install).
	storeRange(t, s, 500, 505)
	assertBounds(t, s, 500, 505)
}

func TestDeleteRangeLargeInChunks(t *testing.T) {
	s := openTest(t, t.TempDir())
	const n = 3*deleteChunk + 17
	for lo := uint64(1); lo <= n; lo += 1000 {
		storeRange(t, s, lo, min(lo+999, n))
	}
	assertBounds(t, s, 1, n)
	// Prefix, bottom-up.
	if err := s.DeleteRange(1, 2*deleteChunk+5); err != nil {
		t.Fatal(err)
	}
	assertBounds(t, s, 2*deleteChunk+6, n)
	// Add more and truncate a large suffix, top-down.
	for lo := uint64(n + 1); lo <= 2*n; lo += 1000 {
		storeRange(t, s, lo, min(lo+999, 2*n))
	}
	if err := s.DeleteRange(2*deleteChunk+10, 2*n); err != nil {
		t.Fatal(err)
	}
	assertBounds(t, s, 2*deleteChunk+6, 2*deleteChunk+9)
	assertPresent(t, s, 2*deleteChunk+6, 2*deleteChunk+9)
	assertAbsent(t, s, 2*deleteChunk+10, 2*deleteChunk+20)
	assertAbsent(t, s, 2*n-5, 2*n)
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	storeRange(t, s, 1, 50)
	if err := s.DeleteRange(1, 9); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(46, 50); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 42); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.LastIndex(); !errors.Is(err, ErrClosed) {
		t.Fatalf("LastIndex after Close = %v, want ErrClosed", err)
	}
	if err := s.StoreLog(testLog(51, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("StoreLog after Close = %v, want ErrClosed", err)
	}

	s = openTest(t, dir)
	assertBounds(t, s, 10, 45)
	assertAbsent(t, s, 1, 9)
	assertAbsent(t, s, 46, 50)
	for i := uint64(10); i <= 45; i++ {
		var got raft.Log
		if err := s.GetLog(i, &got); err != nil {
			t.Fatal(err)
		}
		assertLogsEqual(t, &got, testLog(i, 1))
	}
	if v, err := s.Get([]byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("Get(k) = %q, %v", v, err)
	}
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 42 {
		t.Fatalf("GetUint64 = %d, %v", v, err)
	}
}

func TestStableStore(t *testing.T) {
	s := openTest(t, t.TempDir())
	if err := s.Set([]byte("a"), []byte("alpha")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get([]byte("a")); err != nil || string(v) != "alpha" {
		t.Fatalf("Get(a) = %q, %v", v, err)
	}
	if err := s.Set([]byte("a"), []byte("beta")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get([]byte("a")); err != nil || string(v) != "beta" {
		t.Fatalf("Get(a) after overwrite = %q, %v", v, err)
	}
	for _, v := range []uint64{0, 1, 1 << 40, 1<<64 - 1} {
		if err := s.SetUint64([]byte("n"), v); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetUint64([]byte("n")); err != nil || got != v {
			t.Fatalf("GetUint64 = %d, %v; want %d", got, err, v)
		}
	}
	// Stable keys never collide with log keys.
	if err := s.Set([]byte("l\x00\x00\x00\x00\x00\x00\x00\x01"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	assertBounds(t, s, 0, 0)
	// A non-uint64 value is reported, not misread.
	if _, err := s.GetUint64([]byte("a")); err == nil {
		t.Fatal("GetUint64 on a 4-byte value succeeded")
	}
	// The caller may reuse its buffer after Set.
	buf := []byte("mutable")
	if err := s.Set([]byte("m"), buf); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXXXX")
	if v, _ := s.Get([]byte("m")); string(v) != "mutable" {
		t.Fatalf("stored value aliased caller buffer: %q", v)
	}
}

// TestStableStoreMatchesInmem checks the corner cases against raft's own
// InmemStore, whose behaviour hashicorp/raft is tested with.
func TestStableStoreMatchesInmem(t *testing.T) {
	s := openTest(t, t.TempDir())
	mem := raft.NewInmemStore()
	stores := map[string]raft.StableStore{"badger": s, "inmem": mem}

	for name, st := range stores {
		if err := st.Set([]byte("empty"), []byte{}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := st.Set([]byte("nil"), nil); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}

	type getRes struct {
		val   []byte
		isNil bool
		err   string
	}
	get := func(st raft.StableStore, k string) getRes {
		v, err := st.Get([]byte(k))
		r := getRes{val: v, isNil: v == nil}
		if err != nil {
			r.err = err.Error()
		}
		return r
	}
	for _, k := range []string{"missing", "empty", "nil"} {
		want, got := get(mem, k), get(s, k)
		if !bytes.Equal(want.val, got.val) || want.isNil != got.isNil || want.err != got.err {
			t.Errorf("Get(%q): badger = %+v, inmem = %+v", k, got, want)
		}
	}
	if _, err := s.Get([]byte("missing")); !errors.Is(err, ErrKeyNotFound) || err.Error() != "not found" {
		t.Errorf("Get(missing) err = %v, want ErrKeyNotFound (\"not found\")", err)
	}

	wantU, wantErr := mem.GetUint64([]byte("missing"))
	gotU, gotErr := s.GetUint64([]byte("missing"))
	if wantU != gotU || (wantErr == nil) != (gotErr == nil) {
		t.Errorf("GetUint64(missing): badger = %d, %v; inmem = %d, %v", gotU, gotErr, wantU, wantErr)
	}

	// What raft itself does with a fresh store: HasExistingState must be false.
	has, err := raft.HasExistingState(s, s, raft.NewInmemSnapshotStore())
	if err != nil || has {
		t.Fatalf("HasExistingState on fresh store = %v, %v", has, err)
	}
}

func TestCorruptLogReturnsError(t *testing.T) {
	s := openTest(t, t.TempDir())
	storeRange(t, s, 1, 1)
	good := encodeLog(testLog(2, 1))
	cases := map[uint64][]byte{
		2: good[:len(good)-3],                       // truncated
		3: {},                                       // empty
		4: append([]byte{99}, good[1:]...),          // unknown version
		5: append(append([]byte{}, good...), 0),     // trailing garbage
		6: encodeLog(testLog(600, 1)),               // index mismatch with key
		7: {logFormatV1, 7, 1, 0x80, 0x02, 0, 0, 0}, // type 256 out of range
	}
	err := s.db.Update(func(txn *badger.Txn) error {
		for idx, v := range cases {
			if err := txn.Set(logKey(idx), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for idx := range cases {
		var l raft.Log
		err := s.GetLog(idx, &l)
		if err == nil || errors.Is(err, raft.ErrLogNotFound) {
			t.Errorf("GetLog(%d) on corrupt value = %v, want a corruption error", idx, err)
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("GetLog(%d) error %v does not wrap ErrCorrupt", idx, err)
		}
	}
	assertPresent(t, s, 1, 1)
}

func TestDecodeLogRejectsEveryTruncation(t *testing.T) {
	enc := encodeLog(testLog(1<<40, 1<<33))
	for n := 0; n < len(enc); n++ {
		var l raft.Log
		if err := decodeLog(enc[:n], &l); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decodeLog(prefix %d/%d) = %v, want ErrCorrupt", n, len(enc), err)
		}
	}
	var l raft.Log
	if err := decodeLog(enc, &l); err != nil {
		t.Fatal(err)
	}
	assertLogsEqual(t, &l, testLog(1<<40, 1<<33))
	// Huge declared length must not allocate or panic.
	bad := []byte{logFormatV1, 1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}
	if err := decodeLog(bad, &l); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("huge length: %v", err)
	}
}

func TestEncodeZeroAppendedAt(t *testing.T) {
	in := &raft.Log{Index: 1, Term: 1}
	var out raft.Log
	if err := decodeLog(encodeLog(in), &out); err != nil {
		t.Fatal(err)
	}
	if !out.AppendedAt.IsZero() || out.Data != nil || out.Extensions != nil {
		t.Fatalf("zero fields not preserved: %+v", out)
	}
}

func FuzzDecodeLog(f *testing.F) {
	f.Add(encodeLog(testLog(1, 1)))
	f.Add(encodeLog(&raft.Log{}))
	f.Add(encodeLog(&raft.Log{Index: 1<<64 - 1, Term: 1<<64 - 1, Type: raft.LogBarrier,
		Data: []byte{0}, Extensions: []byte{1, 2}, AppendedAt: time.Unix(0, -1)}))
	f.Add([]byte{})
	f.Add([]byte{logFormatV1})
	f.Add([]byte{logFormatV1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		var l raft.Log
		if err := decodeLog(b, &l); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		// Anything accepted must survive a re-encode round trip.
		var again raft.Log
		if err := decodeLog(encodeLog(&l), &again); err != nil {
			t.Fatalf("re-decode of accepted input failed: %v", err)
		}
		assertLogsEqual(t, &again, &l)
	})
}

func TestConcurrentReadersAndWriter(t *testing.T) {
	s := openTest(t, t.TempDir())
	storeRange(t, s, 1, 10)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				first, _ := s.FirstIndex()
				last, _ := s.LastIndex()
				if first > 0 && last > 0 && first > last {
					t.Errorf("first %d > last %d", first, last)
					return
				}
				var l raft.Log
				if err := s.GetLog(last, &l); err != nil && !errors.Is(err, raft.ErrLogNotFound) {
					t.Errorf("GetLog: %v", err)
					return
				}
			}
		}()
	}
	for i := uint64(11); i <= 200; i += 10 {
		storeRange(t, s, i, i+9)
		if err := s.DeleteRange(i-10, i-1); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	wg.Wait()
	assertBounds(t, s, 191, 200)
}

func TestRunGCStops(t *testing.T) {
	s := openTest(t, t.TempDir())
	storeRange(t, s, 1, 100)
	if err := s.DeleteRange(1, 100); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.RunGC(ctx, time.Millisecond); close(done) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunGC did not stop after cancel")
	}

	// It also stops once the store is closed.
	done = make(chan struct{})
	go func() { s.RunGC(context.Background(), time.Millisecond); close(done) }()
	time.Sleep(10 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunGC did not stop after Close")
	}
}

// ---------------------------------------------------------------------------
// A real single-node raft on top of the store.

type countFSM struct{ n atomic.Int64 }

func (f *countFSM) Apply(*raft.Log) any { return f.n.Add(1) }

func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) {
	return countSnapshot(f.n.Load()), nil
}

func (f *countFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var n int64
	if _, err := fmt.Fscan(rc, &n); err != nil {
		return err
	}
	f.n.Store(n)
	return nil
}

type countSnapshot int64

func (c countSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := fmt.Fprint(sink, int64(c)); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (countSnapshot) Release() {}

func raftConfig() *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = "node-1"
	c.HeartbeatTimeout = 50 * time.Millisecond
	c.ElectionTimeout = 50 * time.Millisecond
	c.LeaderLeaseTimeout = 50 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.LogOutput = io.Discard
	c.LogLevel = "ERROR"
	return c
}

func waitLeader(t *testing.T, r *raft.Raft) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for r.State() != raft.Leader {
		if time.Now().After(deadline) {
			t.Fatalf("no leader after 10s (state %v)", r.State())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRaftSingleNode(t *testing.T) {
	dir := t.TempDir()
	store, err := Open(Options{Dir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	addr, trans := raft.NewInmemTransport("")
	conf := raftConfig()
	fsm := &countFSM{}
	r, err := raft.NewRaft(conf, fsm, store, store, raft.NewInmemSnapshotStore(), trans)
	if err != nil {
		t.Fatal(err)
	}
	boot := raft.Configuration{Servers: []raft.Server{{ID: conf.LocalID, Address: addr}}}
	if err := r.BootstrapCluster(boot).Error(); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	waitLeader(t, r)
	for i := 0; i < 100; i++ {
		if err := r.Apply([]byte(fmt.Sprintf("cmd-%d", i)), 5*time.Second).Error(); err != nil {
			t.Fatalf("Apply %d: %v", i, err)
		}
	}
	if got := fsm.n.Load(); got != 100 {
		t.Fatalf("fsm applied %d entries, want 100", got)
	}
	if err := r.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	_ = trans.Close()
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen from the same directory: the log and raft's term/vote survive.
	store = openTest(t, dir)
	last, err := store.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	if last < 100 {
		t.Fatalf("LastIndex after reopen = %d, want >= 100", last)
	}
	if term, err := store.GetUint64([]byte("CurrentTerm")); err != nil || term == 0 {
		t.Fatalf("CurrentTerm after reopen = %d, %v", term, err)
	}
	has, err := raft.HasExistingState(store, store, raft.NewInmemSnapshotStore())
	if err != nil || !has {
		t.Fatalf("HasExistingState after reopen = %v, %v", has, err)
	}

	// And raft restarts on it without bootstrapping, re-applying the log.
	_, trans2 := raft.NewInmemTransport(addr)
	fsm2 := &countFSM{}
	r2, err := raft.NewRaft(raftConfig(), fsm2, store, store, raft.NewInmemSnapshotStore(), trans2)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r2.Shutdown().Error(); _ = trans2.Close() }()
	waitLeader(t, r2)
	if err := r2.Barrier(5 * time.Second).Error(); err != nil {
		t.Fatalf("Barrier: %v", err)
	}
	if got := fsm2.n.Load(); got != 100 {
		t.Fatalf("restarted fsm replayed %d entries, want 100", got)
	}
}

// ---------------------------------------------------------------------------

func BenchmarkStoreLogs(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s := openTest(b, b.TempDir())
			payload := bytes.Repeat([]byte("p"), 256)
			logs := make([]*raft.Log, batch)
			next := uint64(1)
			b.SetBytes(int64(batch * len(payload)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range logs {
					logs[j] = &raft.Log{Index: next, Term: 1, Type: raft.LogCommand, Data: payload, AppendedAt: time.Now()}
					next++
				}
				if err := s.StoreLogs(logs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}
