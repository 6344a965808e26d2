package liveperson_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/liveperson/lpsim"
)

// TestTokenWaitEndedIsNotRefusal: sentinel hangs and the caller's context ends
// before the token fetch does. The call fails as retryable, waiting for
// credentials, with the context's error as its cause: nothing was refused, so
// it must not read as rejected credentials.
func TestTokenWaitEndedIsNotRefusal(t *testing.T) {
	e, o := oauth2Env(t, "lpsim-secret-"+acct)
	e.sim.AddFault(lpsim.Fault{Service: lpsim.ServiceSentinel, Op: lpsim.OpToken, Kind: lpsim.FaultHang, Times: 1})
	for _, tc := range []struct {
		name string
		call func(context.Context) error
	}{
		{"token", func(ctx context.Context) error { _, err := o.Token(ctx, acct); return err }},
		{"search", func(ctx context.Context) error {
			_, err := e.c.SearchEngagements(ctx, acct, liveperson.EngagementQuery{From: t0.Add(-time.Hour), To: t0})
			return err
		}},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err := tc.call(ctx)
		cancel()
		if liveperson.IsUnauthorized(err) || liveperson.KindOf(err) != liveperson.KindRetryable {
			t.Errorf("%s: %v (kind %v), want retryable, not unauthorized", tc.name, err, liveperson.KindOf(err))
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: %v does not keep the context's error", tc.name, err)
		}
	}
}

// TestTokenFetchNotRetriedInside: sentinel answers 503. The token fetch makes
// one attempt and the call it serves retries it on LivePerson's schedule
// (5 s after a 5xx), naming sentinel: no retries nested within the call's.
func TestTokenFetchNotRetriedInside(t *testing.T) {
	e, o := oauth2Env(t, "lpsim-secret-"+acct)
	e.sim.AddFault(lpsim.Fault{Service: lpsim.ServiceSentinel, Op: lpsim.OpToken, Kind: lpsim.FaultStatus})
	c, err := liveperson.New(liveperson.WithResolver(e.resolver()), liveperson.WithAuth(o),
		liveperson.WithSource("erasured-test"), liveperson.WithClock(e.clk), liveperson.WithHTTPClient(e.srv.Client()),
		liveperson.WithRandom(func() float64 { return 0 }), liveperson.WithRetryPolicy(liveperson.RetryPolicy{MaxAttempts: 2}))
	if err != nil {
		t.Fatal(err)
	}
	var notices []string
	ctx := liveperson.WithRetryNotice(context.Background(), func(r liveperson.Retry) {
		notices = append(notices, fmt.Sprintf("%s %d %v", r.Err.Service, r.Attempt, r.Wait))
	})
	_, err = c.SearchEngagements(ctx, acct, liveperson.EngagementQuery{From: t0.Add(-time.Hour), To: t0})
	wantKind(t, err, liveperson.KindRetryable)
	if want := []string{"sentinel 1 5s"}; !slices.Equal(notices, want) {
		t.Errorf("retry notices = %q, want %q", notices, want)
	}
	if want := []time.Duration{5 * time.Second}; !slices.Equal(e.clk.Sleeps(), want) {
		t.Errorf("waits = %v, want %v", e.clk.Sleeps(), want)
	}
	if n := tokenCalls(e); n != 2 {
		t.Errorf("%d token requests, want 2 (one per attempt of the call)", n)
	}
}

// TestCreateRetriesWhenNothingWasSent: a deletion create whose token fetch
// failed sent nothing to the deletion API, so it is tried again like a safe
// call; once sent, it never is.
func TestCreateRetriesWhenNothingWasSent(t *testing.T) {
	e, o := oauth2Env(t, "lpsim-secret-"+acct)
	e.sim.AddFault(lpsim.Fault{Service: lpsim.ServiceSentinel, Op: lpsim.OpToken, Kind: lpsim.FaultStatus, Times: 1})
	c, err := liveperson.New(liveperson.WithResolver(e.resolver()), liveperson.WithAuth(o),
		liveperson.WithSource("erasured-test"), liveperson.WithClock(e.clk), liveperson.WithHTTPClient(e.srv.Client()),
		liveperson.WithRandom(func() float64 { return 0 }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateDeletion(context.Background(), acct, liveperson.KindEngagement, []string{acct + "0000000001"}); err != nil {
		t.Fatalf("CreateDeletion after a failed token fetch: %v, want the retry to create it", err)
	}
	if n := len(e.sim.CallsTo(lpsim.ServiceRTBF, lpsim.OpCreate)); n != 1 {
		t.Errorf("%d creates sent, want 1", n)
	}
	if want := []time.Duration{5 * time.Second}; !slices.Equal(e.clk.Sleeps(), want) {
		t.Errorf("waits = %v, want %v", e.clk.Sleeps(), want)
	}
}
