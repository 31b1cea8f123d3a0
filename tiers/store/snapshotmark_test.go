package store_test

import (
	"bufio"
	"bytes"
	"errors"
	"testing"

	"github.com/cityhub/cityhub/tiers/store"
)

func TestMarkerRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	n, err := store.WriteMarker(&buf, 123456789, 7)
	if err != nil || n != int64(buf.Len()) || n > 64 {
		t.Fatalf("WriteMarker = %d, %v (buffer %d bytes); want a short record", n, err, buf.Len())
	}
	index, term, ok, err := store.PeekMarker(bufio.NewReader(bytes.NewReader(buf.Bytes())))
	if err != nil || !ok || index != 123456789 || term != 7 {
		t.Fatalf("PeekMarker = %d, %d, %v, %v; want 123456789, 7, true", index, term, ok, err)
	}

	// Every damaged byte is found; a cut-short marker and one with data
	// after it too.
	for i := range buf.Len() {
		b := bytes.Clone(buf.Bytes())
		b[i] ^= 0x20
		_, _, ok, err := store.PeekMarker(bufio.NewReader(bytes.NewReader(b)))
		if ok || (i >= len("cityhub-mark-v1\n") && !errors.Is(err, store.ErrBadSnapshot)) {
			t.Fatalf("byte %d damaged: ok %v, err %v; want ErrBadSnapshot", i, ok, err)
		}
	}
	for _, b := range [][]byte{buf.Bytes()[:buf.Len()-1], append(bytes.Clone(buf.Bytes()), 0)} {
		if _, _, ok, err := store.PeekMarker(bufio.NewReader(bytes.NewReader(b))); ok || !errors.Is(err, store.ErrBadSnapshot) {
			t.Fatalf("marker of %d bytes: ok %v, err %v; want ErrBadSnapshot", len(b), ok, err)
		}
	}
}

// A full snapshot stream is not a marker, and peeking at it consumes
// nothing: the same reader restores the whole state.
func TestPeekMarkerLeavesAFullSnapshotWhole(t *testing.T) {
	src, dst := openMem(t), openMem(t)
	fx := populate(t, src)
	br := bufio.NewReader(bytes.NewReader(snapshotBytes(t, src)))
	if store.LooksLikeMarker(br) {
		t.Fatal("LooksLikeMarker on a full snapshot = true")
	}
	if _, _, ok, err := store.PeekMarker(br); ok || err != nil {
		t.Fatalf("PeekMarker on a full snapshot = %v, %v; want not a marker", ok, err)
	}
	if err := dst.Restore(br); err != nil {
		t.Fatalf("restore after the peek: %v", err)
	}
	checkFixture(t, dst, fx)
	// A marker is not a snapshot Restore reads: it holds no state.
	var m bytes.Buffer
	if _, err := store.WriteMarker(&m, 1, 1); err != nil {
		t.Fatal(err)
	}
	if !store.LooksLikeMarker(bufio.NewReader(bytes.NewReader(m.Bytes()))) {
		t.Fatal("LooksLikeMarker on a marker = false")
	}
	// A later version of the marker still looks like one (the node names
	// it as a marker this release cannot read), and PeekMarker refuses it.
	later := bufio.NewReader(bytes.NewReader(bytes.Replace(m.Bytes(), []byte("-v1\n"), []byte("-v2\n"), 1)))
	if !store.LooksLikeMarker(later) {
		t.Fatal("LooksLikeMarker on a v2 marker = false")
	}
	if _, _, ok, err := store.PeekMarker(later); ok || err != nil {
		t.Fatalf("PeekMarker on a v2 marker = %v, %v; want not one this release reads", ok, err)
	}
	if err := openMem(t).Restore(&m); !errors.Is(err, store.ErrBadSnapshot) {
		t.Fatalf("Restore of a marker: %v, want ErrBadSnapshot", err)
	}
	if n, err := src.CaseCount(); err != nil || n != uint64(len(fx.cases)) {
		t.Fatalf("CaseCount = %d, %v; want %d", n, err, len(fx.cases))
	}
}
