package server

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
)

// tracedCalls makes a call that succeeds, one that fails, a health check, and one that joins the
// caller's trace (parent), then shuts the server down, which ends every span.
func tracedCalls(t *testing.T, h *harness, parent string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := h.client.List(ctx, &erasurev1.ListRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err := h.client.Status(ctx, &erasurev1.StatusRequest{Name: "erasures/3f0c8e2a-6f1e-4d55-9b0e-6a1f2b3c4d5e"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("Status of no erasure: %v, want NOT_FOUND", err)
	}
	if _, err := healthpb.NewHealthClient(h.conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	joined := metadata.AppendToOutgoingContext(ctx, "traceparent", parent)
	if _, err := h.client.ListAuditRecords(joined, &erasurev1.ListAuditRecordsRequest{}); err != nil {
		t.Fatal(err)
	}
	h.shutdown()
}

// TestTracing: with a tracer provider every call but health checks has a server span named by
// its method with its status code; a caller's traceparent is joined; the call's log lines carry
// the trace id.
func TestTracing(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	h := newHarness(t, Options{TracerProvider: tp})
	const parentTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	tracedCalls(t, h, "00-"+parentTrace+"-00f067aa0ba902b7-01")

	want := map[string]string{
		"erasure.v1.ErasureService/List":             "OK",
		"erasure.v1.ErasureService/Status":           "NOT_FOUND",
		"erasure.v1.ErasureService/ListAuditRecords": "OK",
	}
	spans := exp.GetSpans()
	if len(spans) != len(want) {
		t.Errorf("%d spans, want %d (no health check): %v", len(spans), len(want), spanNames(spans))
	}
	traces := map[string]string{} // trace id → method
	for _, s := range spans {
		code, ok := want[s.Name]
		if !ok {
			t.Errorf("unexpected span %q", s.Name)
			continue
		}
		if s.SpanKind != trace.SpanKindServer {
			t.Errorf("span %s: kind %v, want server", s.Name, s.SpanKind)
		}
		if got := attr(s.Attributes, "rpc.response.status_code"); got != code {
			t.Errorf("span %s: rpc.response.status_code = %q, want %s", s.Name, got, code)
		}
		if got := attr(s.Attributes, "rpc.method"); got != s.Name {
			t.Errorf("span %s: rpc.method = %q", s.Name, got)
		}
		joined := s.SpanContext.TraceID().String() == parentTrace
		if joined != (s.Name == "erasure.v1.ErasureService/ListAuditRecords") {
			t.Errorf("span %s: trace %s; only the call that sent a traceparent joins its trace", s.Name, s.SpanContext.TraceID())
		}
		if attr(s.Attributes, "erasured.request_id") == "" {
			t.Errorf("span %s carries no request id", s.Name)
		}
		traces[s.SpanContext.TraceID().String()] = s.Name
	}
	lines := callLines(t, h.logs.String())
	if len(lines) == 0 {
		t.Fatalf("no call logged:\n%s", h.logs.String())
	}
	for _, l := range lines {
		id, _ := l["trace_id"].(string)
		if _, ok := traces[id]; !ok && l["grpc.service"] != "grpc.health.v1.Health" {
			t.Errorf("line %q of %v: trace_id %q is no span's", l["msg"], l["grpc.method"], id)
		}
	}
}

// TestTracingOff: without a tracer provider nothing is traced, even with a global one set, and
// no log line carries a trace id.
func TestTracingOff(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	defer otel.SetTracerProvider(prev)

	h := newHarness(t, Options{})
	tracedCalls(t, h, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if spans := exp.GetSpans(); len(spans) != 0 {
		t.Errorf("tracing off: %d spans %v, want none", len(spans), spanNames(spans))
	}
	for _, l := range logLines(t, h.logs.String()) {
		if _, ok := l["trace_id"]; ok {
			t.Errorf("tracing off: line %q has a trace_id", l["msg"])
		}
	}
}

func attr(kvs []attribute.KeyValue, key string) string {
	for _, kv := range kvs {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

func spanNames(spans tracetest.SpanStubs) []string {
	var names []string
	for _, s := range spans {
		names = append(names, s.Name)
	}
	return names
}
