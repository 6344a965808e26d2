package server

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"
	"weak"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
)

// noteWatch keeps a weak pointer to every message the codec puts a note on, to tell whether
// anything still holds one after its call.
type noteWatch struct {
	mu    sync.Mutex
	alive []func() bool
}

func watchNotes(t *testing.T, c *malformedCodec) *noteWatch {
	w := &noteWatch{}
	f := func(m proto.Message) {
		var alive func() bool
		switch m := m.(type) {
		case *erasurev1.StatusRequest:
			p := weak.Make(m)
			alive = func() bool { return p.Value() != nil }
		case *erasurev1.WatchRequest:
			p := weak.Make(m)
			alive = func() bool { return p.Value() != nil }
		case *healthpb.HealthCheckRequest:
			p := weak.Make(m)
			alive = func() bool { return p.Value() != nil }
		default:
			t.Errorf("note on an unexpected %T", m)
			return
		}
		w.mu.Lock()
		w.alive = append(w.alive, alive)
		w.mu.Unlock()
	}
	c.noted.Store(&f)
	t.Cleanup(func() { c.noted.Store(nil) })
	return w
}

// held is how many noted messages are still reachable, and how many were noted.
func (w *noteWatch) held() (held, noted int) {
	runtime.GC()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, alive := range w.alive {
		if alive() {
			held++
		}
	}
	return held, len(w.alive)
}

// TestMalformedNotesDoNotOutliveTheCall: gRPC decodes a second request of a call that takes one
// into the same message, and fails the call before any interceptor sees it. Whatever the order
// of a malformed and a good message, and whoever sends them, nothing keeps the message (or its
// note) once the call is over.
func TestMalformedNotesDoNotOutliveTheCall(t *testing.T) {
	e := newTLSEnv(t, testCallers(), Options{})
	conn := e.dial()
	w := watchNotes(t, e.srv.codec)
	bad, good := notProtobuf(), []byte{}
	cases := []struct {
		name, method, token string
		msgs                [][]byte
	}{
		{"unary, unauthenticated, bad then good", erasurev1.ErasureService_Status_FullMethodName, "", [][]byte{bad, good}},
		{"unary, unauthenticated, good then bad", erasurev1.ErasureService_Status_FullMethodName, "", [][]byte{good, bad}},
		{"unary, viewer, bad then good", erasurev1.ErasureService_Status_FullMethodName, "secret-viewer", [][]byte{bad, good}},
		{"unary, viewer, bad alone", erasurev1.ErasureService_Status_FullMethodName, "secret-viewer", [][]byte{bad}},
		{"watch, viewer, bad then good", erasurev1.ErasureService_Watch_FullMethodName, "secret-viewer", [][]byte{bad, good}},
		{"watch, viewer, good then bad", erasurev1.ErasureService_Watch_FullMethodName, "secret-viewer", [][]byte{good, bad}},
		{"health watch, bad then good", "/grpc.health.v1.Health/Watch", "", [][]byte{bad, good}},
		{"health watch, good then bad", "/grpc.health.v1.Health/Watch", "", [][]byte{good, bad}},
	}
	const rounds = 5
	for _, tc := range cases {
		for range rounds {
			ctx, cancel := context.WithTimeout(withToken(context.Background(), tc.token), 5*time.Second)
			st, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, tc.method, grpc.ForceCodec(rawCodec{}))
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range tc.msgs {
				_ = st.SendMsg(m)
			}
			_ = st.CloseSend()
			var out []byte
			for st.RecvMsg(&out) == nil {
				// A good Watch answers before the second message fails it.
			}
			cancel()
		}
	}
	// Every case but none puts a note on its message; the server may still be finishing the last
	// calls when the client has seen their end, so this waits for them.
	deadline := time.Now().Add(10 * time.Second)
	for {
		held, noted := w.held()
		if noted < len(cases)*rounds {
			t.Fatalf("%d notes, want at least %d: the test no longer sends malformed messages", noted, len(cases)*rounds)
		}
		if held == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d malformed messages are still held after their calls ended", held, noted)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The server still answers.
	if _, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health after the malformed calls: %v", err)
	}
}

// TestMalformedNote: a note is taken once, a later good decode into the same message clears it,
// and an unknown field that looks like a note but lacks the process's marker is not one.
func TestMalformedNote(t *testing.T) {
	c := newMalformedCodec()
	var m erasurev1.StatusRequest
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(notProtobuf())}, &m); err != nil {
		t.Fatalf("Unmarshal of a malformed message: %v", err)
	}
	if err := c.takeMalformed(&m); err == nil {
		t.Fatal("no note on a malformed message")
	}
	if err := c.takeMalformed(&m); err != nil {
		t.Fatalf("the note is taken twice: %v", err)
	}
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(notProtobuf())}, &m); err != nil {
		t.Fatal(err)
	}
	good, _ := proto.Marshal(&erasurev1.StatusRequest{Name: "erasures/x"})
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(good)}, &m); err != nil {
		t.Fatal(err)
	}
	if err := c.takeMalformed(&m); err != nil || m.GetName() != "erasures/x" {
		t.Fatalf("after a good decode: %v, name %q", err, m.GetName())
	}
	// Another process's note (another marker) sent by a client is just an unknown field.
	other := newMalformedCodec()
	var forged erasurev1.StatusRequest
	_ = other.Unmarshal(mem.BufferSlice{mem.SliceBuffer(notProtobuf())}, &forged)
	wire, err := proto.Marshal(&forged)
	if err != nil {
		t.Fatal(err)
	}
	var got erasurev1.StatusRequest
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(wire)}, &got); err != nil {
		t.Fatal(err)
	}
	if err := c.takeMalformed(&got); err != nil {
		t.Errorf("a forged note is taken as this codec's: %v", err)
	}
}
