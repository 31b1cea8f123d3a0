package store

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Pages: the change feed (feed.go) and the audit trail (auth.go) keep the
// records of one command together, one badger key for all of them. A key
// is a memtable insert on every replica and a key for the LSM to compact
// for as long as it lives; a joined entry of 30 reports wrote 60 of them
// for these two families alone (BENCHMARKS.md).
//
// A page is pageMark, then each message as a length-delimited field 1:
// the encoding of a message with "repeated M items = 1" behind one byte. A
// message's own encoding never begins with a zero byte (field number 0
// does not exist), so a record that does is a page, and a record written
// before pages existed (the message itself) still reads, as a page of one.
const pageMark = 0x00

// errEmptyPage is a page without a message: damage.
var errEmptyPage = errors.New("empty page")

// pageWriter encodes pages, reusing its buffer between messages.
type pageWriter struct{ buf []byte }

// encode returns the page of msgs.
func (w *pageWriter) encode(n int, msg func(i int) proto.Message) ([]byte, error) {
	v := make([]byte, 1, 1+n*128)
	v[0] = pageMark
	for i := range n {
		var err error
		if w.buf, err = (proto.MarshalOptions{Deterministic: true}).MarshalAppend(w.buf[:0], msg(i)); err != nil {
			return nil, fmt.Errorf("encode item %d: %w", i, err)
		}
		v = protowire.AppendTag(v, 1, protowire.BytesType)
		v = protowire.AppendBytes(v, w.buf)
	}
	return v, nil
}

// isPage reports whether a record is a page (else one message).
func isPage(v []byte) bool { return len(v) > 0 && v[0] == pageMark }

// decodePage calls each with the encoding of every message of v, a page
// or one message, in order.
func decodePage(v []byte, each func(i int, raw []byte) error) error {
	if !isPage(v) {
		return each(0, v)
	}
	i := 0
	for b := v[1:]; len(b) > 0; i++ {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		if num != 1 || typ != protowire.BytesType {
			return fmt.Errorf("page field %d of wire type %d, want 1 of bytes", num, typ)
		}
		b = b[n:]
		raw, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := each(i, raw); err != nil {
			return err
		}
	}
	if i == 0 {
		return errEmptyPage
	}
	return nil
}
