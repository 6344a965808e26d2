package liveperson

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/erasured/erasured/liveperson/internal/oauth1"
)

// Authenticator adds credentials for an account to a request about to be
// sent. Errors should be *Error (KindUnauthorized or KindRetryable).
type Authenticator interface {
	Authorize(ctx context.Context, account string, req *http.Request) error
}

type serviceNameKey struct{}

// WithServiceName tells an Authenticator which LivePerson service (e.g. ServiceMessaging) a
// request is for, so that credentials can be chosen per service.
func WithServiceName(ctx context.Context, service string) context.Context {
	return context.WithValue(ctx, serviceNameKey{}, service)
}

// ServiceName is the LivePerson service a request being authorized is for ("" if unknown).
func ServiceName(ctx context.Context) string {
	s, _ := ctx.Value(serviceNameKey{}).(string)
	return s
}

// Invalidator is implemented by authenticators that cache credentials. After a
// 401 the client calls Invalidate with the rejected request and retries once.
type Invalidator interface {
	Invalidate(account string, rejected *http.Request)
}

// StaticBearer sends fixed bearer tokens, by account; "*" applies to any
// account. For tests and the sandbox.
type StaticBearer map[string]string

// Authorize sets `Authorization: Bearer <token>`.
func (s StaticBearer) Authorize(_ context.Context, account string, req *http.Request) error {
	tok, ok := s[account]
	if !ok {
		tok, ok = s["*"]
	}
	if !ok {
		return &Error{Kind: KindUnauthorized, Service: ServiceSentinel, Op: "auth", Reason: "no token for account"}
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return nil
}

// Authentication method names, as the configuration and the start-up
// credential check spell them.
const (
	MethodOAuth2 = "oauth2"
	MethodOAuth1 = "oauth1"
	MethodStatic = "static"
)

// PerService authenticates each request with the method chosen for its
// account and LivePerson service (ServiceName): LivePerson documents OAuth 2.0
// for Engagement History but only app keys for Messaging Interactions and
// Personal Data Deletion, so one account may need both.
type PerService struct {
	// Methods maps account → service → method name; the service "" holds the
	// account's method for services not listed.
	Methods map[string]map[string]string
	// Authenticators are the authenticators by method name.
	Authenticators map[string]Authenticator
}

var _ Invalidator = (*PerService)(nil)

// Method is the method name used for the account's service ("" when the
// account has none).
func (p *PerService) Method(account, service string) string {
	m := p.Methods[account]
	if name, ok := m[service]; ok {
		return name
	}
	return m[""]
}

// Authorize delegates to the authenticator of the request's account and service.
func (p *PerService) Authorize(ctx context.Context, account string, req *http.Request) error {
	service := ServiceName(ctx)
	a, ok := p.Authenticators[p.Method(account, service)]
	if !ok {
		return &Error{Kind: KindUnauthorized, Service: service, Op: "auth", Reason: "no credentials for account and service"}
	}
	return a.Authorize(ctx, account, req)
}

// Invalidate passes a rejected request to every authenticator that caches
// credentials; each drops only what the request carried (a token of its own).
func (p *PerService) Invalidate(account string, rejected *http.Request) {
	for _, a := range p.Authenticators {
		if inv, ok := a.(Invalidator); ok {
			inv.Invalidate(account, rejected)
		}
	}
}

// noAuth is for the calls that take none (Domain API, sentinel itself).
type noAuth struct{}

func (noAuth) Authorize(context.Context, string, *http.Request) error { return nil }

// OAuth1Keys are LivePerson's four legacy app-key values.
type OAuth1Keys struct {
	ConsumerKey    string // "app key", oauth_consumer_key
	ConsumerSecret string
	Token          string // access token, oauth_token
	TokenSecret    string
}

// OAuth1 signs requests with HMAC-SHA1 (RFC 5849). LivePerson ended OAuth 1.0
// support on 2026-05-31; it is kept for accounts not yet migrated.
type OAuth1 struct {
	Keys  map[string]OAuth1Keys // by account
	Clock Clock                 // default SystemClock
	Nonce func() string         // default 16 random bytes, hex
}

// Authorize signs req: query parameters are part of the signature base
// string, a JSON body is not (§3.4.1.3.1 covers form bodies only).
func (o *OAuth1) Authorize(_ context.Context, account string, req *http.Request) error {
	k, ok := o.Keys[account]
	if !ok {
		return &Error{Kind: KindUnauthorized, Service: "oauth1", Op: "auth", Reason: "no app keys for account"}
	}
	clk, nonce := o.Clock, o.Nonce
	if clk == nil {
		clk = SystemClock{}
	}
	if nonce == nil {
		nonce = randomNonce
	}
	req.Header.Set("Authorization", oauth1Header(req.Method, req.URL, k,
		strconv.FormatInt(clk.Now().Unix(), 10), nonce(), true))
	return nil
}

func oauth1Header(method string, u *url.URL, k OAuth1Keys, ts, nonce string, version bool) string {
	proto := map[string]string{
		"oauth_consumer_key":     k.ConsumerKey,
		"oauth_token":            k.Token,
		"oauth_signature_method": "HMAC-SHA1",
		"oauth_timestamp":        ts,
		"oauth_nonce":            nonce,
	}
	if version {
		proto["oauth_version"] = "1.0"
	}
	params := u.Query()
	for n, v := range proto {
		params.Set(n, v)
	}
	proto["oauth_signature"] = oauth1.Sign(oauth1.BaseString(method, u, params), k.ConsumerSecret, k.TokenSecret)
	names := []string{"oauth_consumer_key", "oauth_nonce", "oauth_signature", "oauth_signature_method",
		"oauth_timestamp", "oauth_token", "oauth_version"}
	var parts []string
	for _, n := range names {
		if v, ok := proto[n]; ok {
			parts = append(parts, n+`="`+oauth1.Encode(v)+`"`)
		}
	}
	return "OAuth " + strings.Join(parts, ", ")
}

func randomNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
