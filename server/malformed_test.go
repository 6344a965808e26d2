package server

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
)

// rawCodec sends bytes as they are, so a test can put anything on the wire.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.([]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: %T", v)
	}
	return b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	if p, ok := v.(*[]byte); ok {
		*p = append([]byte(nil), data...)
	}
	return nil
}

func (rawCodec) Name() string { return "proto" }

// The bytes sent carry a marker that must never reach the logs.
const marker = "SUBJECT-MARKER-7731"

func notProtobuf() []byte { return append([]byte{0xff, 0xff}, marker...) }

// invalidUTF8 is a well-formed message whose field 1 (a string: request_id, name) is not UTF-8.
func invalidUTF8() []byte {
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	return protowire.AppendBytes(b, append([]byte(marker), 0xff, 0xfe))
}

func TestMalformedRequests(t *testing.T) {
	for _, tc := range []struct {
		name, method, role string
		body               []byte
	}{
		{"unary, not protobuf", erasurev1.ErasureService_Submit_FullMethodName, "submitter", notProtobuf()},
		{"unary, invalid UTF-8", erasurev1.ErasureService_Status_FullMethodName, "viewer", invalidUTF8()},
		{"watch, not protobuf", erasurev1.ErasureService_Watch_FullMethodName, "viewer", notProtobuf()},
		{"watch, invalid UTF-8", erasurev1.ErasureService_Watch_FullMethodName, "viewer", invalidUTF8()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTLSEnv(t, testCallers(), Options{})
			conn := e.dial()
			ctx, cancel := context.WithTimeout(withToken(context.Background(), "secret-"+tc.role), 5*time.Second)
			defer cancel()
			err := sendRaw(ctx, conn, tc.method, tc.body)
			if status.Code(err) != codes.InvalidArgument || errorReason(err) != "MALFORMED_REQUEST" {
				t.Fatalf("%v, want INVALID_ARGUMENT MALFORMED_REQUEST", err)
			}
			if strings.Contains(err.Error(), marker) {
				t.Errorf("the error repeats the request: %v", err)
			}
			logs := e.logs.String()
			if n := strings.Count(logs, `"msg":"malformed request"`); n != 1 {
				t.Errorf("%d malformed-request lines, want 1:\n%s", n, logs)
			}
			for _, line := range strings.Split(logs, "\n") {
				if strings.Contains(line, `"msg":"malformed request"`) &&
					(!strings.Contains(line, `"level":"WARN"`) || !strings.Contains(line, tc.method) || !strings.Contains(line, `"principal":"t-`+tc.role+`"`)) {
					t.Errorf("the line lacks level, method or principal: %s", line)
				}
			}
			if strings.Contains(logs, marker) {
				t.Errorf("the request's bytes reached the logs:\n%s", logs)
			}
		})
	}
}

// TestMalformedUnauthenticated: a caller without credentials learns nothing about its request.
func TestMalformedUnauthenticated(t *testing.T) {
	e := newTLSEnv(t, testCallers(), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := sendRaw(ctx, e.dial(), erasurev1.ErasureService_Submit_FullMethodName, notProtobuf())
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("%v, want UNAUTHENTICATED", err)
	}
}

// sendRaw sends body as the request of method (unary, or server-streaming for Watch) and
// returns the call's error.
func sendRaw(ctx context.Context, conn *grpc.ClientConn, method string, body []byte) error {
	if method != erasurev1.ErasureService_Watch_FullMethodName {
		var reply []byte
		return conn.Invoke(ctx, method, body, &reply, grpc.ForceCodec(rawCodec{}))
	}
	st, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, method, grpc.ForceCodec(rawCodec{}))
	if err != nil {
		return err
	}
	if err := st.SendMsg(body); err != nil {
		return err
	}
	if err := st.CloseSend(); err != nil {
		return err
	}
	var reply []byte
	return st.RecvMsg(&reply)
}
