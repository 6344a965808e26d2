package region_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/liveperson/lpsim"
	"github.com/erasured/erasured/liveperson/region"
)

// TestNamedHostsInTestMode: in loopback test mode the simulator answers
// LivePerson-style host names, and a dialer sends every name to it. With named
// hosts allowed, a UK account is served on its UK-named host; a US-named host
// is refused for it and never called, although loopback hosts pass in test
// mode. Without them allowed even the UK name is refused as a test-mode
// violation: it would be the real LivePerson over plain http.
func TestNamedHostsInTestMode(t *testing.T) {
	for _, tc := range []struct {
		name, host string
		named      bool
		wantOK     bool
		wantReason string
	}{
		{"UK host for a UK account", "lo-a.msghist.liveperson.net", true, true, ""},
		{"US host for a UK account", "va-a.msghist.liveperson.net", true, false, region.ReasonRegion},
		{"UK host, named hosts not allowed", "lo-a.msghist.liveperson.net", false, false, region.ReasonTestMode},
		{"UK data-mng name, named hosts not allowed", "lo.data-mng.liveperson.net", false, false, region.ReasonTestMode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			_, port, _ := net.SplitHostPort(lis.Addr().String())
			sim := lpsim.New(lpsim.Config{Accounts: []lpsim.Account{lpsim.DefaultAccount("5678", region.UK)},
				Clock: lpsim.NewManualClock(t0), StaticTokens: map[string]string{"tok": "*"},
				Host: tc.host + ":" + port})
			srv := httptest.NewUnstartedServer(sim.Handler())
			srv.Listener.Close()
			srv.Listener = lis
			srv.Start()
			defer func() { sim.Close(); srv.Close() }()
			// Every name resolves to the simulator.
			tr := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, lis.Addr().String())
			}}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr}
			var alerts []region.Violation
			r, err := region.New(region.Config{DomainAPIURL: srv.URL, Accounts: map[string]string{"5678": region.UK},
				Clock: liveperson.NewFakeClock(t0), Options: []liveperson.Option{liveperson.WithHTTPClient(hc)},
				NamedHostsInTestMode: tc.named,
				OnViolation:          func(v region.Violation) { alerts = append(alerts, v) }})
			if err != nil {
				t.Fatal(err)
			}
			if !r.TestMode() {
				t.Fatal("not in test mode")
			}
			c, err := liveperson.New(liveperson.WithResolver(r), liveperson.WithSource("erasured-test"),
				liveperson.WithAuth(liveperson.StaticBearer{"*": "tok"}), liveperson.WithHTTPClient(hc))
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.SearchConversations(context.Background(), "5678",
				liveperson.ConversationQuery{From: t0.Add(-time.Hour), To: t0})
			calls := len(sim.CallsTo(lpsim.ServiceMsgHist, ""))
			if tc.wantOK {
				if err != nil || calls != 1 || len(alerts) != 0 {
					t.Errorf("search = %v with %d msgHist calls and alerts %v; want success, 1 call, no alert", err, calls, alerts)
				}
				return
			}
			if !liveperson.IsResidency(err) || calls != 0 {
				t.Errorf("search = %v with %d msgHist calls; want a residency error and no call", err, calls)
			}
			if len(alerts) != 1 || alerts[0].Host != tc.host+":"+port || alerts[0].Service != liveperson.ServiceMessaging ||
				alerts[0].Reason != tc.wantReason {
				t.Errorf("alerts = %+v, want one for the msgHist host, reason %q", alerts, tc.wantReason)
			}
		})
	}
}
