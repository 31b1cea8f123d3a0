package store

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// A marker is the raft snapshot of a large store: instead of a copy of
// the state it records the applied index and term the state store held,
// durably, when raft took it. The store is the snapshot, as etcd's
// backend file is; a full stream (WriteTo) is made from the live store
// only when a follower must be sent one. See DESIGN.md, "Snapshots".
//
// Format: the magic line, the index and the term (8 bytes BE each), the
// CRC-32C of everything before it (4 bytes BE).
const markerMagic = markerFamily + "v1\n"

// markerFamily starts the magic of every version of the marker.
const markerFamily = "cityhub-mark-"

// LooksLikeMarker says whether the stream r reads starts as a marker of
// some version does, consuming nothing: PeekMarker then says whether it
// is one this release reads, and whole.
func LooksLikeMarker(r *bufio.Reader) bool {
	head, err := r.Peek(len(markerFamily))
	return err == nil && string(head) == markerFamily
}

const markerSize = len(markerMagic) + 8 + 8 + 4

// WriteMarker writes a marker for the state through index (of term).
func WriteMarker(w io.Writer, index, term uint64) (int64, error) {
	b := make([]byte, 0, markerSize)
	b = append(b, markerMagic...)
	b = binary.BigEndian.AppendUint64(b, index)
	b = binary.BigEndian.AppendUint64(b, term)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
	n, err := w.Write(b)
	return int64(n), err
}

// PeekMarker says whether the stream r reads is a marker. When it is, it
// consumes and returns it; when it is not (a full snapshot stream, or too
// short to be a marker), it consumes nothing and ok is false. A stream
// that starts like a marker but is damaged is an error wrapping
// ErrBadSnapshot.
func PeekMarker(r *bufio.Reader) (index, term uint64, ok bool, err error) {
	head, err := r.Peek(len(markerMagic))
	if err != nil || string(head) != markerMagic {
		return 0, 0, false, nil
	}
	b := make([]byte, markerSize)
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, 0, false, fmt.Errorf("%w: marker cut short: %v", ErrBadSnapshot, err)
	}
	body, sum := b[:markerSize-4], binary.BigEndian.Uint32(b[markerSize-4:])
	if got := crc32.Checksum(body, crcTable); got != sum {
		return 0, 0, false, fmt.Errorf("%w: marker checksum %08x, computed %08x", ErrBadSnapshot, sum, got)
	}
	if _, err := r.Peek(1); !errors.Is(err, io.EOF) {
		return 0, 0, false, fmt.Errorf("%w: data after the marker", ErrBadSnapshot)
	}
	index = binary.BigEndian.Uint64(body[len(markerMagic):])
	term = binary.BigEndian.Uint64(body[len(markerMagic)+8:])
	return index, term, true, nil
}

// CaseCount is the number of cases the store holds (its state counters).
func (s *Store) CaseCount() (uint64, error) {
	by, err := s.CountByState()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, v := range by {
		n += v
	}
	return uint64(max(n, 0)), nil
}
