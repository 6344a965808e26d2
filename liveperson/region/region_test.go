package region_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/erasured/erasured/liveperson/region"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

type fixture struct {
	sim    *lpsim.Sim
	srv    *httptest.Server
	clk    *liveperson.FakeClock
	router *region.Router
	alerts []region.Violation
	mu     sync.Mutex
}

// newFixture serves a simulator with the accounts (id → region) and routes them
// through a Router; tune adjusts the router's configuration.
func newFixture(t *testing.T, accounts map[string]string, tune func(*region.Config)) *fixture {
	t.Helper()
	f := &fixture{clk: liveperson.NewFakeClock(t0)}
	var accts []lpsim.Account
	for id, reg := range accounts {
		accts = append(accts, lpsim.DefaultAccount(id, reg))
	}
	f.sim = lpsim.New(lpsim.Config{Accounts: accts, Clock: lpsim.NewManualClock(t0),
		StaticTokens: map[string]string{"tok": "*"}})
	f.srv = httptest.NewServer(f.sim.Handler())
	t.Cleanup(func() { f.sim.Close(); f.srv.Close() })
	cfg := region.Config{
		DomainAPIURL: f.srv.URL, Accounts: accounts, TTL: time.Hour, Clock: f.clk,
		OnViolation: func(v region.Violation) { f.mu.Lock(); f.alerts = append(f.alerts, v); f.mu.Unlock() },
		Options: []liveperson.Option{liveperson.WithHTTPClient(f.srv.Client()),
			liveperson.WithRandom(func() float64 { return 0 })},
	}
	if tune != nil {
		tune(&cfg)
	}
	r, err := region.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.router = r
	return f
}

func (f *fixture) calls(op string) int { return len(f.sim.CallsTo(lpsim.ServiceDomain, op)) }

var threeServices = []string{liveperson.ServiceDeletion, liveperson.ServiceMessaging, liveperson.ServiceEngagements}

// hosts asks the router for every service and fails on any error.
func (f *fixture) hosts(t *testing.T, account string, services ...string) {
	t.Helper()
	want := strings.TrimPrefix(f.srv.URL, "http://")
	for _, svc := range services {
		if h, err := f.router.Host(context.Background(), account, svc); err != nil || h != want {
			t.Fatalf("Host(%s, %s) = %q, %v; want %q", account, svc, h, err, want)
		}
	}
}

// TestRouterSingleFormByDefault: each service is discovered with the documented
// single form, once per TTL; the list form is never asked.
func TestRouterSingleFormByDefault(t *testing.T) {
	f := newFixture(t, map[string]string{"1234": region.US}, nil)
	if !f.router.TestMode() || f.router.Scheme() != "http" || f.router.Region("1234") != region.US {
		t.Fatalf("test mode = %v, scheme = %s", f.router.TestMode(), f.router.Scheme())
	}
	f.hosts(t, "1234", threeServices...)
	f.hosts(t, "1234", threeServices...)
	if single, list := f.calls(lpsim.OpBaseURI), f.calls(lpsim.OpBaseURIs); single != 3 || list != 0 {
		t.Errorf("%d single-form and %d list-form calls for three services asked twice, want 3 and 0", single, list)
	}
	for _, c := range f.sim.CallsTo(lpsim.ServiceDomain, lpsim.OpBaseURI) {
		if c.Query != "version=1.0" {
			t.Errorf("Domain API query %q, want version=1.0", c.Query)
		}
	}
	f.clk.Advance(61 * time.Minute)
	f.hosts(t, "1234", liveperson.ServiceDeletion)
	if n := f.calls(lpsim.OpBaseURI); n != 4 {
		t.Errorf("%d single-form calls after the TTL, want 4 (only the service asked is refreshed)", n)
	}
	_, err := f.router.Host(context.Background(), "7777", liveperson.ServiceDeletion)
	if liveperson.KindOf(err) != liveperson.KindInvalid {
		t.Errorf("unconfigured account: %v", err)
	}
}

// TestRouterListFormWhenAsked: with the shortcut on, one list-form call serves
// every service it names; a service it lacks is asked for alone.
func TestRouterListFormWhenAsked(t *testing.T) {
	f := newFixture(t, map[string]string{"1234": region.US}, func(c *region.Config) { c.UseListForm = true })
	f.hosts(t, "1234", threeServices...)
	if single, list := f.calls(lpsim.OpBaseURI), f.calls(lpsim.OpBaseURIs); single != 0 || list != 1 {
		t.Errorf("%d single-form and %d list-form calls, want 0 and 1", single, list)
	}
	f.hosts(t, "1234", "someService")
	if single, list := f.calls(lpsim.OpBaseURI), f.calls(lpsim.OpBaseURIs); single != 1 || list != 1 {
		t.Errorf("for a service the list lacks: %d single-form and %d list-form calls, want 1 and 1", single, list)
	}
	f.clk.Advance(61 * time.Minute)
	f.hosts(t, "1234", threeServices...)
	if n := f.calls(lpsim.OpBaseURIs); n != 2 {
		t.Errorf("%d list-form calls after the TTL, want 2", n)
	}
}

// TestRouterListForm404: a Domain API without the list form answers 404; the
// single form fills in, and the list form is left alone for ListFormRetry.
func TestRouterListForm404(t *testing.T) {
	f := newFixture(t, map[string]string{"1234": region.US, "5678": region.UK}, func(c *region.Config) {
		c.UseListForm, c.ListFormRetry = true, 6*time.Hour
	})
	f.sim.AddFault(lpsim.Fault{Service: lpsim.ServiceDomain, Op: lpsim.OpBaseURIs, Kind: lpsim.FaultStatus, Status: 404})
	f.hosts(t, "1234", threeServices...)
	f.hosts(t, "5678", threeServices...)
	if single, list := f.calls(lpsim.OpBaseURI), f.calls(lpsim.OpBaseURIs); single != 6 || list != 1 {
		t.Errorf("%d single-form and %d list-form calls, want 6 and 1 (a 404 is not asked again)", single, list)
	}
	f.clk.Advance(2 * time.Hour) // past the TTL, within ListFormRetry
	f.hosts(t, "1234", liveperson.ServiceDeletion)
	if list := f.calls(lpsim.OpBaseURIs); list != 1 {
		t.Errorf("%d list-form calls within ListFormRetry, want 1", list)
	}
	f.sim.ClearFaults()
	f.clk.Advance(5 * time.Hour)
	f.hosts(t, "1234", liveperson.ServiceDeletion)
	if single, list := f.calls(lpsim.OpBaseURI), f.calls(lpsim.OpBaseURIs); single != 7 || list != 2 {
		t.Errorf("after ListFormRetry: %d single-form and %d list-form calls, want 7 and 2", single, list)
	}
}

// TestRouterLastGoodAndNoStaticFallbackInTestMode: with discovery down the last
// good host serves. A service never discovered fails as unavailable, rtbf too:
// in test mode its static host would be the real LivePerson over plain http.
func TestRouterLastGoodAndNoStaticFallbackInTestMode(t *testing.T) {
	f := newFixture(t, map[string]string{"1234": region.US, "5678": region.UK}, nil)
	ctx := context.Background()
	good, err := f.router.Host(ctx, "1234", liveperson.ServiceMessaging)
	if err != nil {
		t.Fatal(err)
	}
	f.sim.AddFault(lpsim.Fault{Service: lpsim.ServiceDomain, Kind: lpsim.FaultStatus, Status: 503})
	f.clk.Advance(2 * time.Hour)
	if h, err := f.router.Host(ctx, "1234", liveperson.ServiceMessaging); err != nil || h != good {
		t.Errorf("with discovery down: %q, %v; want the last good %q", h, err, good)
	}
	for _, k := range [][2]string{{"5678", liveperson.ServiceDeletion}, {"5678", liveperson.ServiceMessaging},
		{"1234", liveperson.ServiceDeletion}} {
		if h, err := f.router.Host(ctx, k[0], k[1]); !liveperson.IsRetryable(err) || h != "" {
			t.Errorf("Host(%s, %s) never discovered = %q, %v; want no host, a retryable error", k[0], k[1], h, err)
		}
	}
	// The client makes no call at all: nothing goes to a static host.
	c, err := liveperson.New(liveperson.WithResolver(f.router), liveperson.WithSource("erasured-test"),
		liveperson.WithAuth(liveperson.StaticBearer{"*": "tok"}), liveperson.WithHTTPClient(f.srv.Client()),
		liveperson.WithClock(f.clk), liveperson.WithRetryPolicy(liveperson.RetryPolicy{MaxAttempts: 1}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListDeletions(ctx, "5678", liveperson.DeletionFilter{}); !liveperson.IsRetryable(err) {
		t.Errorf("ListDeletions without discovery = %v, want retryable", err)
	}
	if n := len(f.sim.CallsTo(lpsim.ServiceRTBF, "")); n != 0 {
		t.Errorf("%d rtbf calls, want 0", n)
	}
}

// TestResidencyGuard: a UK account discovered on a US host is refused,
// alerted, and never called.
func TestResidencyGuard(t *testing.T) {
	f := newFixture(t, map[string]string{"5678": region.UK}, nil)
	f.sim.AddFault(lpsim.Fault{Service: lpsim.ServiceDomain, Kind: lpsim.FaultWrongHost,
		Host: "va.msghist.liveperson.net", ForService: liveperson.ServiceMessaging})
	ctx := context.Background()
	_, err := f.router.Host(ctx, "5678", liveperson.ServiceMessaging)
	if !liveperson.IsResidency(err) {
		t.Fatalf("Host = %v, want a residency error", err)
	}
	if _, err := f.router.Host(ctx, "5678", liveperson.ServiceDeletion); err != nil {
		t.Errorf("rtbf is in region: %v", err)
	}
	if f.router.Violations() != 1 || len(f.alerts) != 1 || f.alerts[0].Host != "va.msghist.liveperson.net" ||
		f.alerts[0].Region != region.UK {
		t.Errorf("violations = %d, alerts = %+v", f.router.Violations(), f.alerts)
	}
	c, err := liveperson.New(liveperson.WithResolver(f.router), liveperson.WithSource("erasured-test"),
		liveperson.WithAuth(liveperson.StaticBearer{"*": "tok"}), liveperson.WithHTTPClient(f.srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.SearchConversations(ctx, "5678", liveperson.ConversationQuery{From: t0.Add(-time.Hour), To: t0})
	if !liveperson.IsResidency(err) {
		t.Errorf("client call = %v, want a residency error", err)
	}
	if n := len(f.sim.CallsTo(lpsim.ServiceMsgHist, "")); n != 0 {
		t.Errorf("%d msgHist calls made, want 0", n)
	}
	// The refusal stands for the TTL; then a right answer is used again.
	f.sim.ClearFaults()
	if _, err := f.router.Host(ctx, "5678", liveperson.ServiceMessaging); !liveperson.IsResidency(err) {
		t.Errorf("within the TTL: %v, want the residency error still", err)
	}
	f.clk.Advance(61 * time.Minute)
	if _, err := f.router.Host(ctx, "5678", liveperson.ServiceMessaging); err != nil {
		t.Errorf("after the TTL with a right answer: %v", err)
	}
}

func TestGuardOutsideTestMode(t *testing.T) {
	for _, tc := range []struct {
		url  string
		test bool
	}{
		{"http://127.0.0.1:1", true}, {"http://localhost:1", true}, {"http://[::1]:1", true},
		{"https://127.0.0.1:1", false}, {"http://10.0.0.1:1", false}, {"https://api.liveperson.net", false},
	} {
		r, err := region.New(region.Config{DomainAPIURL: tc.url, Accounts: map[string]string{"1": region.US}})
		if err != nil {
			t.Fatal(err)
		}
		if r.TestMode() != tc.test {
			t.Errorf("TestMode(%s) = %v, want %v", tc.url, r.TestMode(), tc.test)
		}
	}
	if _, err := region.New(region.Config{Accounts: map[string]string{"1": "mars"}}); err == nil {
		t.Error("region without patterns accepted")
	}
	if _, err := region.New(region.Config{Patterns: map[string][]string{region.UK: {"lo.[x"}}}); err == nil {
		t.Error("bad pattern accepted")
	}
	if _, err := region.New(region.Config{Accounts: map[string]string{"1": region.UK},
		Patterns: map[string][]string{region.UK: {}}}); err == nil {
		t.Error("a region configured with no patterns accepted for an account in it")
	}
}

// TestRouterOneLookupInFlight: concurrent callers of a slow Domain API share
// one single-form lookup per service.
func TestRouterOneLookupInFlight(t *testing.T) {
	f := newFixture(t, map[string]string{"1234": region.US}, nil)
	f.sim.AddFault(lpsim.Fault{Service: lpsim.ServiceDomain, Kind: lpsim.FaultLatency, Latency: 50 * time.Millisecond})
	var wg sync.WaitGroup
	for range 10 {
		for _, svc := range []string{liveperson.ServiceDeletion, liveperson.ServiceMessaging} {
			wg.Go(func() {
				if _, err := f.router.Host(context.Background(), "1234", svc); err != nil {
					t.Errorf("Host(%s) = %v", svc, err)
				}
			})
		}
	}
	wg.Wait()
	if n := f.calls(lpsim.OpBaseURI); n != 2 {
		t.Errorf("%d single-form calls for 20 concurrent callers of two services, want 2", n)
	}
}

// TestRouterWaiterGivesUpAlone: a caller whose context ends stops waiting for
// the lookup it shares; the lookup goes on for the others and is made once.
func TestRouterWaiterGivesUpAlone(t *testing.T) {
	f := newFixture(t, map[string]string{"1234": region.US}, nil)
	f.sim.AddFault(lpsim.Fault{Service: lpsim.ServiceDomain, Kind: lpsim.FaultLatency, Latency: 400 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	impatient := make(chan error, 1)
	go func() {
		_, err := f.router.Host(ctx, "1234", liveperson.ServiceDeletion)
		impatient <- err
	}()
	time.Sleep(50 * time.Millisecond)
	patient := make(chan error, 1)
	go func() {
		_, err := f.router.Host(context.Background(), "1234", liveperson.ServiceDeletion)
		patient <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-impatient:
		if err == nil {
			t.Error("the cancelled caller got a host, want its context's error")
		}
	case <-time.After(150 * time.Millisecond):
		t.Error("the cancelled caller still waits for the lookup")
	}
	if err := <-patient; err != nil {
		t.Errorf("the patient caller: %v, want the shared lookup's host", err)
	}
	if n := f.calls(lpsim.OpBaseURI); n != 1 {
		t.Errorf("%d single-form calls, want 1 shared", n)
	}
}

// TestRetryNoticeNamesTheDomainAPI: with the Domain API failing, a call reports
// its host discovery's retries as the Domain API's, from the first failed
// attempt. The lookup itself makes one attempt: the call retries it on
// LivePerson's schedule (5, 10 s after a 5xx), never sooner.
func TestRetryNoticeNamesTheDomainAPI(t *testing.T) {
	f := newFixture(t, map[string]string{"1234": region.US}, nil)
	f.sim.AddFault(lpsim.Fault{Service: lpsim.ServiceDomain, Kind: lpsim.FaultStatus})
	c, err := liveperson.New(liveperson.WithResolver(f.router), liveperson.WithSource("erasured-test"),
		liveperson.WithAuth(liveperson.StaticBearer{"*": "tok"}), liveperson.WithHTTPClient(f.srv.Client()),
		liveperson.WithClock(f.clk), liveperson.WithRandom(func() float64 { return 0 }),
		liveperson.WithRetryPolicy(liveperson.RetryPolicy{MaxAttempts: 3}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	ctx := liveperson.WithRetryNotice(context.Background(), func(r liveperson.Retry) {
		got = append(got, fmt.Sprintf("%s %d %v", r.Err.Service, r.Attempt, r.Wait))
	})
	if _, err := c.ListDeletions(ctx, "1234", liveperson.DeletionFilter{}); !liveperson.IsRetryable(err) {
		t.Fatalf("ListDeletions with the Domain API down = %v, want retryable", err)
	}
	if want := []string{"domain 1 5s", "domain 2 10s"}; !slices.Equal(got, want) {
		t.Errorf("retry notices = %q, want %q", got, want)
	}
	if want := []time.Duration{5 * time.Second, 10 * time.Second}; !slices.Equal(f.clk.Sleeps(), want) {
		t.Errorf("waits between Domain API requests = %v, want %v", f.clk.Sleeps(), want)
	}
	if n := f.calls(lpsim.OpBaseURI); n != 3 {
		t.Errorf("%d Domain API requests, want 3 (one per attempt of the call)", n)
	}
}

// TestSharedLookupTimesOut: the Domain API holds the request and the client's
// own call timeout is an hour. The shared lookup, which no caller's context
// bounds, still ends at LookupTimeout, and the caller gets an error.
func TestSharedLookupTimesOut(t *testing.T) {
	f := newFixture(t, map[string]string{"1234": region.US}, func(c *region.Config) {
		c.Options = append(c.Options, liveperson.WithCallTimeout(time.Hour))
		c.LookupTimeout = 100 * time.Millisecond
	})
	f.sim.AddFault(lpsim.Fault{Service: lpsim.ServiceDomain, Kind: lpsim.FaultHang})
	done := make(chan error, 1)
	go func() {
		_, err := f.router.Host(context.Background(), "1234", liveperson.ServiceMessaging)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Host with the Domain API hanging returned a host")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the shared lookup outlived its timeout")
	}
}
