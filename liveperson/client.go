package liveperson

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// LivePerson service names, as the Domain API spells them (case-sensitive).
const (
	ServiceDeletion     = "rtbf"
	ServiceEngagements  = "engHistDomain"
	ServiceMessaging    = "msgHist"
	ServiceSentinel     = "sentinel"
	ServiceAgentVep     = "agentVep"
	serviceDomainAPI    = "domain"
	maxSourceLen        = 20
	defaultMaxRespBytes = 32 << 20
)

// DefaultCallTimeout bounds each HTTP attempt unless WithCallTimeout says otherwise. The pipeline
// waits at least this long after a create whose answer it lost before it takes "not listed" for
// "not created".
const DefaultCallTimeout = 30 * time.Second

// HostResolver tells the client where an account's service lives. The
// regional router (package region) implements it, residency guard included.
type HostResolver interface {
	// Host returns the bare host[:port] for the account's service.
	Host(ctx context.Context, account, service string) (string, error)
	// Scheme is "https", or "http" in loopback test mode.
	Scheme() string
	// Region names the account's region; limits are kept per (region, service).
	Region(account string) string
}

// FixedHost resolves every service of every account to one address. It is for
// tests and the sandbox, where the simulator serves all services on one port.
type FixedHost struct {
	Addr     string // host:port
	Insecure bool   // call over http
}

// Host returns f.Addr.
func (f FixedHost) Host(context.Context, string, string) (string, error) { return f.Addr, nil }

// Scheme returns "http" when Insecure, else "https".
func (f FixedHost) Scheme() string {
	if f.Insecure {
		return "http"
	}
	return "https"
}

// Region returns "" : one region for all accounts.
func (FixedHost) Region(string) string { return "" }

// Observation describes one HTTP attempt, for metrics. It holds no identifiers.
type Observation struct {
	Service  string
	Op       string
	Status   int  // 0 when no response arrived
	Kind     Kind // 0 on success
	Duration time.Duration
}

// Client calls LivePerson's APIs for any number of accounts. It is safe for
// concurrent use.
type Client struct {
	hc          *http.Client
	resolver    HostResolver
	auth        Authenticator
	source      string
	clock       Clock
	policy      RetryPolicy
	callTimeout time.Duration
	maxBody     int64
	observe     func(Observation)
	random      func() float64

	limitsMu    sync.Mutex
	limits      map[string]RateLimit // by service; "" = default
	controllers map[gateKey]*controller
	maxResults  int
}

type gateKey struct{ region, service string }

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (default: a client without timeout; the
// per-call timeout bounds every attempt). The client uses a copy of it that
// follows no redirect (see noRedirects); hc itself is left as it is.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithResolver sets where services live (required).
func WithResolver(r HostResolver) Option { return func(c *Client) { c.resolver = r } }

// WithAuth sets how requests are authorized (required).
func WithAuth(a Authenticator) Option { return func(c *Client) { c.auth = a } }

// WithSource sets the application name sent as `source` (required, ≤ 20 chars).
func WithSource(s string) Option { return func(c *Client) { c.source = s } }

// WithClock replaces the clock used for backoff, token expiry and limiting.
func WithClock(clk Clock) Option { return func(c *Client) { c.clock = clk } }

// WithRetryPolicy replaces the retry policy's defaults.
func WithRetryPolicy(p RetryPolicy) Option { return func(c *Client) { c.policy = p } }

// WithCallTimeout bounds each HTTP attempt (default 30 s).
func WithCallTimeout(d time.Duration) Option { return func(c *Client) { c.callTimeout = d } }

// WithMaxResponseBytes bounds a response body (default 32 MiB); larger → error.
func WithMaxResponseBytes(n int64) Option { return func(c *Client) { c.maxBody = n } }

// WithRateLimit sets the limit of one service in every region; service ""
// sets the default for services without their own.
func WithRateLimit(service string, l RateLimit) Option {
	return func(c *Client) { c.limits[service] = l }
}

// WithObserver receives one Observation per HTTP attempt (metrics).
func WithObserver(f func(Observation)) Option { return func(c *Client) { c.observe = f } }

// WithRandom replaces the jitter source (tests make it deterministic).
func WithRandom(f func() float64) Option { return func(c *Client) { c.random = f } }

// WithMaxSearchResults bounds the records one search may return (default
// 10,000), so that a fuzzy keyword matching half the account fails loudly
// instead of paging for hours.
func WithMaxSearchResults(n int) Option { return func(c *Client) { c.maxResults = n } }

// New builds a Client. Resolver, auth and source are required.
func New(opts ...Option) (*Client, error) {
	c := &Client{
		hc:          &http.Client{},
		clock:       SystemClock{},
		callTimeout: DefaultCallTimeout,
		maxBody:     defaultMaxRespBytes,
		random:      rand.Float64,
		limits:      map[string]RateLimit{},
		controllers: map[gateKey]*controller{},
		maxResults:  10000,
	}
	for _, o := range opts {
		o(c)
	}
	if c.hc != nil {
		hc := *c.hc
		hc.CheckRedirect = noRedirects
		c.hc = &hc
	}
	c.policy = c.policy.withDefaults()
	var errs []error
	if c.hc == nil {
		errs = append(errs, errors.New("liveperson: the HTTP client must not be nil"))
	}
	if c.resolver == nil {
		errs = append(errs, errors.New("liveperson: a host resolver is required"))
	}
	if c.auth == nil {
		errs = append(errs, errors.New("liveperson: an authenticator is required"))
	}
	if c.source == "" || len(c.source) > maxSourceLen {
		errs = append(errs, errors.New("liveperson: source must be 1 to 20 characters"))
	}
	if c.callTimeout <= 0 || c.maxBody <= 0 || c.maxResults <= 0 {
		errs = append(errs, errors.New("liveperson: call timeout, response limit and result limit must be positive"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// noRedirects stops net/http from following a redirect: it would send the
// request again, body and credentials included (a search's identifiers, the
// token form's client secret, a deletion create), to whatever host the answer
// names, past the residency guard and around the rule that a create is sent
// once. The 3xx answer itself is returned, and classified by the call.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// gate returns the limiter of (region, service), creating it on first use.
func (c *Client) gate(region, service string) *controller {
	c.limitsMu.Lock()
	defer c.limitsMu.Unlock()
	k := gateKey{region, service}
	g, ok := c.controllers[k]
	if !ok {
		l, ok := c.limits[service]
		if !ok {
			l = c.limits[""]
		}
		g = newController(l, c.clock.Now())
		c.controllers[k] = g
	}
	return g
}

// CurrentRate reports the rate the client currently allows for (region,
// service); it moves when the limit is being learned.
func (c *Client) CurrentRate(region, service string) float64 {
	return c.gate(region, service).rate()
}
