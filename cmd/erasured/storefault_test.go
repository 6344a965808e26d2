package main

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/erasured/erasured/store"
)

// faultyStore is a store whose health and reads a test turns bad, and good again: Err reports
// err while it is set (as the etcd backend reports etcd unreachable, and recovers), and View
// fails while failViews is set.
type faultyStore struct {
	storeBackend
	err       atomic.Pointer[error]
	failViews atomic.Bool
}

var errViewFailed = errors.New("test: the store's reads fail")

func (f *faultyStore) Err() error {
	if e := f.err.Load(); e != nil {
		return *e
	}
	return f.storeBackend.Err()
}

func (f *faultyStore) setErr(err error) {
	if err == nil {
		f.err.Store(nil)
		return
	}
	f.err.Store(&err)
}

func (f *faultyStore) View(fn func(tx store.Tx) error) error {
	if f.failViews.Load() {
		return errViewFailed
	}
	return f.storeBackend.View(fn)
}

// TestHealthFollowsStoreErr: gRPC health, /readyz and erasured_store_up follow the store's Err
// while erasured runs, not only at start: NOT_SERVING, 503 and 0 once Err reports a failure,
// and back to SERVING, 200 and 1 once it clears (the etcd backend's Err is not sticky).
func TestHealthFollowsStoreErr(t *testing.T) {
	e := newMetricsEnv(t)
	health := healthpb.NewHealthClient(e.conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	watch, err := health.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// next waits for the health Watch to send want; it fails the test if the stream ends first.
	next := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		for {
			res, err := watch.Recv()
			if err != nil {
				t.Fatalf("health Watch ended waiting for %v: %v", want, err)
			}
			if res.GetStatus() == want {
				return
			}
		}
	}
	probe := func(wantReady int, wantUp float64) {
		t.Helper()
		if code, body := e.get("/readyz"); code != wantReady {
			t.Errorf("/readyz = %d %q, want %d", code, body, wantReady)
		}
		_, body := e.get("/metrics")
		if up, ok := sample(body, "erasured_store_up", nil); !ok || up != wantUp {
			t.Errorf("erasured_store_up = %v (found %v), want %v", up, ok, wantUp)
		}
	}
	next(healthpb.HealthCheckResponse_SERVING)
	probe(http.StatusOK, 1)

	e.db.setErr(errors.New("etcd unreachable"))
	next(healthpb.HealthCheckResponse_NOT_SERVING)
	probe(http.StatusServiceUnavailable, 0)

	e.db.setErr(nil)
	next(healthpb.HealthCheckResponse_SERVING)
	probe(http.StatusOK, 1)
}
