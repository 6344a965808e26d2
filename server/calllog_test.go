package server

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
)

// TestRoutineCallsStayOutOfInfo: health checks and reflection, which balancers and tools call
// all the time, are not logged at INFO when they succeed; an API call is, and so is a refused
// reflection call.
func TestRoutineCallsStayOutOfInfo(t *testing.T) {
	e := newTLSEnv(t, testCallers(), Options{})
	conn := e.dial()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	viewer := withToken(ctx, "secret-viewer")

	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("health check: %v", err)
	}
	reflect := func(ctx context.Context) error {
		st, err := reflv1.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
		if err != nil {
			return err
		}
		if err := st.Send(&reflv1.ServerReflectionRequest{MessageRequest: &reflv1.ServerReflectionRequest_ListServices{}}); err != nil && err != io.EOF {
			return err
		}
		if _, err := st.Recv(); err != nil {
			return err
		}
		if err := st.CloseSend(); err != nil {
			return err
		}
		if _, err := st.Recv(); err != io.EOF {
			return err
		}
		return nil
	}
	if err := reflect(viewer); err != nil {
		t.Fatalf("reflection: %v", err)
	}
	if err := reflect(ctx); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("reflection without a token: %v, want UNAUTHENTICATED", err)
	}
	_, err := erasurev1.NewErasureServiceClient(conn).Status(viewer, &erasurev1.StatusRequest{Name: "erasures/00000000-0000-4000-8000-000000000000"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("status: %v, want NOT_FOUND", err)
	}

	// The server writes a call's line as the call ends, which may be after the client saw it end.
	want := map[string]int{"Status": 1, "ServerReflectionInfo": 1}
	var got map[string]int
	for deadline := time.Now().Add(5 * time.Second); ; {
		got = map[string]int{}
		for _, l := range callLines(t, e.logs.String()) {
			if l["msg"] == "finished call" {
				m, _ := l["grpc.method"].(string)
				got[m]++
			}
		}
		if got["Status"] == 1 && got["ServerReflectionInfo"] >= 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for m, n := range want {
		if got[m] != n {
			t.Errorf("%d INFO+ finished-call lines for %s, want %d\n%s", got[m], m, n, e.logs.String())
		}
	}
	if got["Check"] != 0 {
		t.Errorf("a successful health check was logged at INFO:\n%s", e.logs.String())
	}
}

// TestServiceLinesOfACallNameItsRequestID: the lines the service writes for a change a call made
// (the state change of a Submit, of a Cancel) carry the call's request id, like the call's own
// line, so an operator finds every line of the call a caller quotes.
func TestServiceLinesOfACallNameItsRequestID(t *testing.T) {
	h := newHarness(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	submit := metadata.AppendToOutgoingContext(ctx, RequestIDHeader, "ticket-submit-1")
	res, err := h.client.Submit(submit, &erasurev1.SubmitRequest{RequestId: uuid.NewString(), AccountId: "1234", Subject: customerID("ABC-123")})
	if err != nil {
		t.Fatal(err)
	}
	cancelCtx := metadata.AppendToOutgoingContext(ctx, RequestIDHeader, "ticket-cancel-1")
	if _, err := h.client.Cancel(cancelCtx, &erasurev1.CancelRequest{Name: res.GetErasure().GetName(), Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	byTo := map[string]any{}
	for _, l := range logLines(t, h.logs.String()) {
		if l["msg"] == "erasure state changed" {
			to, _ := l["to"].(string)
			byTo[to] = l["request_id"]
		}
	}
	for to, want := range map[string]string{"STATE_RECEIVED": "ticket-submit-1", "STATE_CANCELLED": "ticket-cancel-1"} {
		if byTo[to] != want {
			t.Errorf("state change to %s logged with request_id %v, want %s\n%s", to, byTo[to], want, h.logs.String())
		}
	}
}
