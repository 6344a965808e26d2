package server

import (
	"bytes"
	"crypto/rand"
	"errors"
	"sync/atomic"

	"google.golang.org/grpc/encoding"
	protoenc "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// malformedCodec is the server's codec: the proto codec, except that a request that does not
// parse (bad wire format, a string that is not UTF-8) is not an error to gRPC. gRPC would answer
// such a request INTERNAL before any interceptor runs, so nothing could log it or tell the
// caller that the fault is theirs. Instead the message is reset and the failure noted in the
// message itself; the interceptors take the note (takeMalformed) as the first thing they do with
// a received message, and answer INVALID_ARGUMENT once the caller is known.
//
// The note lives in the message, never beside it: gRPC may decode into a message and drop it
// without any interceptor seeing it (a second request on a call that takes one is decoded into
// the same message to find the fault), and then the note goes with the message. A later
// successful decode into the same message resets it, note included.
type malformedCodec struct {
	encoding.CodecV2
	// marker starts every note. It is random per process, so a client cannot forge a note by
	// sending the same unknown field: it would have to guess the marker.
	marker []byte
	// noted, when set (tests only), is told of each message a note is put on.
	noted atomic.Pointer[func(proto.Message)]
}

// noteField is the field number of the note, kept as an unknown field of the message: the
// largest valid number, which no message of the API uses.
const noteField = protowire.MaxValidNumber

func newMalformedCodec() *malformedCodec {
	return &malformedCodec{CodecV2: encoding.GetCodecV2(protoenc.Name), marker: []byte(rand.Text())}
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
	// Whatever was decoded before the failure is dropped: no handler sees half a request. The
	// note is then the message's only content; the decoder's error names the fault, not the
	// bytes.
	proto.Reset(m)
	note := protowire.AppendTag(nil, noteField, protowire.BytesType)
	note = protowire.AppendBytes(note, append(append([]byte(nil), c.marker...), err.Error()...))
	m.ProtoReflect().SetUnknown(note)
	if f := c.noted.Load(); f != nil {
		(*f)(m)
	}
	return nil
}

// takeMalformed reports, and removes, the decoding failure noted in m; nil when m parsed. Every
// received message that reaches a handler passes through it (the first unary interceptor, the
// outermost stream wrapper).
func (c *malformedCodec) takeMalformed(m any) error {
	pm, ok := m.(proto.Message)
	if !ok {
		return nil
	}
	r := pm.ProtoReflect()
	u := r.GetUnknown()
	num, typ, n := protowire.ConsumeTag(u)
	if n < 0 || num != noteField || typ != protowire.BytesType {
		return nil
	}
	val, vn := protowire.ConsumeBytes(u[n:])
	// A note is alone in a reset message: anything else is a client's unknown field.
	if vn < 0 || n+vn != len(u) || !bytes.HasPrefix(val, c.marker) {
		return nil
	}
	r.SetUnknown(nil)
	return errors.New(string(val[len(c.marker):]))
}
