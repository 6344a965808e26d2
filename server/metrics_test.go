package server

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
)

// TestServerMetrics: with Options.Metrics the outermost interceptor counts every call with its
// final code, refusals by authentication, authorization and validation included, and every
// method is present at zero before its first call.
func TestServerMetrics(t *testing.T) {
	m := NewMetrics()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	e := newTLSEnv(t, testCallers(), Options{Metrics: m})
	client := e.client()
	submit := func(ctx context.Context, req *erasurev1.SubmitRequest) codes.Code {
		_, err := client.Submit(ctx, req)
		return status.Code(err)
	}
	good := func() *erasurev1.SubmitRequest {
		return &erasurev1.SubmitRequest{RequestId: uuid.NewString(), AccountId: "1234", Subject: customerID("ABC-123")}
	}
	submitter := withToken(context.Background(), "secret-submitter")
	if c := submit(submitter, good()); c != codes.OK {
		t.Fatalf("Submit: %v", c)
	}
	if c := submit(context.Background(), good()); c != codes.Unauthenticated {
		t.Fatalf("Submit without credentials: %v", c)
	}
	if c := submit(withToken(context.Background(), "secret-viewer"), good()); c != codes.PermissionDenied {
		t.Fatalf("Submit by a viewer: %v", c)
	}
	if c := submit(submitter, &erasurev1.SubmitRequest{AccountId: "1234"}); c != codes.InvalidArgument {
		t.Fatalf("invalid Submit: %v", c)
	}

	handled := series(t, reg, "grpc_server_handled_total")
	for _, tc := range []struct {
		method, code string
		want         float64
	}{
		{"Submit", "OK", 1},
		{"Submit", "Unauthenticated", 1},
		{"Submit", "PermissionDenied", 1},
		{"Submit", "InvalidArgument", 1},
		{"Cancel", "OK", 0}, // never called: present at zero
	} {
		key := "erasure.v1.ErasureService/" + tc.method + " " + tc.code
		got, ok := handled[key]
		if !ok || got != tc.want {
			t.Errorf("grpc_server_handled_total{%s} = %v (present %v), want %v", key, got, ok, tc.want)
		}
	}
	if got := series(t, reg, "grpc_server_started_total")["erasure.v1.ErasureService/Submit"]; got != 4 {
		t.Errorf("grpc_server_started_total for Submit = %v, want 4", got)
	}
	if _, ok := series(t, reg, "grpc_server_handling_seconds")["erasure.v1.ErasureService/Submit"]; !ok {
		t.Errorf("grpc_server_handling_seconds for Submit is absent")
	}
}

// series gathers one metric family: for each series "service/method[ code]" its value (a
// histogram's sample count).
func series(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			key := l["grpc_service"] + "/" + l["grpc_method"]
			if c, ok := l["grpc_code"]; ok {
				key += " " + c
			}
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				out[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}
