package region_test

import (
	"context"
	"net/http/httptest"
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

func newFixture(t *testing.T, accounts map[string]string) *fixture {
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
	r, err := region.New(region.Config{
		DomainAPIURL: f.srv.URL, Accounts: accounts, TTL: time.Hour, Clock: f.clk,
		OnViolation: func(v region.Violation) { f.mu.Lock(); f.alerts = append(f.alerts, v); f.mu.Unlock() },
		Options: []liveperson.Option{liveperson.WithHTTPClient(f.srv.Client()),
			liveperson.WithRandom(func() float64 { return 0 })},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.router = r
	return f
}

func (f *fixture) domainCalls() int { return len(f.sim.CallsTo(lpsim.ServiceDomain, "")) }

func TestRouterDiscoversAndCaches(t *testing.T) {
	f := newFixture(t, map[string]string{"1234": region.US})
	ctx := context.Background()
	if !f.router.TestMode() || f.router.Scheme() != "http" || f.router.Region("1234") != region.US {
		t.Fatalf("test mode = %v, scheme = %s", f.router.TestMode(), f.router.Scheme())
	}
	host := strings.TrimPrefix(f.srv.URL, "http://")
	for _, svc := range []string{liveperson.ServiceDeletion, liveperson.ServiceMessaging, liveperson.ServiceEngagements} {
		h, err := f.router.Host(ctx, "1234", svc)
		if err != nil || h != host {
			t.Fatalf("Host(%s) = %q, %v; want %q", svc, h, err, host)
		}
	}
	if n := f.domainCalls(); n != 1 {
		t.Errorf("%d Domain API calls for three services, want 1 (list form, cached)", n)
	}
	f.clk.Advance(61 * time.Minute)
	if _, err := f.router.Host(ctx, "1234", liveperson.ServiceDeletion); err != nil {
		t.Fatal(err)
	}
	if n := f.domainCalls(); n != 2 {
		t.Errorf("%d Domain API calls after the TTL, want 2", n)
	}
	// A service missing from the list form is asked for alone.
	if _, err := f.router.Host(ctx, "1234", "someService"); err != nil {
		t.Fatal(err)
	}
	if n := len(f.sim.CallsTo(lpsim.ServiceDomain, lpsim.OpBaseURI)); n != 1 {
		t.Errorf("%d single-form calls, want 1", n)
	}
	_, err := f.router.Host(ctx, "7777", liveperson.ServiceDeletion)
	if liveperson.KindOf(err) != liveperson.KindInvalid {
		t.Errorf("unconfigured account: %v", err)
	}
}

func TestRouterLastGoodAndStaticFallback(t *testing.T) {
	f := newFixture(t, map[string]string{"1234": region.US, "5678": region.UK})
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
	// Never discovered: rtbf falls back to the region's static host, others fail.
	if h, err := f.router.Host(ctx, "5678", liveperson.ServiceDeletion); err != nil || h != "lo.data-mng.liveperson.net" {
		t.Errorf("static fallback = %q, %v", h, err)
	}
	if _, err := f.router.Host(ctx, "5678", liveperson.ServiceMessaging); !liveperson.IsRetryable(err) {
		t.Errorf("msgHist without discovery: %v, want retryable", err)
	}
}

// TestResidencyGuard: a UK account discovered on a US host is refused,
// alerted, and never called.
func TestResidencyGuard(t *testing.T) {
	f := newFixture(t, map[string]string{"5678": region.UK})
	f.sim.AddFault(lpsim.Fault{Service: lpsim.ServiceDomain, Kind: lpsim.FaultWrongHost,
		Host: "va.msghist.liveperson.net", ForService: liveperson.ServiceMessaging})
	ctx := context.Background()
	_, err := f.router.Host(ctx, "5678", liveperson.ServiceMessaging)
	if !liveperson.IsResidency(err) {
		t.Fatalf("Host = %v, want a residency error", err)
	}
	if _, err := f.router.Host(ctx, "5678", liveperson.ServiceDeletion); err != nil {
		t.Errorf("rtbf of the same answer is in region: %v", err)
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
}
