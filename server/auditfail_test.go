package server

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/service"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// auditRecords reads the whole audit trail from the store.
func auditRecords(t *testing.T, db store.DB) []service.AuditEntry {
	t.Helper()
	var out []service.AuditEntry
	err := db.View(func(tx store.Tx) error {
		return tx.Scan(schema.Audit, nil, func(k, v []byte) (bool, error) {
			if k[0] == 0xff { // the trail's index by erasure follows its entries
				return false, nil
			}
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
		if CodeName(c) == "" || CodeName(c) == "UNKNOWN" && c != codes.Unknown {
			t.Errorf("code %v has no canonical name", c)
		}
	}
	if CodeName(codes.Canceled) != "CANCELLED" || CodeName(codes.PermissionDenied) != "PERMISSION_DENIED" {
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

// blockingLP holds every chat search until release is closed, telling entered of each.
type blockingLP struct {
	oneChatLP
	entered chan struct{}
	release chan struct{}
}

func (f blockingLP) SearchChats(ctx context.Context, account string, from, to time.Time, keyword string) ([]service.ChatRecord, error) {
	select {
	case f.entered <- struct{}{}:
	default:
	}
	select {
	case <-f.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return f.oneChatLP.SearchChats(ctx, account, from, to, keyword)
}

// TestCallCapComesBeforeTheAudit: a principal at its cap of calls in flight is refused
// (RESOURCE_EXHAUSTED, logged) before anything is written: a flood of calls it may not make, or
// that fail, leaves no audit record while its slot is taken.
func TestCallCapComesBeforeTheAudit(t *testing.T) {
	callers := Callers{Tokens: []TokenPrincipal{{Principal: "busy", SHA256: tokenHash("busy-token"), Roles: []Role{RoleSubmitter}}}}
	e := newTLSEnv(t, callers, Options{Limits: Limits{MaxCallsPerPrincipal: 1}})
	lp := blockingLP{oneChatLP: oneChatLP{start: time.Now().Add(-24 * time.Hour)}, entered: make(chan struct{}, 1), release: make(chan struct{})}
	ctx, stop := context.WithCancel(context.Background())
	p := e.svc.NewPipeline(lp, service.PipelineConfig{})
	ran := make(chan error, 1)
	go func() { ran <- p.Run(ctx) }()
	t.Cleanup(func() { stop(); <-ran })

	client := e.client()
	busy := withToken(context.Background(), "busy-token")
	previewed := make(chan error, 1)
	go func() {
		_, err := client.Resolve(busy, &erasurev1.ResolveRequest{Target: &erasurev1.ResolveRequest_Preview{Preview: &erasurev1.ResolvePreview{
			AccountId: "1234", Subject: customerID("ABC-123"), Channels: []erasurev1.Channel{erasurev1.Channel_CHANNEL_CHAT}}}})
		previewed <- err
	}()
	<-lp.entered // the preview holds busy's one slot

	const flood = 20
	for i := range flood {
		// Busy may not settle (PERMISSION_DENIED), and there is no such erasure to cancel
		// (NOT_FOUND): both audited, were they not refused first.
		_, err := client.SettleBatch(busy, &erasurev1.SettleBatchRequest{AccountId: "1234", BatchId: 1, Outcome: &erasurev1.SettleBatchRequest_NotCreated{NotCreated: true}})
		if status.Code(err) != codes.ResourceExhausted || errorReason(err) != "TOO_MANY_CALLS" {
			t.Fatalf("settle %d at the cap: %v, want RESOURCE_EXHAUSTED TOO_MANY_CALLS", i, err)
		}
		_, err = client.Cancel(busy, &erasurev1.CancelRequest{Name: erasureName()})
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("cancel %d at the cap: %v, want RESOURCE_EXHAUSTED", i, err)
		}
	}
	if got := auditRecords(t, e.db); len(got) != 0 {
		t.Errorf("%d audit records written for calls refused at the cap: %+v", len(got), got)
	}
	if n := strings.Count(e.logs.String(), `"msg":"limit reached"`); n != 2*flood {
		t.Errorf("%d refusals logged, want %d", n, 2*flood)
	}
	close(lp.release)
	if err := <-previewed; err != nil {
		t.Fatalf("preview: %v", err)
	}
	// With its slot free, busy's refused settle is audited as before.
	if _, err := client.SettleBatch(busy, &erasurev1.SettleBatchRequest{AccountId: "1234", BatchId: 1, Outcome: &erasurev1.SettleBatchRequest_NotCreated{NotCreated: true}}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("settle below the cap: %v, want PERMISSION_DENIED", err)
	}
	var denied, exhausted int
	for _, a := range auditRecords(t, e.db) {
		switch a.Outcome {
		case "PERMISSION_DENIED":
			denied++
		case "RESOURCE_EXHAUSTED":
			exhausted++
		}
	}
	if denied != 1 || exhausted != 0 {
		t.Errorf("audit trail: %d PERMISSION_DENIED, %d RESOURCE_EXHAUSTED records, want 1 and 0", denied, exhausted)
	}
}
