package liveperson_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/liveperson/lpsim"
)

func oauth2Env(t *testing.T, secret string) (*env, *liveperson.OAuth2) {
	t.Helper()
	e := newEnv(t, lpsim.Config{})
	a := lpsim.DefaultAccount(acct, "us")
	o, err := liveperson.NewOAuth2(liveperson.OAuth2Config{
		Credentials: map[string]liveperson.ClientCredentials{acct: {ClientID: a.ClientID, ClientSecret: secret}},
		Resolver:    e.resolver(),
		Options: []liveperson.Option{liveperson.WithClock(e.clk), liveperson.WithHTTPClient(e.srv.Client()),
			liveperson.WithRandom(func() float64 { return 0 })},
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := liveperson.New(liveperson.WithResolver(e.resolver()), liveperson.WithAuth(o),
		liveperson.WithSource("erasured-test"), liveperson.WithClock(e.clk), liveperson.WithHTTPClient(e.srv.Client()),
		liveperson.WithRateLimit("", liveperson.RateLimit{Rate: 1000, Burst: 100}))
	if err != nil {
		t.Fatal(err)
	}
	e.c = c
	return e, o
}

func tokenCalls(e *env) int { return len(e.sim.CallsTo(lpsim.ServiceSentinel, lpsim.OpToken)) }

func TestOAuth2TokenCacheAndRefresh(t *testing.T) {
	e, _ := oauth2Env(t, "lpsim-secret-"+acct)
	ctx := context.Background()
	list := func() {
		t.Helper()
		if _, err := e.c.ListDeletions(ctx, acct, liveperson.DeletionFilter{}); err != nil {
			t.Fatal(err)
		}
	}
	// Concurrent first use: one token request in flight for the account.
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(list)
	}
	wg.Wait()
	if n := tokenCalls(e); n != 1 {
		t.Fatalf("%d token requests for 20 concurrent calls, want 1", n)
	}
	tok := e.sim.CallsTo(lpsim.ServiceSentinel, lpsim.OpToken)[0]
	if !strings.Contains(tok.Body, "grant_type=client_credentials") || tok.Auth != "none" {
		t.Errorf("token request body/auth = %q/%s", tok.Body, tok.Auth)
	}
	for _, c := range e.sim.CallsTo(lpsim.ServiceRTBF, "") {
		if c.Auth != "bearer" || c.Status != 200 {
			t.Errorf("call %s auth=%s status=%d", c.Path, c.Auth, c.Status)
		}
	}
	// 1 h tokens are renewed 5 min early: at 54 min still cached, at 56 min renewed.
	e.advance(54 * time.Minute)
	list()
	if n := tokenCalls(e); n != 1 {
		t.Errorf("%d token requests at 54 min, want 1", n)
	}
	e.advance(2 * time.Minute)
	list()
	if n := tokenCalls(e); n != 2 {
		t.Errorf("%d token requests at 56 min, want 2 (refreshed before expiry)", n)
	}
}

// TestOAuth2ExpiredAtServer: LivePerson rejects a token our clock still
// trusts; the client refreshes once and the call succeeds.
func TestOAuth2ExpiredAtServer(t *testing.T) {
	e, _ := oauth2Env(t, "lpsim-secret-"+acct)
	ctx := context.Background()
	if _, err := e.c.ListDeletions(ctx, acct, liveperson.DeletionFilter{}); err != nil {
		t.Fatal(err)
	}
	e.simClk.Advance(2 * time.Hour) // only LivePerson's clock moves
	if _, err := e.c.ListDeletions(ctx, acct, liveperson.DeletionFilter{}); err != nil {
		t.Fatalf("after server-side expiry: %v", err)
	}
	if n := tokenCalls(e); n != 2 {
		t.Errorf("%d token requests, want 2", n)
	}
	statuses := []int{}
	for _, c := range e.sim.CallsTo(lpsim.ServiceRTBF, lpsim.OpList) {
		statuses = append(statuses, c.Status)
	}
	if len(statuses) != 3 || statuses[1] != 401 || statuses[2] != 200 {
		t.Errorf("list statuses = %v, want [200 401 200]", statuses)
	}
}

func TestOAuth2WrongSecret(t *testing.T) {
	e, _ := oauth2Env(t, "wrong")
	_, err := e.c.ListDeletions(context.Background(), acct, liveperson.DeletionFilter{})
	if !liveperson.IsUnauthorized(err) {
		t.Fatalf("err = %v, want unauthorized", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("error shows the secret: %v", err)
	}
	if n := tokenCalls(e); n != 1 {
		t.Errorf("%d token requests, want 1 (a 401 is not retried)", n)
	}
	if n := len(e.sim.CallsTo(lpsim.ServiceRTBF, "")); n != 0 {
		t.Errorf("%d API calls without a token, want 0", n)
	}
}

func TestOAuth1(t *testing.T) {
	e := newEnv(t, lpsim.Config{})
	a := lpsim.DefaultAccount(acct, "us")
	keys := liveperson.OAuth1Keys{ConsumerKey: a.OAuth1.ConsumerKey, ConsumerSecret: a.OAuth1.ConsumerSecret,
		Token: a.OAuth1.Token, TokenSecret: a.OAuth1.TokenSecret}
	newClient := func(k liveperson.OAuth1Keys) *liveperson.Client {
		c, err := liveperson.New(liveperson.WithResolver(e.resolver()), liveperson.WithSource("erasured-test"),
			liveperson.WithAuth(&liveperson.OAuth1{Keys: map[string]liveperson.OAuth1Keys{acct: k}}),
			liveperson.WithClock(e.clk), liveperson.WithHTTPClient(e.srv.Client()))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// A search has query parameters (signed) and a JSON body (not signed).
	_, err := newClient(keys).SearchConversations(context.Background(), acct, liveperson.ConversationQuery{
		From: t0.Add(-time.Hour), To: t0, CustomerInfo: "x y"})
	if err != nil {
		t.Fatalf("signed search: %v", err)
	}
	if c := e.sim.Calls()[0]; c.Auth != "oauth1" || c.Status != 200 {
		t.Errorf("call auth=%s status=%d", c.Auth, c.Status)
	}
	bad := keys
	bad.TokenSecret = "nope"
	_, err = newClient(bad).ListDeletions(context.Background(), acct, liveperson.DeletionFilter{Status: "DONE"})
	if !liveperson.IsUnauthorized(err) || !strings.Contains(err.Error(), "oauth_problem=signature_invalid") {
		t.Errorf("wrong secret: %v, want signature_invalid", err)
	}
}

func TestStaticBearerRejected(t *testing.T) {
	e := newEnv(t, lpsim.Config{}, liveperson.WithAuth(liveperson.StaticBearer{acct: "bogus"}))
	_, err := e.c.ListDeletions(context.Background(), acct, liveperson.DeletionFilter{})
	wantKind(t, err, liveperson.KindUnauthorized)
	_, err = e.c.ListDeletions(context.Background(), "9999", liveperson.DeletionFilter{})
	wantKind(t, err, liveperson.KindUnauthorized)
}

func TestDomainAPI(t *testing.T) {
	e := newEnv(t, lpsim.Config{})
	d, err := liveperson.NewDomainAPI(e.srv.URL, liveperson.WithClock(e.clk), liveperson.WithHTTPClient(e.srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(e.srv.URL, "http://")
	h, err := d.BaseURI(context.Background(), acct, liveperson.ServiceDeletion)
	if err != nil || h != host {
		t.Errorf("BaseURI = %q, %v; want %q", h, err, host)
	}
	all, err := d.BaseURIs(context.Background(), acct)
	if err != nil || all[liveperson.ServiceMessaging] != host || all[liveperson.ServiceSentinel] != host {
		t.Errorf("BaseURIs = %v, %v", all, err)
	}
	if c := e.sim.CallsTo(lpsim.ServiceDomain, lpsim.OpBaseURI)[0]; c.Query != "version=1.0" || c.Auth != "none" {
		t.Errorf("domain call query=%q auth=%s", c.Query, c.Auth)
	}
	_, err = d.BaseURI(context.Background(), "9999", liveperson.ServiceDeletion)
	wantKind(t, err, liveperson.KindUnauthorized)
	if _, err := liveperson.NewDomainAPI("ftp://x"); err == nil {
		t.Error("NewDomainAPI(ftp://x) accepted")
	}
}

// TestOAuth2RenewalFailureKeepsToken: sentinel down while renewing early; the
// token has minutes left, so calls go on with it.
func TestOAuth2RenewalFailureKeepsToken(t *testing.T) {
	e, _ := oauth2Env(t, "lpsim-secret-"+acct)
	ctx := context.Background()
	if _, err := e.c.ListDeletions(ctx, acct, liveperson.DeletionFilter{}); err != nil {
		t.Fatal(err)
	}
	e.advance(56 * time.Minute)
	e.sim.AddFault(lpsim.Fault{Service: lpsim.ServiceSentinel, Kind: lpsim.FaultStatus, Status: 503})
	if _, err := e.c.ListDeletions(ctx, acct, liveperson.DeletionFilter{}); err != nil {
		t.Fatalf("with sentinel down before expiry: %v", err)
	}
	if n := tokenCalls(e); n < 2 {
		t.Errorf("%d token requests, want a renewal attempt", n)
	}
}

// TestPerServiceAuth: one account uses OAuth 2.0 for Engagement History and
// app keys for Messaging Interactions and deletion; each service receives its
// own scheme, and the simulator accepts each.
func TestPerServiceAuth(t *testing.T) {
	e, o2 := oauth2Env(t, "lpsim-secret-"+acct)
	a := lpsim.DefaultAccount(acct, "us")
	o1 := &liveperson.OAuth1{Keys: map[string]liveperson.OAuth1Keys{acct: {ConsumerKey: a.OAuth1.ConsumerKey,
		ConsumerSecret: a.OAuth1.ConsumerSecret, Token: a.OAuth1.Token, TokenSecret: a.OAuth1.TokenSecret}}}
	auth := &liveperson.PerService{
		Methods: map[string]map[string]string{acct: {"": liveperson.MethodOAuth1,
			liveperson.ServiceEngagements: liveperson.MethodOAuth2}},
		Authenticators: map[string]liveperson.Authenticator{liveperson.MethodOAuth2: o2, liveperson.MethodOAuth1: o1},
	}
	c, err := liveperson.New(liveperson.WithResolver(e.resolver()), liveperson.WithAuth(auth),
		liveperson.WithSource("erasured-test"), liveperson.WithClock(e.clk), liveperson.WithHTTPClient(e.srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.SearchEngagements(ctx, acct, liveperson.EngagementQuery{From: t0.Add(-time.Hour), To: t0}); err != nil {
		t.Errorf("engagements: %v", err)
	}
	if _, err := c.SearchConversations(ctx, acct, liveperson.ConversationQuery{From: t0.Add(-time.Hour), To: t0}); err != nil {
		t.Errorf("conversations: %v", err)
	}
	if _, err := c.ListDeletions(ctx, acct, liveperson.DeletionFilter{}); err != nil {
		t.Errorf("deletions: %v", err)
	}
	want := map[string]string{lpsim.ServiceEngHist: "bearer", lpsim.ServiceMsgHist: "oauth1",
		lpsim.ServiceRTBF: "oauth1", lpsim.ServiceSentinel: "none"}
	for _, call := range e.sim.Calls() {
		if call.Service == lpsim.ServiceDomain {
			continue
		}
		if call.Auth != want[call.Service] || call.Status != 200 {
			t.Errorf("%s call: auth %s, status %d; want auth %s, status 200", call.Service, call.Auth, call.Status, want[call.Service])
		}
	}
	if got := auth.Method(acct, liveperson.ServiceMessaging); got != liveperson.MethodOAuth1 {
		t.Errorf("Method(msgHist) = %q, want the account's default oauth1", got)
	}
	// An account without methods is refused before anything is sent.
	before := len(e.sim.Calls())
	if _, err := c.ListDeletions(ctx, "9999", liveperson.DeletionFilter{}); !liveperson.IsUnauthorized(err) {
		t.Errorf("unknown account: %v, want unauthorized", err)
	}
	if n := len(e.sim.Calls()); n != before {
		t.Errorf("%d calls sent for an account without credentials", n-before)
	}
}

// TestPerServiceInvalidate: a token LivePerson rejects is dropped through
// PerService, so the retry carries a new one.
func TestPerServiceInvalidate(t *testing.T) {
	e, o2 := oauth2Env(t, "lpsim-secret-"+acct)
	auth := &liveperson.PerService{Methods: map[string]map[string]string{acct: {"": liveperson.MethodOAuth2}},
		Authenticators: map[string]liveperson.Authenticator{liveperson.MethodOAuth2: o2}}
	c, err := liveperson.New(liveperson.WithResolver(e.resolver()), liveperson.WithAuth(auth),
		liveperson.WithSource("erasured-test"), liveperson.WithClock(e.clk), liveperson.WithHTTPClient(e.srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.ListDeletions(ctx, acct, liveperson.DeletionFilter{}); err != nil {
		t.Fatal(err)
	}
	e.simClk.Advance(2 * time.Hour) // only LivePerson's clock: it rejects the cached token
	if _, err := c.ListDeletions(ctx, acct, liveperson.DeletionFilter{}); err != nil {
		t.Fatalf("after server-side expiry: %v", err)
	}
	if n := tokenCalls(e); n != 2 {
		t.Errorf("%d token requests, want 2 (the rejected token replaced)", n)
	}
}

// TestOAuth2WaiterGivesUpAlone: a caller whose context ends while the account's
// token is being fetched stops waiting at once; the fetch it shares is not
// cancelled with it, and the other callers get the token from that one fetch.
func TestOAuth2WaiterGivesUpAlone(t *testing.T) {
	e, o := oauth2Env(t, "lpsim-secret-"+acct)
	e.sim.AddFault(lpsim.Fault{Service: lpsim.ServiceSentinel, Op: lpsim.OpToken, Kind: lpsim.FaultLatency,
		Latency: 400 * time.Millisecond, Times: 1})
	ctx, cancel := context.WithCancel(context.Background())
	impatient := make(chan error, 1)
	go func() {
		_, err := o.Token(ctx, acct)
		impatient <- err
	}()
	time.Sleep(50 * time.Millisecond) // the impatient caller's fetch is in flight
	var wg sync.WaitGroup
	toks := make([]string, 5)
	errs := make([]error, 5)
	for i := range toks {
		wg.Go(func() { toks[i], errs[i] = o.Token(context.Background(), acct) })
	}
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-impatient:
		if !errors.Is(err, context.Canceled) || liveperson.KindOf(err) != liveperson.KindRetryable {
			t.Errorf("the cancelled caller got %v, want a retryable error caused by context.Canceled", err)
		}
	case <-time.After(150 * time.Millisecond):
		t.Error("the cancelled caller still waits for the fetch")
	}
	wg.Wait()
	for i := range toks {
		if errs[i] != nil || toks[i] == "" {
			t.Errorf("caller %d: token %q, %v; want the shared fetch's token", i, toks[i], errs[i])
		}
	}
	if n := tokenCalls(e); n != 1 {
		t.Errorf("%d token requests, want 1 shared", n)
	}
}
