package store

import (
	"errors"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// TestTreeEntriesHoldNoPointer: the collector skips a node's entries only
// while an entry has no pointer in it (memEntry, the digests' digEntry);
// so do the nearby lists' arrays.
func TestTreeEntriesHoldNoPointer(t *testing.T) {
	var check func(typ reflect.Type, path string)
	check = func(typ reflect.Type, path string) {
		for i := range typ.NumField() {
			switch f := typ.Field(i); f.Type.Kind() {
			case reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Int32, reflect.Int64, reflect.Float64, reflect.Bool:
			case reflect.Struct:
				check(f.Type, path+"."+f.Name)
			default:
				t.Errorf("%s.%s is a %s: the collector would read every entry of the tree", path, f.Name, f.Type)
			}
		}
	}
	check(reflect.TypeFor[memEntry](), "memEntry")
	check(reflect.TypeFor[digEntry](), "digEntry")
	check(reflect.TypeFor[nearRec](), "nearRec") // the nearby lists' entries (nearcache.go)
}

// TestLongEntriesHaveBlocksOfTheirOwn: a key or value too long to share a
// block gets one of its own, read back whole, retired once the entry is
// deleted; a key and value longer than a block are refused, and a key
// longer than any entry is found nowhere and sought past correctly.
func TestLongEntriesHaveBlocksOfTheirOwn(t *testing.T) {
	s := openNearTest(t, t.TempDir())
	defer s.Close()
	longKey := "u/" + strings.Repeat("k", 3000) + "\x00110105-20261123-000001"
	longVal := strings.Repeat("v", 600)
	// edge: a key exactly a block long, and the key just after it.
	edge := "u/" + strings.Repeat("m", memBlockSize-2)
	after := "u/n"
	before := heldBlocks(s)
	if err := s.Update(func(tx *Tx) error {
		for _, kv := range [][2]string{{longKey, ""}, {"g/110105000000001/x", longVal}, {edge, ""}, {after, ""}} {
			if err := tx.set([]byte(kv[0]), []byte(kv[1])); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	own := slices.DeleteFunc(heldBlocks(s), func(n uint32) bool { return slices.Contains(before, n) || n == s.mem.slab.n })
	if len(own) != 3 {
		t.Fatalf("%d blocks of their own held, want 3 (two long keys, one long value)", len(own))
	}
	// A failed transaction's long entry leaves no block held.
	held := heldBlocks(s)
	errFail := errors.New("fail")
	if err := s.Update(func(tx *Tx) error {
		if err := tx.set([]byte(longKey+"2"), nil); err != nil {
			return err
		}
		return errFail
	}); !errors.Is(err, errFail) {
		t.Fatal(err)
	}
	if got := heldBlocks(s); !slices.Equal(got, held) {
		t.Errorf("a failed transaction's long entry: blocks held %v, want %v", got, held)
	}
	tooLong := "u/" + strings.Repeat("z", memBlockSize)
	err := s.Update(func(tx *Tx) error { return tx.set([]byte(tooLong), nil) })
	if !errors.Is(err, badger.ErrInvalidRequest) {
		t.Fatalf("a key longer than a block: %v, want ErrInvalidRequest", err)
	}
	beyond := edge + "z" // longer than any entry; edge is its first memBlockSize bytes
	if err := s.View(func(tx *Tx) error {
		for k, want := range map[string]string{longKey: "", "g/110105000000001/x": longVal, edge: ""} {
			item, err := tx.get([]byte(k))
			if err != nil {
				t.Fatalf("get a key of %d bytes: %v", len(k), err)
			}
			v, _ := item.ValueCopy(nil)
			if string(item.Key()) != k || string(v) != want {
				t.Errorf("a key of %d bytes read back as %d bytes, value %d bytes (want %d)", len(k), len(item.Key()), len(v), len(want))
			}
		}
		for _, k := range []string{tooLong, beyond} {
			if _, err := tx.get([]byte(k)); !errors.Is(err, badger.ErrKeyNotFound) {
				t.Errorf("get a key of %d bytes no entry has: %v", len(k), err)
			}
		}
		for _, reverse := range []bool{false, true} {
			it := tx.iterator(badger.IteratorOptions{Prefix: []byte(pfxByUnit), Reverse: reverse})
			it.Seek([]byte(beyond))
			got := ""
			if it.Valid() {
				got = string(it.Item().Key())
			}
			it.Close()
			want := after // the first key after beyond
			if reverse {
				want = edge // the last key before it
			}
			if got != want {
				t.Errorf("reverse %v: seek past the longest key landed on a key of %d bytes, want %d", reverse, len(got), len(want))
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx *Tx) error {
		for _, k := range []string{longKey, "g/110105000000001/x", edge} {
			if err := tx.del([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, n := range own {
		if slices.Contains(heldBlocks(s), n) {
			t.Errorf("block %d still held once its only entry is deleted", n)
		}
	}
	// No reader holds a tree from before: the numbers are unbound once the
	// collector has freed the pin they were retired under.
	if !collectUntil(func() bool { blocks.reclaim(); return !slices.ContainsFunc(own, bound) }) {
		t.Errorf("the blocks of deleted long entries are still bound")
	}
}

// TestProbersComeBack: a prober never given back returns its block to the
// free ones once the collector frees it, and the next probers take them
// instead of binding new blocks.
func TestProbersComeBack(t *testing.T) {
	const n = 64
	func() {
		var held []*memProber
		for range n {
			pr := probers.get()
			if e, whole := pr.probe("s/01/110105-20261123-000001"); !whole || e.key() != "s/01/110105-20261123-000001" {
				t.Fatalf("probe reads %q (whole %v)", e.key(), whole)
			}
			held = append(held, pr)
		}
		runtime.KeepAlive(held)
	}()
	free := func() int {
		probers.mu.Lock()
		defer probers.mu.Unlock()
		return len(probers.free)
	}
	collectUntil(func() bool { return free() >= n })
	if got := free(); got < n {
		t.Fatalf("%d of %d dropped probers' blocks came back", got, n)
	}
	boundBefore := blocks.bound()
	var again []*memProber
	for range n {
		again = append(again, probers.get())
	}
	if got := blocks.bound(); got > boundBefore {
		t.Errorf("%d blocks bound for %d probers, with %d free ones", got-boundBefore, n, n)
	}
	for _, pr := range again {
		probers.put(pr)
	}
}

// collectUntil runs the collector until done holds, for up to 100 cycles
// (cleanups run on a goroutine of their own after a cycle: each cycle
// yields to it first).
func collectUntil(done func() bool) bool {
	for range 100 {
		if done() {
			return true
		}
		runtime.Gosched()
		runtime.GC()
	}
	return done()
}
