package server

import (
	"sync"

	"google.golang.org/grpc/encoding"
	protoenc "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// malformedCodec is the server's codec: the proto codec, except that a request that does not
// parse (bad wire format, a string that is not UTF-8) is not an error to gRPC. gRPC would answer
// such a request INTERNAL before any interceptor runs, so nothing could log it or tell the
// caller that the fault is theirs. Instead the message is reset and the failure noted against
// it; the interceptors take the note (takeMalformed) as the first thing they do with a
// received message, and answer INVALID_ARGUMENT once the caller is known.
type malformedCodec struct {
	encoding.CodecV2
	bad sync.Map // proto.Message → error
}

func newMalformedCodec() *malformedCodec {
	return &malformedCodec{CodecV2: encoding.GetCodecV2(protoenc.Name)}
}

func (c *malformedCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return err
	}
	// Whatever was decoded before the failure is dropped: no handler sees half a request.
	proto.Reset(m)
	c.bad.Store(m, err)
	return nil
}

// takeMalformed reports, and forgets, the decoding failure of m. Every received message passes
// through it (the first unary interceptor, the outermost stream wrapper), so no note outlives
// its call.
func (c *malformedCodec) takeMalformed(m any) error {
	pm, ok := m.(proto.Message)
	if !ok {
		return nil
	}
	if err, ok := c.bad.LoadAndDelete(pm); ok {
		return err.(error)
	}
	return nil
}
