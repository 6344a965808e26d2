package liveperson_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/erasured/erasured/liveperson"
)

// redirectPair is a server answering every request with a redirect to a
// second server, which counts the requests that reach it.
type redirectPair struct {
	first, second *httptest.Server
	reached       atomic.Int32
}

func newRedirectPair(t *testing.T, status int) *redirectPair {
	t.Helper()
	p := &redirectPair{}
	p.second = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.reached.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	p.first = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", p.second.URL+r.URL.RequestURI()+"?leak=secret-location")
		w.WriteHeader(status)
	}))
	t.Cleanup(func() {
		p.first.Close()
		p.second.Close()
	})
	return p
}

func (p *redirectPair) host() liveperson.FixedHost {
	return liveperson.FixedHost{Addr: strings.TrimPrefix(p.first.URL, "http://"), Insecure: true}
}

// TestRedirectsNotFollowed: a 307 or 308 would make net/http send the request
// again, body and all, to the host the answer names. No call follows one,
// whatever HTTP client it was given: a search and the token exchange fail
// terminally naming the status, a deletion create's outcome is unknown (it is
// reconciled, never resent), the Domain API lookup fails too, and the second
// host sees nothing. Errors do not quote the Location.
func TestRedirectsNotFollowed(t *testing.T) {
	for _, status := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		p := newRedirectPair(t, status)
		given := &http.Client{} // follows redirects, as net/http's default does
		common := []liveperson.Option{liveperson.WithClock(liveperson.NewFakeClock(t0)),
			liveperson.WithRandom(func() float64 { return 0 }), liveperson.WithCallTimeout(2 * time.Second),
			liveperson.WithHTTPClient(given)}
		c, err := liveperson.New(append([]liveperson.Option{liveperson.WithResolver(p.host()),
			liveperson.WithAuth(liveperson.StaticBearer{"*": "test-token"}), liveperson.WithSource("erasured-test")},
			common...)...)
		if err != nil {
			t.Fatal(err)
		}
		o, err := liveperson.NewOAuth2(liveperson.OAuth2Config{Resolver: p.host(), Options: common,
			Credentials: map[string]liveperson.ClientCredentials{acct: {ClientID: "id", ClientSecret: "secret"}}})
		if err != nil {
			t.Fatal(err)
		}
		d, err := liveperson.NewDomainAPI(p.first.URL, common...)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for _, tc := range []struct {
			name string
			call func() error
			kind liveperson.Kind
		}{
			{"search", func() error {
				_, err := c.SearchEngagements(ctx, acct, liveperson.EngagementQuery{From: t0.Add(-time.Hour), To: t0})
				return err
			}, liveperson.KindTerminal},
			{"token", func() error { _, err := o.Token(ctx, acct); return err }, liveperson.KindTerminal},
			{"domain", func() error { _, err := d.BaseURI(ctx, acct, liveperson.ServiceDeletion); return err },
				liveperson.KindTerminal},
			{"create", func() error {
				_, err := c.CreateDeletion(ctx, acct, liveperson.KindEngagement, []string{acct + "0000000001"})
				return err
			}, liveperson.KindOutcomeUnknown},
		} {
			err := tc.call()
			if got := liveperson.KindOf(err); got != tc.kind {
				t.Errorf("%d %s: %v (kind %v), want kind %v", status, tc.name, err, got, tc.kind)
			}
			if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("(HTTP %d)", status)) {
				t.Errorf("%d %s: error %q does not name the status", status, tc.name, err)
			}
			if err != nil && (strings.Contains(err.Error(), "secret-location") || strings.Contains(err.Error(), p.second.URL)) {
				t.Errorf("%d %s: error %q quotes the Location", status, tc.name, err)
			}
		}
		if n := p.reached.Load(); n != 0 {
			t.Errorf("%d: the redirect's target received %d requests, want 0", status, n)
		}
		if given.CheckRedirect != nil {
			t.Error("the HTTP client given was changed")
		}
	}
}
