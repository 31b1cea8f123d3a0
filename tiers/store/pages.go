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

// pageWriter encodes pages, reusing its buffers from page to page (a
// transaction's), so a page costs one allocation of its own size.
type pageWriter struct{ item, page []byte }

// encode returns the page of the n messages msg gives.
func (w *pageWriter) encode(n int, msg func(i int) proto.Message) ([]byte, error) {
	w.page = append(w.page[:0], pageMark)
	for i := range n {
		var err error
		if w.item, err = (proto.MarshalOptions{Deterministic: true}).MarshalAppend(w.item[:0], msg(i)); err != nil {
			return nil, fmt.Errorf("encode item %d: %w", i, err)
		}
		w.page = protowire.AppendTag(w.page, 1, protowire.BytesType)
		w.page = protowire.AppendBytes(w.page, w.item)
	}
	// badger keeps the value until the transaction commits: a copy.
	return append([]byte(nil), w.page...), nil
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
