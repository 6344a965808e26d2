package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

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
	unary, _ := newServer(nil, Options{Logger: slogTo(logs)}).interceptors(mustValidator(t))
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

// TestNewEnumValuesMatchProto checks, by number, the enum values that the plain casts in
// convert.go carry and that have no name in the service to compare.
func TestNewEnumValuesMatchProto(t *testing.T) {
	for _, tt := range []struct {
		name         string
		ours, theirs int32
	}{
		{"BLOCKED_ON_IDENTIFIER_UNSEARCHABLE", int32(service.BlockedIdentifierUnsearchable), int32(erasurev1.BlockedOn_BLOCKED_ON_IDENTIFIER_UNSEARCHABLE)},
		{"BLOCKED_ON_DELETION_OUTCOME_UNKNOWN", int32(service.BlockedDeletionOutcomeUnknown), int32(erasurev1.BlockedOn_BLOCKED_ON_DELETION_OUTCOME_UNKNOWN)},
		{"BLOCKED_ON_CONFIRMATION", int32(service.BlockedConfirmation), int32(erasurev1.BlockedOn_BLOCKED_ON_CONFIRMATION)},
		{"TARGET_STATUS_NOT_FOUND", int32(service.TargetNotFound), int32(erasurev1.TargetStatus_TARGET_STATUS_NOT_FOUND)},
		{"TARGET_STATUS_VERIFIED", int32(service.TargetVerified), int32(erasurev1.TargetStatus_TARGET_STATUS_VERIFIED)},
		{"SUBJECT_KIND_CONSUMER_ID", int32(service.SubjectConsumerID), int32(erasurev1.SubjectKind_SUBJECT_KIND_CONSUMER_ID)},
		{"CHANNEL_MESSAGING", int32(service.ChannelMessaging), int32(erasurev1.Channel_CHANNEL_MESSAGING)},
		{"TARGET_KIND_CONSUMER", int32(service.KindConsumer), int32(erasurev1.TargetKind_TARGET_KIND_CONSUMER)},
	} {
		if tt.ours != tt.theirs {
			t.Errorf("%s: service %d, proto %d", tt.name, tt.ours, tt.theirs)
		}
	}
}

func TestConvertNewFields(t *testing.T) {
	send := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	e := service.Erasure{ID: "x", AliasCount: 3, UnsearchableAccepted: true, BlockedOn: service.BlockedIdentifierUnsearchable,
		HeldBatches: []service.HeldBatch{{BatchID: 7, Kind: service.KindConversation, RecordCount: 2, Candidates: []int64{11, 12}, SendTime: send}}}
	got := toProto(e)
	want := &erasurev1.Erasure{Name: "erasures/x", AliasCount: 3, UnsearchableAccepted: true,
		BlockedOn: erasurev1.BlockedOn_BLOCKED_ON_IDENTIFIER_UNSEARCHABLE,
		HeldBatches: []*erasurev1.HeldBatch{{BatchId: 7, Kind: erasurev1.TargetKind_TARGET_KIND_CONVERSATION, RecordCount: 2,
			CandidateRequestIds: []int64{11, 12}, SendTime: timestamppb.New(send)}}}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("toProto (-want +got):\n%s", diff)
	}

	plan := planToProto(service.Plan{Etag: "e", IdentifierUnsearchable: true,
		Identifiers: []service.PlanIdentifier{{Kind: service.SubjectCustomerID, Fingerprint: "f1", PossiblyUnsearchable: true},
			{Kind: service.SubjectConsumerID, Fingerprint: "f2"}},
		Groups: []service.PlanGroup{{Kind: service.KindConsumer, Records: []service.PlanRecord{{Fingerprint: "f2", Status: service.TargetNotFound}}}}})
	wantPlan := &erasurev1.Plan{PlanEtag: "e", IdentifierUnsearchable: true,
		Identifiers: []*erasurev1.PlanIdentifier{
			{Kind: erasurev1.SubjectKind_SUBJECT_KIND_CUSTOMER_ID, Fingerprint: "f1", PossiblyUnsearchable: true},
			{Kind: erasurev1.SubjectKind_SUBJECT_KIND_CONSUMER_ID, Fingerprint: "f2"}},
		Groups: []*erasurev1.PlanGroup{{Kind: erasurev1.TargetKind_TARGET_KIND_CONSUMER,
			Records: []*erasurev1.PlanRecord{{Fingerprint: "f2", Status: erasurev1.TargetStatus_TARGET_STATUS_NOT_FOUND}}}}}
	if diff := cmp.Diff(wantPlan, plan, protocmp.Transform()); diff != "" {
		t.Errorf("planToProto (-want +got):\n%s", diff)
	}

	req := submitFromProto(&erasurev1.SubmitRequest{RequestId: rid1, AccountId: "1234", Subject: customerID("A"),
		Aliases: []*erasurev1.Subject{{Id: &erasurev1.Subject_Email{Email: "a@example.com"}}, {Id: &erasurev1.Subject_ConsumerId{ConsumerId: "k"}}}})
	wantAliases := []service.Subject{{Kind: service.SubjectEmail, Value: "a@example.com"}, {Kind: service.SubjectConsumerID, Value: "k"}}
	if diff := cmp.Diff(wantAliases, req.Aliases); diff != "" {
		t.Errorf("submitFromProto aliases (-want +got):\n%s", diff)
	}
	if got := aliasesFromProto(nil); got != nil {
		t.Errorf("aliasesFromProto(nil) = %v", got)
	}
}

// TestReceiptRoundTrip: a receipt carried by the API (and printed as JSON by grpcurl) comes back
// with every signed field, old receipts without the newer fields included, so that it verifies
// offline.
func TestReceiptRoundTrip(t *testing.T) {
	base := service.Receipt{Erasure: "erasures/x", AccountID: "1234", SubjectFingerprint: "fp",
		Counts:       []service.TargetCount{{Kind: service.KindEngagement, Status: service.TargetVerified, Count: 2}},
		LPRequestIDs: []int64{5}, ReceivedTime: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), CompleteTime: time.Date(2026, 3, 9, 0, 0, 0, 0, time.UTC),
		VerificationSummary: "2 of 2", PreviousHash: "ph", Hash: "h", Signature: "s", KeyID: "k"}
	full := base
	full.AliasFingerprints = []string{"a1", "a2"}
	full.UnsearchedChannels = []service.Channel{service.ChannelMessaging}
	full.UnverifiableCount, full.NotFoundCount = 1, 2
	for name, rc := range map[string]service.Receipt{"old": base, "full": full} {
		js, err := protojson.Marshal(receiptToProto(rc))
		if err != nil {
			t.Fatal(err)
		}
		var back erasurev1.Receipt
		if err := protojson.Unmarshal(js, &back); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(rc, ReceiptFromProto(&back)); diff != "" {
			t.Errorf("%s receipt round trip (-want +got):\n%s", name, diff)
		}
	}
}

// TestAliasesOverTheWire: aliases reach the service, only their count comes back, and the
// schema's rules on aliases are enforced before any work.
func TestAliasesOverTheWire(t *testing.T) {
	h := newHarness(t, Options{})
	ctx := context.Background()
	res, err := h.client.Submit(ctx, &erasurev1.SubmitRequest{RequestId: rid1, AccountId: "1234", Subject: customerID("ALIAS-1"),
		Aliases: []*erasurev1.Subject{{Id: &erasurev1.Subject_Email{Email: "canary.wire@example.com"}}, {Id: &erasurev1.Subject_Phone{Phone: "+44 7700 900777"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.GetErasure().GetAliasCount() != 2 {
		t.Errorf("alias_count = %d, want 2", res.GetErasure().GetAliasCount())
	}
	plan, err := h.client.Resolve(ctx, &erasurev1.ResolveRequest{Target: &erasurev1.ResolveRequest_Name{Name: res.GetErasure().GetName()}})
	if err != nil {
		t.Fatal(err)
	}
	ids := plan.GetPlan().GetIdentifiers()
	if len(ids) != 3 || ids[0].GetFingerprint() != res.GetErasure().GetSubjectFingerprint() || !ids[2].GetPossiblyUnsearchable() || ids[1].GetPossiblyUnsearchable() {
		t.Errorf("plan identifiers = %v, want the subject then both aliases, the phone possibly unsearchable", ids)
	}
	for _, m := range []proto.Message{res, plan} {
		if js, _ := protojson.Marshal(m); strings.Contains(string(js), "canary.wire") || strings.Contains(string(js), "900777") {
			t.Errorf("a response echoes an alias: %s", js)
		}
	}
	dup, err := h.client.Submit(ctx, &erasurev1.SubmitRequest{RequestId: "4a7c1f62-0d5e-4f3b-9b7e-000000000001", AccountId: "1234",
		Subject: &erasurev1.Subject{Id: &erasurev1.Subject_Email{Email: "canary.wire@example.com"}}})
	if err != nil || !dup.GetDeduplicated() || dup.GetErasure().GetName() != res.GetErasure().GetName() {
		t.Errorf("Submit by an alias = %v, %v; want deduplicated onto %s", dup, err, res.GetErasure().GetName())
	}
	_, err = h.client.Submit(ctx, &erasurev1.SubmitRequest{RequestId: "4a7c1f62-0d5e-4f3b-9b7e-000000000002", AccountId: "1234",
		Subject: customerID("B"), Aliases: []*erasurev1.Subject{{Id: &erasurev1.Subject_Targets{Targets: &erasurev1.Targets{ConversationIds: []string{"c"}}}}}})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("an alias of explicit targets = %v, want INVALID_ARGUMENT", err)
	}
	_, err = h.client.Submit(ctx, &erasurev1.SubmitRequest{RequestId: "4a7c1f62-0d5e-4f3b-9b7e-000000000003", AccountId: "1234",
		Subject: customerID("C"), Aliases: []*erasurev1.Subject{customerID("C")}})
	if status.Code(err) != codes.InvalidArgument || reasonOf(err) != "INVALID_REQUEST" {
		t.Errorf("an alias repeating the subject = %v, want INVALID_ARGUMENT INVALID_REQUEST", err)
	}
}

func TestListByExternalRefOverTheWire(t *testing.T) {
	h := newHarness(t, Options{})
	ctx := context.Background()
	var want []string
	for i, ref := range []string{"TICKET-7", "TICKET-8", "TICKET-7"} {
		res, err := h.client.Submit(ctx, &erasurev1.SubmitRequest{
			RequestId: fmt.Sprintf("4a7c1f62-0d5e-4f3b-9b7e-%012d", i+1), AccountId: "1234",
			Subject: customerID(fmt.Sprint("C-", i)), ExternalRef: ref,
		})
		if err != nil {
			t.Fatal(err)
		}
		if ref == "TICKET-7" {
			want = append(want, res.GetErasure().GetName())
		}
	}
	var got []string
	page, err := h.client.List(ctx, &erasurev1.ListRequest{ExternalRef: "TICKET-7", PageSize: 1})
	for err == nil {
		for _, e := range page.GetErasures() {
			got = append(got, e.GetName())
		}
		if page.GetNextPageToken() == "" {
			break
		}
		page, err = h.client.List(ctx, &erasurev1.ListRequest{ExternalRef: "TICKET-7", PageSize: 1, PageToken: page.GetNextPageToken()})
	}
	if err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("List(external_ref TICKET-7) = %v, %v; want %v", got, err, want)
	}
	_, err = h.client.List(ctx, &erasurev1.ListRequest{ExternalRef: "bad\x01ref"})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("List with a control character in external_ref: %v, want INVALID_ARGUMENT", err)
	}
}
