package liveperson_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/google/go-cmp/cmp"
)

// TestRetryPolicy injects every fault into a safe call (a search; a POST, so
// net/http's own retry of idempotent requests on a reused connection does not
// hide ours) and checks the waits the fake clock recorded, the attempts made
// and the result.
func TestRetryPolicy(t *testing.T) {
	s := time.Second
	date := t0.Add(30 * s).Format(http.TimeFormat)
	for _, tc := range []struct {
		name     string
		fault    lpsim.Fault
		wantKind liveperson.Kind // 0: success
		waits    []time.Duration
		calls    int
	}{
		{"503 thrice", lpsim.Fault{Kind: lpsim.FaultStatus, Times: 3}, 0, []time.Duration{5 * s, 10 * s, 15 * s}, 4},
		{"500 always", lpsim.Fault{Kind: lpsim.FaultStatus, Status: 500}, liveperson.KindRetryable,
			[]time.Duration{5 * s, 10 * s, 15 * s, 30 * s, 60 * s}, 6},
		{"429 twice", lpsim.Fault{Kind: lpsim.FaultStatus, Status: 429, Times: 2}, 0, []time.Duration{s, 2 * s}, 3},
		{"429 retry-after seconds", lpsim.Fault{Kind: lpsim.FaultStatus, Status: 429, RetryAfter: "7", Times: 1}, 0,
			[]time.Duration{7 * s}, 2},
		{"429 retry-after date", lpsim.Fault{Kind: lpsim.FaultStatus, Status: 429, RetryAfter: date, Times: 1}, 0,
			[]time.Duration{30 * s}, 2},
		{"503 retry-after seconds", lpsim.Fault{Kind: lpsim.FaultStatus, RetryAfter: "20", Times: 1}, 0,
			[]time.Duration{20 * s}, 2},
		{"429 always", lpsim.Fault{Kind: lpsim.FaultStatus, Status: 429}, liveperson.KindRateLimited,
			[]time.Duration{s, 2 * s, 4 * s, 8 * s, 16 * s}, 6},
		{"reset", lpsim.Fault{Kind: lpsim.FaultReset, Times: 1}, 0, []time.Duration{5 * s}, 2},
		{"malformed", lpsim.Fault{Kind: lpsim.FaultMalformed, Times: 1}, 0, []time.Duration{5 * s}, 2},
		{"truncated", lpsim.Fault{Kind: lpsim.FaultTruncated, Times: 2}, 0, []time.Duration{5 * s, 10 * s}, 3},
		{"hang", lpsim.Fault{Kind: lpsim.FaultHang, Times: 1}, 0, []time.Duration{5 * s}, 2},
		{"latency", lpsim.Fault{Kind: lpsim.FaultLatency, Latency: 30 * time.Millisecond, Times: 1}, 0, nil, 1},
		{"400", lpsim.Fault{Kind: lpsim.FaultStatus, Status: 400}, liveperson.KindTerminal, nil, 1},
		{"403", lpsim.Fault{Kind: lpsim.FaultStatus, Status: 403}, liveperson.KindTerminal, nil, 1},
		{"401", lpsim.Fault{Kind: lpsim.FaultStatus, Status: 401}, liveperson.KindUnauthorized, nil, 1},
		{"nth", lpsim.Fault{Kind: lpsim.FaultStatus, Nth: 2}, 0, nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, lpsim.Config{}, liveperson.WithCallTimeout(300*time.Millisecond))
			_ = e.sim.AddChat(chat(acct+"0000000001", "R-1", "r@example.com", t0.Add(-5*time.Hour)))
			tc.fault.Service, tc.fault.Op = lpsim.ServiceEngHist, lpsim.OpSearch
			e.sim.AddFault(tc.fault)
			got, err := e.c.SearchEngagements(context.Background(), acct, liveperson.EngagementQuery{
				From: t0.Add(-24 * time.Hour), To: t0})
			if err == nil && len(got) != 1 {
				t.Errorf("got %d records, want 1", len(got))
			}
			if got := liveperson.KindOf(err); got != tc.wantKind {
				t.Fatalf("GetDeletion: %v (kind %v), want kind %v", err, got, tc.wantKind)
			}
			if diff := cmp.Diff(tc.waits, e.clk.Sleeps()); diff != "" {
				t.Errorf("waits (-want +got):\n%s", diff)
			}
			if n := len(e.sim.Calls()); n != tc.calls {
				t.Errorf("%d calls, want %d", n, tc.calls)
			}
		})
	}
}

func TestRetryBoundedByElapsed(t *testing.T) {
	e := newEnv(t, lpsim.Config{}, liveperson.WithRetryPolicy(liveperson.RetryPolicy{MaxAttempts: 100,
		MaxElapsed: 20 * time.Second}))
	e.sim.AddFault(lpsim.Fault{Service: lpsim.ServiceRTBF, Kind: lpsim.FaultStatus, Status: 502})
	_, err := e.c.ListDeletions(context.Background(), acct, liveperson.DeletionFilter{})
	wantKind(t, err, liveperson.KindRetryable)
	if diff := cmp.Diff([]time.Duration{5 * time.Second, 10 * time.Second}, e.clk.Sleeps()); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
}

func TestRateLimitedLowersRate(t *testing.T) {
	e := newEnv(t, lpsim.Config{}, liveperson.WithRateLimit(lpsim.ServiceRTBF, liveperson.RateLimit{Rate: 40}))
	e.sim.AddFault(lpsim.Fault{Service: lpsim.ServiceRTBF, Kind: lpsim.FaultStatus, Status: 429, Times: 1})
	if _, err := e.c.ListDeletions(context.Background(), acct, liveperson.DeletionFilter{}); err != nil {
		t.Fatal(err)
	}
	if got := e.c.CurrentRate("", lpsim.ServiceRTBF); got != 36 {
		t.Errorf("rate after one 429 = %v, want 36", got)
	}
}

func TestResponseSizeLimit(t *testing.T) {
	e := newEnv(t, lpsim.Config{}, liveperson.WithMaxResponseBytes(64))
	for i := range 3 {
		_ = e.sim.AddChat(chat(acct+"000000000"+string(rune('0'+i)), "BIG-1", "b@example.com", t0.Add(-3*time.Hour)))
	}
	_, err := e.c.SearchEngagements(context.Background(), acct, liveperson.EngagementQuery{
		From: t0.Add(-24 * time.Hour), To: t0})
	// A smaller read may fit, and the limit may be raised: the caller comes
	// back later. Repeating the same read at once would only fetch the same
	// oversized answer again.
	wantKind(t, err, liveperson.KindRetryable)
	if !strings.Contains(err.Error(), "too large") {
		t.Errorf("err = %v", err)
	}
	if n := len(e.sim.Calls()); n != 1 || len(e.clk.Sleeps()) != 0 {
		t.Errorf("%d calls after %v waits, want one call", n, e.clk.Sleeps())
	}
}

func TestContextCancelStopsRetries(t *testing.T) {
	e := newEnv(t, lpsim.Config{})
	e.sim.AddFault(lpsim.Fault{Service: lpsim.ServiceRTBF, Kind: lpsim.FaultStatus})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := e.c.ListDeletions(ctx, acct, liveperson.DeletionFilter{})
	wantKind(t, err, liveperson.KindRetryable)
	if n := len(e.sim.Calls()); n != 1 {
		t.Errorf("%d calls: a 5 s wait does not fit a 3 s deadline, want 1", n)
	}
}

// TestRetryNotice: a call made with WithRetryNotice reports each failure it waits after, with
// the wait, before it sleeps, so the caller can show the failure while the call still retries.
func TestRetryNotice(t *testing.T) {
	e := newEnv(t, lpsim.Config{})
	e.sim.AddFault(lpsim.Fault{Service: lpsim.ServiceRTBF, Kind: lpsim.FaultStatus, Status: 503, Times: 2})
	var waits []time.Duration
	var kinds []liveperson.Kind
	var attempts []int
	ctx := liveperson.WithRetryNotice(context.Background(), func(r liveperson.Retry) {
		waits = append(waits, r.Wait)
		kinds = append(kinds, r.Err.Kind)
		attempts = append(attempts, r.Attempt)
		if r.Err.Service != liveperson.ServiceDeletion {
			t.Errorf("notice names service %q, want %q", r.Err.Service, liveperson.ServiceDeletion)
		}
		if n := len(e.clk.Sleeps()); n != len(waits)-1 {
			t.Errorf("notice %d came after %d waits, want before its own", len(waits), n)
		}
	})
	if _, err := e.c.ListDeletions(ctx, acct, liveperson.DeletionFilter{}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]time.Duration{5 * time.Second, 10 * time.Second}, waits); diff != "" {
		t.Errorf("notified waits (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]liveperson.Kind{liveperson.KindRetryable, liveperson.KindRetryable}, kinds); diff != "" {
		t.Errorf("notified kinds (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{1, 2}, attempts); diff != "" {
		t.Errorf("notified attempts (-want +got):\n%s", diff)
	}
}
