package server

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/service"
	"github.com/erasured/erasured/store"
)

// auditRecords reads the whole audit trail from the store.
func auditRecords(t *testing.T, db *store.DB) []service.AuditEntry {
	t.Helper()
	var out []service.AuditEntry
	err := db.View(func(tx *store.Tx) error {
		return tx.Scan(store.Audit, nil, func(_, v []byte) (bool, error) {
			var a service.AuditEntry
			if err := json.Unmarshal(v, &a); err != nil {
				return false, err
			}
			out = append(out, a)
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFailedCallsAreAudited: an authenticated caller's failed audited call leaves one record
// with the canonical code; an unauthenticated call and a failed read leave none.
func TestFailedCallsAreAudited(t *testing.T) {
	e := newTLSEnv(t, testCallers(), Options{})
	client := e.client()
	viewer := withToken(context.Background(), "secret-viewer")
	submitter := withToken(context.Background(), "secret-submitter")

	_, err := client.Submit(viewer, &erasurev1.SubmitRequest{RequestId: uuid.NewString(), AccountId: "1234", Subject: customerID("ABC-123")})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("viewer submits: %v", err)
	}
	id := uuid.NewString()
	if _, err := client.Cancel(submitter, &erasurev1.CancelRequest{Name: "erasures/" + id}); status.Code(err) != codes.NotFound {
		t.Fatalf("cancel of a missing erasure: %v", err)
	}
	// Not audited: no caller, and a read.
	if _, err := client.Submit(context.Background(), &erasurev1.SubmitRequest{RequestId: uuid.NewString(), AccountId: "1234", Subject: customerID("ABC-123")}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("submit without credentials: %v", err)
	}
	if _, err := client.Status(viewer, &erasurev1.StatusRequest{Name: "erasures/" + id}); status.Code(err) != codes.NotFound {
		t.Fatalf("status: %v", err)
	}
	// A name that is not an erasure id is not copied into the trail.
	if _, err := client.Cancel(submitter, &erasurev1.CancelRequest{Name: "erasures/jane@example.com"}); err == nil {
		t.Fatal("cancel of a bad name succeeded")
	}

	got := auditRecords(t, e.db)
	want := []service.AuditEntry{
		{Principal: "t-viewer", Method: "Submit", Action: service.AuditSubmit, Account: "1234", Outcome: "PERMISSION_DENIED", Detail: "PERMISSION_DENIED"},
		{Principal: "t-submitter", Method: "Cancel", Action: service.AuditCancel, Erasure: id, Outcome: "NOT_FOUND", Detail: "ERASURE_NOT_FOUND"},
		{Principal: "t-submitter", Method: "Cancel", Action: service.AuditCancel, Outcome: "INVALID_ARGUMENT", Detail: "INVALID_REQUEST"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d audit records, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g := got[i]
		g.Sequence, g.Time = 0, g.Time.UTC()
		if g.Time.IsZero() {
			t.Errorf("record %d has no time", i)
		}
		g.Time = want[i].Time
		if g != want[i] {
			t.Errorf("record %d = %+v\nwant %+v", i, g, want[i])
		}
	}
}

func TestCodeNames(t *testing.T) {
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if codeName(c) == "" || codeName(c) == "UNKNOWN" && c != codes.Unknown {
			t.Errorf("code %v has no canonical name", c)
		}
	}
	if codeName(codes.Canceled) != "CANCELLED" || codeName(codes.PermissionDenied) != "PERMISSION_DENIED" {
		t.Error("canonical names misspelt")
	}
}

// TestFailedCallsAuditedWithoutAuth: on the auth-less server the caller is "anonymous", and its
// failed audited calls are recorded like anyone's (the service records its successes).
func TestFailedCallsAuditedWithoutAuth(t *testing.T) {
	h := newHarness(t, Options{})
	id := uuid.NewString()
	if _, err := h.client.Cancel(context.Background(), &erasurev1.CancelRequest{Name: "erasures/" + id}); status.Code(err) != codes.NotFound {
		t.Fatalf("cancel of a missing erasure: %v", err)
	}
	got := auditRecords(t, h.db)
	if len(got) != 1 || got[0].Principal != anonymous || got[0].Erasure != id || got[0].Outcome != "NOT_FOUND" {
		t.Errorf("audit trail %+v, want one NOT_FOUND record of anonymous", got)
	}
}
