package liveperson

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// ClientCredentials are an account's OAuth 2.0 client id and secret.
type ClientCredentials struct {
	ClientID     string
	ClientSecret string
}

// OAuth2Config configures NewOAuth2.
type OAuth2Config struct {
	Credentials map[string]ClientCredentials // by account
	Resolver    HostResolver                 // finds each account's sentinel host
	// RefreshBefore renews a token this long before it expires (default 5
	// min, at most a fifth of the token's lifetime).
	RefreshBefore time.Duration
	// Options tune the token client (HTTP client, clock, retry policy, timeout).
	// By default it makes one attempt per fetch: its caller retries.
	Options []Option
}

// OAuth2 obtains client-credentials tokens from sentinel, caches them per
// account until shortly before expiry, and lets one refresh per account be in
// flight at a time.
//
// It is not built on golang.org/x/oauth2/clientcredentials, which was weighed
// for it. The per-account token URL would fit (one Config per fetch), but the
// rest does not:
//   - its request goes through its own HTTP client, around this package's
//     call path: the per-service rate limit, the retry policy (and its retry
//     notice), the observer's metrics, the residency-guarded host and the
//     mapping of 401 to KindUnauthorized, of 5xx and transport failures to
//     KindRetryable and of Retry-After would all have to be rebuilt around
//     its errors, whose text quotes the token endpoint's body verbatim;
//   - its cache (ReuseTokenSource) reads expiry from expires_in against
//     time.Now, where we prefer the JWT's exp − iat (a skewed local clock does
//     not shorten a token) and an injectable clock;
//   - it cannot drop exactly the token a 401 rejected, nor keep serving the
//     old token while a renewal fails before it expires;
//   - it holds one mutex across the fetch and binds the fetch to the context
//     it was built with, so a waiting caller cannot give up on its own
//     context, nor can one caller's cancellation be kept from the others.
//
// What would be left to use is the form encoding and JSON decoding of one
// request, a dozen lines here.
type OAuth2 struct {
	creds   map[string]ClientCredentials
	client  *Client
	clock   Clock
	refresh time.Duration

	mu     sync.Mutex
	tokens map[string]token
	flight singleflight.Group // token fetches in flight, by account
}

type token struct {
	value     string
	refreshAt time.Time // renew from here on
	expiresAt time.Time // still usable until here if renewing fails
}

// NewOAuth2 builds the sentinel authenticator.
func NewOAuth2(cfg OAuth2Config) (*OAuth2, error) {
	if cfg.Resolver == nil {
		return nil, errors.New("liveperson: oauth2 needs a resolver for the sentinel host")
	}
	// One attempt per fetch: a token is fetched for a call, which retries the
	// fetch on LivePerson's schedule (at least 5 s after a 5xx), naming sentinel.
	// Retrying here too would ask sentinel again sooner than that.
	opts := append([]Option{WithResolver(cfg.Resolver), WithAuth(noAuth{}), WithSource("erasured"),
		WithRetryPolicy(RetryPolicy{MaxAttempts: 1})}, cfg.Options...)
	c, err := New(opts...)
	if err != nil {
		return nil, err
	}
	if cfg.RefreshBefore <= 0 {
		cfg.RefreshBefore = 5 * time.Minute
	}
	return &OAuth2{creds: cfg.Credentials, client: c, clock: c.clock, refresh: cfg.RefreshBefore,
		tokens: map[string]token{}}, nil
}

// Authorize sets a bearer token for account, fetching one if needed.
func (o *OAuth2) Authorize(ctx context.Context, account string, req *http.Request) error {
	tok, err := o.Token(ctx, account)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return nil
}

// Invalidate drops the cached token if it is the one the rejected request
// carried; a newer token fetched meanwhile is kept.
func (o *OAuth2) Invalidate(account string, rejected *http.Request) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if t, ok := o.tokens[account]; ok && rejected.Header.Get("Authorization") == "Bearer "+t.value {
		delete(o.tokens, account)
	}
}

// Token returns a valid access token for account.
func (o *OAuth2) Token(ctx context.Context, account string) (string, error) {
	o.mu.Lock()
	old, ok := o.tokens[account]
	o.mu.Unlock()
	now := o.clock.Now()
	if ok && now.Before(old.refreshAt) {
		return old.value, nil
	}
	// One fetch per account at a time, shared by everyone who asks meanwhile. It runs without
	// the first caller's cancellation (one impatient caller must not fail everyone else's wait)
	// and bounds itself; a caller whose ctx ends stops waiting.
	fctx := context.WithoutCancel(ctx)
	ch := o.flight.DoChan(account, func() (any, error) {
		fctx, cancel := context.WithTimeout(fctx, 2*o.client.callTimeout)
		defer cancel()
		t, err := o.fetch(fctx, account)
		if err == nil {
			o.mu.Lock()
			o.tokens[account] = t
			o.mu.Unlock()
		}
		return t, err
	})
	var t token
	var err error
	select {
	case res := <-ch:
		t, err = res.Val.(token), res.Err
	case <-ctx.Done():
		// The caller gave up before sentinel answered: nothing was refused.
		err = waitingForCredentials(ctx.Err())
	}
	if err != nil && ok && now.Before(old.expiresAt) && !IsUnauthorized(err) {
		// Renewal failed early enough: the old token still works for a while.
		return old.value, nil
	}
	return t.value, err
}

// waitingForCredentials is the error of a call whose context ended while it
// waited for a token: retryable (sentinel may be slow or down, the credentials
// are not known to be wrong), keeping the context's error as its cause.
func waitingForCredentials(cause error) *Error {
	return &Error{Kind: KindRetryable, Service: ServiceSentinel, Op: opToken, Reason: "waiting for credentials", Err: cause}
}

func (o *OAuth2) fetch(ctx context.Context, account string) (token, error) {
	cr, ok := o.creds[account]
	if !ok {
		return token{}, &Error{Kind: KindUnauthorized, Service: ServiceSentinel, Op: opToken,
			Reason: "no client credentials for account"}
	}
	form := url.Values{"client_id": {cr.ClientID}, "client_secret": {cr.ClientSecret},
		"grant_type": {"client_credentials"}}
	var resp struct {
		AccessToken string  `json:"access_token"`
		TokenType   string  `json:"token_type"`
		ExpiresIn   float64 `json:"expires_in"`
	}
	issued := o.clock.Now()
	err := o.client.do(ctx, request{
		service: ServiceSentinel, op: opToken, account: account, method: http.MethodPost,
		path:        "/sentinel/api/v2/account/" + url.PathEscape(account) + "/app/token",
		body:        []byte(form.Encode()),
		contentType: "application/x-www-form-urlencoded",
		decode: func(_ int, b []byte) error {
			if err := json.Unmarshal(b, &resp); err != nil || resp.AccessToken == "" {
				return errors.New("no access_token")
			}
			return nil
		},
	})
	if err != nil {
		return token{}, err
	}
	life := tokenLifetime(resp.AccessToken, issued)
	if life <= 0 && resp.ExpiresIn > 0 {
		life = time.Duration(resp.ExpiresIn * float64(time.Second))
	}
	if life <= 0 {
		life = time.Hour // neither JWT exp nor expires_in: assume an hour, a 401 corrects us
	}
	margin := min(o.refresh, life/5)
	return token{value: resp.AccessToken, refreshAt: issued.Add(life - margin), expiresAt: issued.Add(life)}, nil
}

// tokenLifetime reads exp (and iat) from a JWT's payload without verifying it:
// only sentinel can verify, we just need to know when to renew. exp − iat is
// preferred over exp − now so that a skewed local clock does not shorten or
// stretch the lifetime.
func tokenLifetime(jwt string, now time.Time) time.Duration {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return 0
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return 0
	}
	var claims struct {
		Exp *float64 `json:"exp"`
		Iat *float64 `json:"iat"`
	}
	if json.Unmarshal(raw, &claims) != nil || claims.Exp == nil {
		return 0
	}
	exp := *claims.Exp
	var life time.Duration
	if claims.Iat != nil && *claims.Iat < exp {
		life = time.Duration(min(exp-*claims.Iat, maxTokenLife.Seconds()) * float64(time.Second))
	} else {
		life = time.Unix(int64(min(exp, 1e12)), 0).Sub(now)
	}
	return max(0, min(life, maxTokenLife))
}

// maxTokenLife caps what a token claims, so a garbled exp cannot keep a
// token cached for years.
const maxTokenLife = 24 * time.Hour
