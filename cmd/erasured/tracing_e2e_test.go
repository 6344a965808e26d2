package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/server"
)

// fakeCollector is an OTLP gRPC trace collector that keeps what it receives.
type fakeCollector struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.ResourceSpans
}

func (c *fakeCollector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.spans = append(c.spans, req.GetResourceSpans()...)
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// span is the first span received named name, with its resource's service.name.
func (c *fakeCollector) span(name string) (*tracepb.Span, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range c.spans {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				if s.GetName() == name {
					return s, service
				}
			}
		}
	}
	return nil, ""
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestTracingEndToEnd: erasured with tracing on exports the span of a call to the collector by
// the time it has stopped (the batch is flushed at exit, well before its 5 s delay), and the
// call's log line carries the request id the caller sent and the span's trace id.
func TestTracingEndToEnd(t *testing.T) {
	col := &fakeCollector{}
	gs := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(gs, col)
	clis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(clis)
	defer gs.Stop()
	t.Setenv("ERASURED_TRACING_ENABLED", "true")
	t.Setenv("ERASURED_TRACING_OTLP_ENDPOINT", clis.Addr().String())
	t.Setenv("ERASURED_TRACING_INSECURE", "true")
	t.Setenv("ERASURED_TRACING_SERVICE_NAME", "erasured-test")

	addr := freeAddr(t)
	args := startConfig(t, t.TempDir(), addr, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var runErr error
	_, logs := captureOutput(t, func() {
		done := make(chan struct{})
		go func() { defer close(done); runErr = realMain(ctx, args) }()
		defer func() { cancel(); <-done }()
		conn, client := dial(t, addr)
		defer conn.Close()
		call := metadata.AppendToOutgoingContext(context.Background(), server.RequestIDHeader, "ops-ticket-42")
		deadline := time.Now().Add(10 * time.Second)
		for {
			cctx, ccancel := context.WithTimeout(call, time.Second)
			_, err := client.List(cctx, &erasurev1.ListRequest{}, grpc.WaitForReady(true))
			ccancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("List: %v", err)
				return
			}
		}
		checkHistoryOver(t, context.Background(), client)
	})
	if runErr != nil {
		t.Fatalf("realMain: %v\n%s", runErr, logs)
	}
	s, service := col.span("erasure.v1.ErasureService/List")
	if s == nil {
		t.Fatalf("the collector received no span of List by the exit; logs:\n%s", logs)
	}
	if service != "erasured-test" {
		t.Errorf("service.name %q, want erasured-test", service)
	}
	traceID := hex.EncodeToString(s.GetTraceId())
	found := false
	for _, l := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil || m["msg"] != "finished call" || m["grpc.method"] != "List" || m["request_id"] != "ops-ticket-42" {
			continue
		}
		found = true
		if m["trace_id"] != traceID {
			t.Errorf("finished call: trace_id %v, want the span's %s", m["trace_id"], traceID)
		}
	}
	if !found {
		t.Errorf("no finished-call line of List with the caller's request id:\n%s", logs)
	}
}
