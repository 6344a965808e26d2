package server

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/service"
)

const rid1 = "4a7c1f62-0d5e-4f3b-9b7e-1c2d3e4f5a6b"

func reasonOf(err error) string {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

// TestErrorTable checks every row of the service-error → gRPC-code table, and that no kind is
// missing from it.
func TestErrorTable(t *testing.T) {
	want := map[service.ErrorKind]codes.Code{
		service.KindInternal:           codes.Internal,
		service.KindInvalid:            codes.InvalidArgument,
		service.KindNotFound:           codes.NotFound,
		service.KindConflict:           codes.AlreadyExists,
		service.KindFailedPrecondition: codes.FailedPrecondition,
		service.KindAborted:            codes.Aborted,
		service.KindOutOfRange:         codes.OutOfRange,
		service.KindUnavailable:        codes.Unavailable,
		service.KindUnimplemented:      codes.Unimplemented,
		service.KindUnauthenticated:    codes.Unauthenticated,
		service.KindPermissionDenied:   codes.PermissionDenied,
	}
	if len(codeOf) != len(want) {
		t.Errorf("codeOf has %d rows, want %d", len(codeOf), len(want))
	}
	for kind, code := range want {
		err := toStatus(&service.Error{Kind: kind, Reason: "SOME_REASON", Message: "m"})
		if got := status.Code(err); got != code {
			t.Errorf("toStatus(kind %d) code = %v, want %v", kind, got, code)
		}
		if got := reasonOf(err); got != "SOME_REASON" {
			t.Errorf("toStatus(kind %d) reason = %q, want SOME_REASON", kind, got)
		}
	}
	// An error that is not a service error never leaks its text.
	err := toStatus(errors.New("disk /secret/path exploded"))
	if status.Code(err) != codes.Internal || strings.Contains(err.Error(), "secret") {
		t.Errorf("toStatus(plain error) = %v, want INTERNAL without the text", err)
	}
	if got := status.Code(toStatus(context.DeadlineExceeded)); got != codes.DeadlineExceeded {
		t.Errorf("toStatus(DeadlineExceeded) = %v", got)
	}
}

// TestCodesOverTheWire drives each reachable error through the real interceptor chain.
func TestCodesOverTheWire(t *testing.T) {
	h := newHarness(t, Options{})
	ctx := context.Background()
	e := h.submit(rid1, customerID("ABC-123"))

	tests := []struct {
		name   string
		call   func() error
		code   codes.Code
		reason string
	}{
		{"invalid request", func() error {
			_, err := h.client.Submit(ctx, &erasurev1.SubmitRequest{RequestId: "not-a-uuid", AccountId: "1"})
			return err
		}, codes.InvalidArgument, "INVALID_REQUEST"},
		{"unknown name", func() error {
			_, err := h.client.Status(ctx, &erasurev1.StatusRequest{Name: "erasures/0000"})
			return err
		}, codes.NotFound, "ERASURE_NOT_FOUND"},
		{"request_id reused", func() error {
			_, err := h.client.Submit(ctx, &erasurev1.SubmitRequest{RequestId: rid1, AccountId: "1234", Subject: customerID("XYZ")})
			return err
		}, codes.AlreadyExists, "REQUEST_ID_REUSED"},
		{"future revision", func() error {
			s, err := h.client.Watch(ctx, &erasurev1.WatchRequest{StartRevision: 99})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}, codes.OutOfRange, "REVISION_IN_FUTURE"},
		{"bad page token", func() error {
			_, err := h.client.List(ctx, &erasurev1.ListRequest{PageToken: "zz"})
			return err
		}, codes.InvalidArgument, "INVALID_PAGE_TOKEN"},
		{"decision in the wrong state", func() error {
			_, err := h.client.Resolve(ctx, &erasurev1.ResolveRequest{Target: &erasurev1.ResolveRequest_Name{Name: e.GetName()},
				Decision: &erasurev1.Decision{Kind: &erasurev1.Decision_Reject{Reject: &erasurev1.Reject{Reason: "no"}}}})
			return err
		}, codes.FailedPrecondition, "NOT_AWAITING_CONFIRMATION"},
		{"preview without LivePerson", func() error {
			_, err := h.client.Resolve(ctx, &erasurev1.ResolveRequest{Target: &erasurev1.ResolveRequest_Preview{Preview: &erasurev1.ResolvePreview{
				AccountId: "1234", Subject: customerID("A")}}})
			return err
		}, codes.Unavailable, "NO_LIVEPERSON"},
		{"decision with a preview", func() error {
			_, err := h.client.Resolve(ctx, &erasurev1.ResolveRequest{Target: &erasurev1.ResolveRequest_Preview{Preview: &erasurev1.ResolvePreview{
				AccountId: "1234", Subject: customerID("A")}},
				Decision: &erasurev1.Decision{Kind: &erasurev1.Decision_Reject{Reject: &erasurev1.Reject{Reason: "no"}}}})
			return err
		}, codes.InvalidArgument, "INVALID_REQUEST"},
		{"invalid watch name", func() error {
			s, err := h.client.Watch(ctx, &erasurev1.WatchRequest{Name: "nope"})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}, codes.InvalidArgument, "INVALID_REQUEST"},
	}
	for _, tt := range tests {
		err := tt.call()
		if got := status.Code(err); got != tt.code {
			t.Errorf("%s: code = %v (%v), want %v", tt.name, got, err, tt.code)
			continue
		}
		if got := reasonOf(err); got != tt.reason {
			t.Errorf("%s: reason = %q, want %q", tt.name, got, tt.reason)
		}
	}
}

func TestValidationFieldViolations(t *testing.T) {
	h := newHarness(t, Options{})
	_, err := h.client.Submit(context.Background(), &erasurev1.SubmitRequest{
		RequestId: rid1, AccountId: "12-34",
		Subject: &erasurev1.Subject{Id: &erasurev1.Subject_Email{Email: "canary-not-an-email"}},
	})
	st, _ := status.FromError(err)
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	if strings.Join(fields, ",") != "account_id,subject.email" {
		t.Errorf("field violations = %v, want [account_id subject.email]", fields)
	}
	if strings.Contains(err.Error(), "canary") {
		t.Errorf("error echoes the submitted identifier: %v", err)
	}
}

func TestSubmitIdempotentOverTheWire(t *testing.T) {
	h := newHarness(t, Options{})
	a := h.submit(rid1, customerID("ABC-123"))
	b := h.submit(rid1, customerID("ABC-123"))
	if a.GetName() != b.GetName() || !strings.HasPrefix(a.GetName(), "erasures/") {
		t.Errorf("names %q and %q, want the same erasures/… name", a.GetName(), b.GetName())
	}
	got, err := h.client.Status(context.Background(), &erasurev1.StatusRequest{Name: a.GetName()})
	if err != nil || got.GetErasure().GetState() != erasurev1.State_STATE_RECEIVED {
		t.Errorf("Status = %v, %v", got, err)
	}
	dup, err := h.client.Submit(context.Background(), &erasurev1.SubmitRequest{RequestId: "4a7c1f62-0d5e-4f3b-9b7e-000000000000", AccountId: "1234", Subject: customerID("ABC-123")})
	if err != nil || !dup.GetDeduplicated() || dup.GetErasure().GetName() != a.GetName() {
		t.Errorf("second request for the same subject = %v, %v; want deduplicated %s", dup, err, a.GetName())
	}
}

// TestPanicBecomesInternal runs the real chain around a handler that panics.
func TestPanicBecomesInternal(t *testing.T) {
	logs := &lockedBuffer{}
	unary, _ := interceptors(slogTo(logs), mustValidator(t))
	var call grpc.UnaryHandler = func(ctx context.Context, req any) (any, error) { panic("boom") }
	for i := len(unary) - 1; i >= 0; i-- {
		ic, next := unary[i], call
		call = func(ctx context.Context, req any) (any, error) {
			return ic(ctx, req, &grpc.UnaryServerInfo{FullMethod: "/erasure.v1.ErasureService/Status"}, next)
		}
	}
	_, err := call(context.Background(), &erasurev1.StatusRequest{Name: "erasures/x"})
	if status.Code(err) != codes.Internal {
		t.Errorf("panicking handler: %v, want INTERNAL", err)
	}
	if !strings.Contains(logs.String(), "bug: panic in handler") {
		t.Errorf("panic not logged as a bug; logs: %s", logs.String())
	}
}

func TestHealth(t *testing.T) {
	h := newHarness(t, Options{HealthPoll: 10 * time.Millisecond})
	hc := healthpb.NewHealthClient(h.conn)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "erasure.v1.ErasureService"})
	if err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check = %v, %v; want SERVING", res, err)
	}
	// The store fails (closed under the server): health turns NOT_SERVING.
	stream, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: ""})
	if err != nil {
		t.Fatal(err)
	}
	if first, err := stream.Recv(); err != nil || first.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health Watch first = %v, %v", first, err)
	}
	h.db.Close()
	next, err := stream.Recv()
	if err != nil || next.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("after the store closed: %v, %v; want NOT_SERVING", next, err)
	}
	_, err = h.client.Submit(ctx, &erasurev1.SubmitRequest{RequestId: rid1, AccountId: "1", Subject: customerID("a")})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("Submit with the store closed: %v, want UNAVAILABLE", err)
	}
}

// TestEnumsMatchProto guards the plain casts in convert.go: the service's enums must be numbered
// like the proto's.
func TestEnumsMatchProto(t *testing.T) {
	check := func(name string, values protoreflect.EnumValueDescriptors, ours func(int32) string) {
		for i := 0; i < values.Len(); i++ {
			v := values.Get(i)
			proto := string(v.Name())
			if got := ours(int32(v.Number())); !strings.HasSuffix(proto, got) {
				t.Errorf("%s %d: proto %s, service %s", name, v.Number(), proto, got)
			}
		}
	}
	check("State", erasurev1.State(0).Descriptor().Values(), func(n int32) string { return service.State(n).String() })
}
