package api

import (
	"bytes"
	"io"
	"sync"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/proto"
)

// jsonCodec is the gateway's JSON: runtime.JSONPb, whose decoder reads a
// request body twice (encoding/json scans it into a raw message, then
// protojson parses that), with a decoder that reads the body once into a
// pooled buffer and hands it to protojson: a third of the decoding's CPU
// on every REST write. A body holds one JSON value: anything after it is
// refused (JSONPb's decoder ignored it), and an empty body is io.EOF, as
// before, which the gateway takes for "no body".
type jsonCodec struct {
	*runtime.JSONPb
}

// NewDecoder returns the single-read decoder for proto messages; any other
// value (a body mapped to a non-message field) goes to JSONPb's.
func (j jsonCodec) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		m, ok := v.(proto.Message)
		if !ok {
			return j.JSONPb.NewDecoder(r).Decode(v)
		}
		return j.decodeMessage(r, m)
	})
}

// maxPooledBody is the largest buffer kept for the next request: an
// occasional big body (an import batch) is not held for good.
const maxPooledBody = 64 << 10

var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (j jsonCodec) decodeMessage(r io.Reader, m proto.Message) error {
	buf := bodyBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledBody {
			buf.Reset()
			bodyBuffers.Put(buf)
		}
	}()
	if _, err := buf.ReadFrom(r); err != nil {
		return err // the body limit's error, which the error handler maps to 413
	}
	if len(bytes.TrimSpace(buf.Bytes())) == 0 {
		return io.EOF
	}
	// protojson copies what it keeps (strings, bytes): the buffer can go
	// back to the pool once Unmarshal returns.
	return j.UnmarshalOptions.Unmarshal(buf.Bytes(), m)
}

var _ runtime.Marshaler = jsonCodec{}
