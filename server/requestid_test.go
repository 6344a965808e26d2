package server

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
)

// logLines decodes JSON log output, one record a line.
func logLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	return lines
}

// callLines are the lines of the log that a call wrote (each names its method).
func callLines(t *testing.T, out string) []map[string]any {
	var lines []map[string]any
	for _, m := range logLines(t, out) {
		if _, ok := m["grpc.method"]; ok {
			lines = append(lines, m)
		}
	}
	return lines
}

// TestRequestIDInEveryLineOfACall: unary calls and streams that each write more than one line
// (a malformed request or a failed authentication is logged, then the call finishes) carry one
// request id in all of them, the one the caller reads from the response header, though the
// call failed.
func TestRequestIDInEveryLineOfACall(t *testing.T) {
	for _, tc := range []struct {
		name, method, token string
		want                codes.Code
	}{
		{"unary, malformed", erasurev1.ErasureService_Submit_FullMethodName, "secret-submitter", codes.InvalidArgument},
		{"stream, malformed", erasurev1.ErasureService_Watch_FullMethodName, "secret-viewer", codes.InvalidArgument},
		{"unary, unauthenticated", erasurev1.ErasureService_Submit_FullMethodName, "secret-nobody", codes.Unauthenticated},
		{"stream, unauthenticated", erasurev1.ErasureService_Watch_FullMethodName, "secret-nobody", codes.Unauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTLSEnv(t, testCallers(), Options{})
			ctx, cancel := context.WithTimeout(withToken(context.Background(), tc.token), 5*time.Second)
			defer cancel()
			header, err := sendRawHeader(ctx, e.dial(), tc.method, notProtobuf())
			if status.Code(err) != tc.want {
				t.Fatalf("%v, want %v", err, tc.want)
			}
			ids := header.Get(RequestIDHeader)
			if len(ids) != 1 || uuid.Validate(ids[0]) != nil {
				t.Fatalf("response header %s = %q, want one generated UUID", RequestIDHeader, ids)
			}
			lines := callLines(t, e.logs.String())
			if len(lines) < 2 {
				t.Fatalf("%d lines of the call, want the refusal and the finished call:\n%s", len(lines), e.logs.String())
			}
			for _, l := range lines {
				if l["request_id"] != ids[0] {
					t.Errorf("line %q: request_id = %v, want %s", l["msg"], l["request_id"], ids[0])
				}
			}
		})
	}
}

// sendRawHeader is sendRaw that also returns the response header.
func sendRawHeader(ctx context.Context, conn *grpc.ClientConn, method string, body []byte) (metadata.MD, error) {
	var header metadata.MD
	if method != erasurev1.ErasureService_Watch_FullMethodName {
		var reply []byte
		err := conn.Invoke(ctx, method, body, &reply, grpc.ForceCodec(rawCodec{}), grpc.Header(&header))
		return header, err
	}
	st, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, method, grpc.ForceCodec(rawCodec{}))
	if err != nil {
		return nil, err
	}
	if err := st.SendMsg(body); err != nil {
		return nil, err
	}
	if err := st.CloseSend(); err != nil {
		return nil, err
	}
	var reply []byte
	err = st.RecvMsg(&reply)
	header, _ = st.Header()
	return header, err
}

// TestRequestIDFromCaller: a valid id the caller sends is used and echoed; any other is
// replaced by a generated one, and never reaches the logs.
func TestRequestIDFromCaller(t *testing.T) {
	for _, tc := range []struct {
		name, sent string
		kept       bool
	}{
		{"uuid", "3f0c8e2a-6f1e-4d55-9b0e-6a1f2b3c4d5e", true},
		{"ticket and trace", "ops-4711:Root=1-5759e988+bd862e3f/x_y.z", true},
		{"longest", strings.Repeat("a", maxRequestIDLen), true},
		{"too long", strings.Repeat("b", maxRequestIDLen+1), false},
		{"quote and brace", `abc"},"admin":"yes`, false},
		{"space", "jane doe", false},
		{"at sign", "jane@example.com", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), RequestIDHeader, tc.sent), 5*time.Second)
			defer cancel()
			var header metadata.MD
			if _, err := h.client.List(ctx, &erasurev1.ListRequest{}, grpc.Header(&header)); err != nil {
				t.Fatal(err)
			}
			got := header.Get(RequestIDHeader)
			if len(got) != 1 {
				t.Fatalf("response header %s = %q, want one value", RequestIDHeader, got)
			}
			switch {
			case tc.kept && got[0] != tc.sent:
				t.Errorf("request id %q came back as %q, want it echoed", tc.sent, got[0])
			case !tc.kept && (got[0] == tc.sent || uuid.Validate(got[0]) != nil):
				t.Errorf("request id %q came back as %q, want a generated UUID", tc.sent, got[0])
			}
			lines := callLines(t, h.logs.String())
			if len(lines) == 0 {
				t.Fatalf("no line of the call:\n%s", h.logs.String())
			}
			for _, l := range lines {
				if l["request_id"] != got[0] {
					t.Errorf("line %q: request_id = %v, want %s", l["msg"], l["request_id"], got[0])
				}
			}
			if !tc.kept && strings.Contains(h.logs.String(), tc.sent) {
				t.Errorf("the refused id reached the logs:\n%s", h.logs.String())
			}
		})
	}
}

// TestIncomingRequestID covers what a Go client cannot put on the wire: control characters and
// bytes beyond ASCII.
func TestIncomingRequestID(t *testing.T) {
	for _, tc := range []struct {
		name string
		md   metadata.MD
		want string // "": a generated one
	}{
		{"none", metadata.MD{}, ""},
		{"empty", metadata.Pairs(RequestIDHeader, ""), ""},
		{"newline", metadata.Pairs(RequestIDHeader, "abc\n{\"level\":\"ERROR\"}"), ""},
		{"control", metadata.Pairs(RequestIDHeader, "abc\x01def"), ""},
		{"escape", metadata.Pairs(RequestIDHeader, "abc\x1b[31mdef"), ""},
		{"not ascii", metadata.Pairs(RequestIDHeader, "abc\u00e9def"), ""},
		{"first of two", metadata.Pairs(RequestIDHeader, "first", RequestIDHeader, "second"), "first"},
		{"bad first of two", metadata.Pairs(RequestIDHeader, "bad id", RequestIDHeader, "second"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := incomingRequestID(metadata.NewIncomingContext(context.Background(), tc.md))
			switch {
			case tc.want != "" && got != tc.want:
				t.Errorf("incomingRequestID = %q, want %q", got, tc.want)
			case tc.want == "" && uuid.Validate(got) != nil:
				t.Errorf("incomingRequestID = %q, want a generated UUID", got)
			}
		})
	}
}

// TestLogHandlerWrapsOnce: a logger wrapped already (by the command) is not wrapped again by
// the server, so a line carries the id once.
func TestLogHandlerWrapsOnce(t *testing.T) {
	logs := &lockedBuffer{}
	root := slogTo(logs)
	wrapped := newServer(nil, Options{Logger: newServer(nil, Options{Logger: root}).opts.Logger}).opts.Logger
	ctx := context.WithValue(context.Background(), requestIDKey{}, "rid-1")
	wrapped.With("k", "v").InfoContext(ctx, "hello")
	if n := strings.Count(logs.String(), `"request_id":"rid-1"`); n != 1 {
		t.Errorf("request_id appears %d times, want 1: %s", n, logs.String())
	}
}
