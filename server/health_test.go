package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// TestShutdownEndsHealthWatch: an open health Watch (a load balancer's or a gRPC client's health
// check keeps one) ends at once when shutdown begins, after NOT_SERVING, with UNAVAILABLE; the
// graceful stop never waits for it until the shutdown deadline. Each watched name is checked: the
// erasure service, the server as a whole, and a name health does not know.
func TestShutdownEndsHealthWatch(t *testing.T) {
	h := newHarness(t, Options{})
	hc := healthpb.NewHealthClient(h.conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type result struct {
		statuses []healthpb.HealthCheckResponse_ServingStatus
		err      error
	}
	names := []string{serviceName, "", "no.such.Service"}
	results := make([]chan result, len(names))
	for i, name := range names {
		stream, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: name})
		if err != nil {
			t.Fatal(err)
		}
		first, err := stream.Recv()
		if err != nil {
			t.Fatalf("Watch(%q) first: %v", name, err)
		}
		results[i] = make(chan result, 1)
		go func() {
			r := result{statuses: []healthpb.HealthCheckResponse_ServingStatus{first.GetStatus()}}
			for {
				res, err := stream.Recv()
				if err != nil {
					r.err = err
					results[i] <- r
					return
				}
				r.statuses = append(r.statuses, res.GetStatus())
			}
		}()
	}
	h.shutdown() // a 5 s deadline

	if strings.Contains(h.logs.String(), "shutdown deadline reached") {
		t.Errorf("shutdown waited for its deadline with health Watch streams open; logs: %s", h.logs.String())
	}
	wantLast := []healthpb.HealthCheckResponse_ServingStatus{healthpb.HealthCheckResponse_NOT_SERVING,
		healthpb.HealthCheckResponse_NOT_SERVING, healthpb.HealthCheckResponse_SERVICE_UNKNOWN}
	for i, name := range names {
		var r result
		select {
		case r = <-results[i]:
		case <-ctx.Done():
			t.Fatalf("Watch(%q) still open after shutdown", name)
		}
		if status.Code(r.err) != codes.Unavailable {
			t.Errorf("Watch(%q) ended with %v, want UNAVAILABLE", name, r.err)
		}
		if last := r.statuses[len(r.statuses)-1]; last != wantLast[i] {
			t.Errorf("Watch(%q) statuses %v, want the last %v", name, r.statuses, wantLast[i])
		}
	}
}
