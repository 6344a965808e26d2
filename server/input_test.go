package server

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
)

// fieldsOf lists the fields named by the BadRequest detail of err.
func fieldsOf(err error) []string {
	st, _ := status.FromError(err)
	var out []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				out = append(out, v.GetField())
			}
		}
	}
	return out
}

// TestSubmitRefusesBadCustomerIDs sends customer ids that white space or invisible characters
// spoil, as the subject and as an alias, through the real interceptor chain: each is refused
// with INVALID_ARGUMENT before it reaches the service, and the answer does not echo it.
func TestSubmitRefusesBadCustomerIDs(t *testing.T) {
	h := newHarness(t, Options{})
	ctx := context.Background()
	bad := map[string]string{
		"blank":                 " ",
		"tabs":                  "\t\t",
		"leading space":         " ABC-123",
		"trailing space":        "ABC-123 ",
		"inner tab":             "ABC\t123",
		"DEL":                   "ABC\x7f123",
		"NEL":                   "ABC\u0085123",
		"line separator":        "ABC\u2028123",
		"paragraph separator":   "ABC\u2029123",
		"zero-width space":      "ABC\u200b123",
		"only zero-width":       "\u200b",
		"ideographic space":     "\u3000",
		"no-break space at end": "ABC-123\u00a0",
	}
	n := 0
	for name, id := range bad {
		for _, asAlias := range []bool{false, true} {
			n++
			req := &erasurev1.SubmitRequest{RequestId: fmt.Sprintf("4a7c1f62-0d5e-4f3b-9b7e-%012d", n), AccountId: "1234",
				Subject: customerID(id)}
			if asAlias {
				req.Subject = customerID("GOOD-CUSTOMER")
				req.Aliases = []*erasurev1.Subject{customerID(id)}
			}
			_, err := h.client.Submit(ctx, req)
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("%s (alias %v): Submit = %v, want INVALID_ARGUMENT", name, asAlias, err)
				continue
			}
			if strings.TrimSpace(id) != "" && strings.Contains(err.Error(), strings.TrimSpace(id)) {
				t.Errorf("%s (alias %v): the error %q echoes the identifier", name, asAlias, err)
			}
		}
	}
	list, err := h.client.List(ctx, &erasurev1.ListRequest{})
	if err != nil || len(list.GetErasures()) != 0 {
		t.Errorf("List = %d erasures, %v; want none stored", len(list.GetErasures()), err)
	}
}

// TestSubmitRefusesBadTimesAndRefs: a received_time of year 1 (which once turned into "now"),
// 1969 or ahead of the clock, and an external_ref holding an identifier, are refused over the
// wire with a field violation naming the field and not the value.
func TestSubmitRefusesBadTimesAndRefs(t *testing.T) {
	h := newHarness(t, Options{})
	ctx := context.Background()
	tests := []struct {
		name  string
		mod   func(*erasurev1.SubmitRequest)
		field string
	}{
		{"year 1", func(r *erasurev1.SubmitRequest) {
			r.ReceivedTime = timestamppb.New(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC))
		}, "received_time"},
		{"1969", func(r *erasurev1.SubmitRequest) {
			r.ReceivedTime = timestamppb.New(time.Date(1969, 7, 20, 20, 17, 0, 0, time.UTC))
		}, "received_time"},
		{"an hour ahead", func(r *erasurev1.SubmitRequest) { r.ReceivedTime = timestamppb.New(time.Now().Add(time.Hour)) }, "received_time"},
		{"external_ref is the subject", func(r *erasurev1.SubmitRequest) { r.ExternalRef = "CANARY-4242" }, "external_ref"},
		{"external_ref holds an alias", func(r *erasurev1.SubmitRequest) {
			r.Aliases = []*erasurev1.Subject{{Id: &erasurev1.Subject_Email{Email: "canary.ref@example.com"}}}
			r.ExternalRef = "ticket for CANARY.REF@example.com"
		}, "external_ref"},
	}
	for i, tt := range tests {
		req := &erasurev1.SubmitRequest{RequestId: fmt.Sprintf("4a7c1f62-0d5e-4f3b-9b7e-%012d", i+1), AccountId: "1234",
			Subject: customerID("CANARY-4242")}
		tt.mod(req)
		_, err := h.client.Submit(ctx, req)
		if status.Code(err) != codes.InvalidArgument || reasonOf(err) != "INVALID_REQUEST" {
			t.Errorf("%s: Submit = %v, want INVALID_ARGUMENT INVALID_REQUEST", tt.name, err)
			continue
		}
		if got := fieldsOf(err); len(got) != 1 || got[0] != tt.field {
			t.Errorf("%s: field violations %v, want [%s]", tt.name, got, tt.field)
		}
		if low := strings.ToLower(err.Error()); strings.Contains(low, "canary") {
			t.Errorf("%s: the error %q echoes an identifier", tt.name, err)
		}
	}
	// A received_time in range is accepted and kept.
	at := time.Now().Add(-72 * time.Hour).Truncate(time.Second).UTC()
	res, err := h.client.Submit(ctx, &erasurev1.SubmitRequest{RequestId: "4a7c1f62-0d5e-4f3b-9b7e-000000000099", AccountId: "1234",
		Subject: customerID("CANARY-4242"), ReceivedTime: timestamppb.New(at), ExternalRef: "ZD-77"})
	if err != nil || !res.GetErasure().GetReceivedTime().AsTime().Equal(at) {
		t.Errorf("Submit with received_time %v = %v, %v; want it kept", at, res.GetErasure().GetReceivedTime(), err)
	}
}
