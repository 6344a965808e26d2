package port

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/service"
)

func TestPortErrClassifies(t *testing.T) {
	tests := []struct {
		kind   liveperson.Kind
		status int
		want   error
		auth   bool // the error must also say the credentials were refused
	}{
		{kind: liveperson.KindQuotaExhausted, want: service.ErrQuotaExhausted},
		{kind: liveperson.KindOutcomeUnknown, want: service.ErrOutcomeUnknown},
		{kind: liveperson.KindResidency, want: service.ErrResidency},
		{kind: liveperson.KindTerminal, status: 400, want: service.ErrRejected},
		{kind: liveperson.KindInvalid, want: service.ErrRejected},
		{kind: liveperson.KindRetryable, want: service.ErrUnavailable},
		{kind: liveperson.KindRateLimited, want: service.ErrUnavailable},
		// Refused credentials, or credentials without the rights, are no fault of the records:
		// retried later, never counted as a rejection of the batch.
		{kind: liveperson.KindUnauthorized, status: 401, want: service.ErrUnavailable, auth: true},
		{kind: liveperson.KindTerminal, status: 403, want: service.ErrUnavailable, auth: true},
	}
	for _, tt := range tests {
		in := &liveperson.Error{Kind: tt.kind, Service: "rtbf", Status: tt.status}
		got := portErr(in)
		if !errors.Is(got, tt.want) {
			t.Errorf("portErr(kind %v) = %v, want it to wrap %v", tt.kind, got, tt.want)
		}
		if errors.Is(got, service.ErrUnauthorized) != tt.auth {
			t.Errorf("portErr(kind %v, %d) wraps ErrUnauthorized = %v, want %v", tt.kind, tt.status, !tt.auth, tt.auth)
		}
		if tt.auth && errors.Is(got, service.ErrRejected) {
			t.Errorf("portErr(kind %v, %d) = %v: refused credentials must not reject the records", tt.kind, tt.status, got)
		}
		if !errors.Is(got, in) {
			t.Errorf("portErr(kind %v) lost the original error", tt.kind)
		}
	}
	if got := portErr(context.Canceled); got != context.Canceled {
		t.Errorf("portErr(context.Canceled) = %v, want it unchanged", got)
	}
}

func TestDeletionDecodesIntent(t *testing.T) {
	d, ok := deletion(liveperson.DeletionRequest{ID: "127223", Status: "NOT_STARTED",
		DeleteJSON: `{"conversation":["b","a"]}`})
	if !ok {
		t.Fatal("numeric id refused")
	}
	if d.ID != 127223 || d.Kind != service.KindConversation || len(d.IDs) != 2 || d.IDs[0] != "a" {
		t.Errorf("deletion = %+v, want id 127223, kind conversation, ids [a b]", d)
	}
	for _, id := range []string{"x", "", "0", "-5", "12.5", "99999999999999999999"} {
		if _, ok := deletion(liveperson.DeletionRequest{ID: id}); ok {
			t.Errorf("id %q accepted, want it unreadable", id)
		}
	}
	if d, _ := deletion(liveperson.DeletionRequest{ID: "1", IsCanceled: true}); d.Status != service.LPCanceled {
		t.Errorf("is_canceled without status: %q, want CANCELED", d.Status)
	}
}

// TestPortErrKeepsRetryAfter: LivePerson answers 429 asking for ten minutes, more than the
// call waits in place: the call gives up at once, and the port's error still says unavailable
// and carries the wait, so the pipeline does not come back sooner.
func TestPortErrKeepsRetryAfter(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Retry-After", "600")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	t.Cleanup(srv.Close)
	clk := liveperson.NewFakeClock(t0)
	c, err := liveperson.New(
		liveperson.WithResolver(liveperson.FixedHost{Addr: strings.TrimPrefix(srv.URL, "http://"), Insecure: true}),
		liveperson.WithAuth(liveperson.StaticBearer{"*": "t"}), liveperson.WithSource("erasured-test"),
		liveperson.WithClock(clk), liveperson.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(c).ListDeletions(context.Background(), acct, t0.Add(-time.Hour), t0)
	if !errors.Is(err, service.ErrUnavailable) {
		t.Fatalf("ListDeletions under a long 429 = %v, want ErrUnavailable", err)
	}
	var ra interface{ RetryAfter() time.Duration }
	if !errors.As(err, &ra) || ra.RetryAfter() != 10*time.Minute {
		t.Errorf("ListDeletions error %v carries no ten-minute wait", err)
	}
	if n := calls.Load(); n != 1 || len(clk.Sleeps()) != 0 {
		t.Errorf("%d requests, waits %v: want one request and no wait in place", n, clk.Sleeps())
	}
}
