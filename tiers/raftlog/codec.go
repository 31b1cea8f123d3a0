package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/hashicorp/raft"
)

// logFormatV1 is the first (and currently only) on-disk encoding of a
// raft.Log value:
//
//	byte     format version (= 1)
//	uvarint  Index
//	uvarint  Term
//	uvarint  Type (must fit in a raft.LogType, i.e. a uint8)
//	uvarint  len(Data), followed by Data
//	uvarint  len(Extensions), followed by Extensions
//	varint   AppendedAt as Unix nanoseconds (0 = zero time.Time)
//
// Nothing may follow the last field.
const logFormatV1 byte = 1

// ErrCorrupt is wrapped by every error caused by an undecodable stored log
// entry (unknown format version, truncation, trailing bytes, bad lengths...).
var ErrCorrupt = errors.New("raftlog: corrupt log entry")

// encodeLog returns a freshly allocated encoding of l.
func encodeLog(l *raft.Log) []byte {
	size := 1 + 5*binary.MaxVarintLen64 + len(l.Data) + len(l.Extensions) + binary.MaxVarintLen64
	buf := make([]byte, 0, size)
	buf = append(buf, logFormatV1)
	buf = binary.AppendUvarint(buf, l.Index)
	buf = binary.AppendUvarint(buf, l.Term)
	buf = binary.AppendUvarint(buf, uint64(l.Type))
	buf = binary.AppendUvarint(buf, uint64(len(l.Data)))
	buf = append(buf, l.Data...)
	buf = binary.AppendUvarint(buf, uint64(len(l.Extensions)))
	buf = append(buf, l.Extensions...)
	var ts int64
	if !l.AppendedAt.IsZero() {
		ts = l.AppendedAt.UnixNano()
	}
	buf = binary.AppendVarint(buf, ts)
	return buf
}

// decodeLog decodes b into *l. The byte slices in l never alias b, so b may
// be a buffer owned by badger that is only valid for the duration of a
// callback. It returns an error wrapping ErrCorrupt for any malformed input
// and never panics.
func decodeLog(b []byte, l *raft.Log) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: empty value", ErrCorrupt)
	}
	if b[0] != logFormatV1 {
		return fmt.Errorf("%w: unsupported format version %d", ErrCorrupt, b[0])
	}
	d := decoder{b: b[1:]}
	index := d.uvarint("index")
	term := d.uvarint("term")
	typ := d.uvarint("type")
	data := d.bytes("data")
	ext := d.bytes("extensions")
	ts := d.varint("appended_at")
	if d.err != nil {
		return d.err
	}
	if typ > math.MaxUint8 {
		return fmt.Errorf("%w: log type %d out of range", ErrCorrupt, typ)
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	var at time.Time
	if ts != 0 {
		at = time.Unix(0, ts)
	}
	*l = raft.Log{
		Index:      index,
		Term:       term,
		Type:       raft.LogType(typ),
		Data:       data,
		Extensions: ext,
		AppendedAt: at,
	}
	return nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(field, why string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s: %s", ErrCorrupt, field, why)
	}
}

func (d *decoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	d.advance(field, n)
	return v
}

func (d *decoder) varint(field string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	d.advance(field, n)
	return v
}

// advance consumes a varint of n bytes, or records why it could not be read
// (n as returned by binary.Uvarint and binary.Varint).
func (d *decoder) advance(field string, n int) {
	switch {
	case n == 0:
		d.fail(field, "truncated varint")
	case n < 0:
		d.fail(field, "varint overflows 64 bits")
	default:
		d.b = d.b[n:]
	}
}

// bytes reads a uvarint length followed by that many bytes and returns a copy
// (nil for length 0).
func (d *decoder) bytes(field string) []byte {
	n := d.uvarint(field + " length")
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(field, fmt.Sprintf("length %d exceeds remaining %d bytes", n, len(d.b)))
		return nil
	}
	if n == 0 {
		return nil
	}
	out := make([]byte, n)
	copy(out, d.b[:n])
	d.b = d.b[n:]
	return out
}
