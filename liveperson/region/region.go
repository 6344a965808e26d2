// Package region maps LivePerson accounts to their region and each region's
// service hosts, and guards data residency: a host outside the account's
// region is refused and reported, never called.
//
// Hosts come from the Domain API's single-service form, the one LivePerson
// documents, one service at a time as each is first needed, each cached for a
// TTL. The all-services list form, which only an SDK uses, is an optional
// shortcut. When discovery fails the last good answer is kept, and for the
// deletion service (rtbf) the beta documentation's static hosts are the final
// fallback (not in loopback test mode, where they would be called over plain
// http).
package region

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/erasured/erasured/liveperson"
	"golang.org/x/sync/singleflight"
)

// The regions erasured knows.
const (
	US   = "us"
	UK   = "uk"
	APAC = "apac"
)

// Regions lists the regions erasured knows.
func Regions() []string { return []string{US, UK, APAC} }

// DefaultPatterns are the host patterns (path.Match syntax, matched against the
// lowercased host name without port) each region's hosts must match. They
// accept both naming styles LivePerson uses, "va.data-mng.liveperson.net" and
// "va-a.msghist.liveperson.net", and nothing outside liveperson.net.
func DefaultPatterns() map[string][]string {
	return map[string][]string{
		US:   {"va.*.liveperson.net", "va-*.liveperson.net"},
		UK:   {"lo.*.liveperson.net", "lo-*.liveperson.net"},
		APAC: {"sy.*.liveperson.net", "sy-*.liveperson.net"},
	}
}

// StaticDeletionHosts are the rtbf hosts named by LivePerson's beta overview,
// used when discovery has never succeeded for an account.
func StaticDeletionHosts() map[string]string {
	return map[string]string{US: "va.data-mng.liveperson.net", UK: "lo.data-mng.liveperson.net",
		APAC: "sy.data-mng.liveperson.net"}
}

// Violation describes a refused host. Account ids and host names are not
// personal data, so it can be logged and alerted on.
type Violation struct {
	Account, Region, Service, Host string
	// Reason says why the host was refused: ReasonRegion or ReasonTestMode.
	Reason string
}

// Why a host is refused.
const (
	// ReasonRegion: the host is outside the account's region (or not a bare
	// host name at all).
	ReasonRegion = "outside the account's region"
	// ReasonTestMode: in loopback test mode, where hosts are called over plain
	// http, a host name that is not loopback, which Config.NamedHostsInTestMode
	// does not allow.
	ReasonTestMode = "a named host in loopback test mode"
)

// Config configures New.
type Config struct {
	// DomainAPIURL defaults to liveperson.DefaultDomainAPI. An http:// URL on a
	// loopback address switches on test mode: discovered hosts are called over
	// http, loopback hosts pass the guard, any other name is refused (unless
	// NamedHostsInTestMode), and rtbf has no static fallback.
	DomainAPIURL string
	Accounts     map[string]string // account id → region
	// NamedHostsInTestMode lets test mode call discovered host names that are
	// not loopback, held to the region's patterns as in production. Only for
	// tests whose transport sends every name to a simulator: without it, a
	// name such as lo.data-mng.liveperson.net would reach the real LivePerson
	// over plain http.
	NamedHostsInTestMode bool
	// Patterns are host patterns by region; a region given here replaces its
	// DefaultPatterns, the others keep theirs.
	Patterns map[string][]string
	TTL      time.Duration // discovery cache lifetime, default 1 h
	// UseListForm asks the Domain API's list form for all of an account's
	// services at once before the single form. Off by default: LivePerson
	// documents only the single form. A 404 from the list form switches it
	// off for ListFormRetry.
	UseListForm   bool
	ListFormRetry time.Duration // default 24 h
	// OnViolation is called for every refused host (alerting).
	OnViolation func(Violation)
	Clock       liveperson.Clock
	// Options tune the Domain API client; by default it makes one attempt per
	// lookup: the call waiting for the host retries on its own schedule, and
	// a last good answer may do meanwhile.
	Options []liveperson.Option
	// LookupTimeout bounds one shared lookup, its attempts and waits included,
	// whatever Options say (default 20 s, twice the Domain API's call timeout):
	// it runs on when the caller that started it gives up, and must end.
	LookupTimeout time.Duration
}

// Router resolves account services to hosts. It implements
// liveperson.HostResolver.
type Router struct {
	domain      *liveperson.DomainAPI
	accounts    map[string]string
	patterns    map[string][]string
	ttl         time.Duration
	clock       liveperson.Clock
	testMode    bool
	namedHosts  bool // NamedHostsInTestMode
	onViolation func(Violation)
	violations  atomic.Int64
	useList     bool
	listRetry   time.Duration
	lookupLimit time.Duration // LookupTimeout

	mu        sync.Mutex
	entries   map[serviceKey]*entry
	listTried map[string]time.Time // by account: when the list form was last asked
	listOff   time.Time            // the list form answered 404: not asked again before this
	flight    singleflight.Group   // discovery lookups in flight, by serviceKey.flightKey
}

var _ liveperson.HostResolver = (*Router)(nil)

// domainCallTimeout bounds each Domain API request.
const domainCallTimeout = 10 * time.Second

// New builds a Router; it checks the configuration and reports every problem.
func New(cfg Config) (*Router, error) {
	if cfg.DomainAPIURL == "" {
		cfg.DomainAPIURL = liveperson.DefaultDomainAPI
	}
	if cfg.TTL <= 0 {
		cfg.TTL = time.Hour
	}
	if cfg.ListFormRetry <= 0 {
		cfg.ListFormRetry = 24 * time.Hour
	}
	if cfg.Clock == nil {
		cfg.Clock = liveperson.SystemClock{}
	}
	if cfg.LookupTimeout <= 0 {
		cfg.LookupTimeout = 2 * domainCallTimeout
	}
	patterns := DefaultPatterns()
	for reg, pats := range cfg.Patterns {
		patterns[reg] = pats
	}
	var errs []error
	for acct, reg := range cfg.Accounts {
		if len(patterns[reg]) == 0 {
			errs = append(errs, fmt.Errorf("region: account %s: region %q has no host patterns", acct, reg))
		}
	}
	for reg, pats := range patterns {
		for _, p := range pats {
			if err := CheckPattern(p); err != nil {
				errs = append(errs, fmt.Errorf("region %s: %w", reg, err))
			}
		}
	}
	opts := append([]liveperson.Option{
		liveperson.WithClock(cfg.Clock),
		liveperson.WithCallTimeout(domainCallTimeout),
		// One attempt per lookup: a lookup is made for a call, which retries it on
		// LivePerson's schedule (at least 5 s after a 5xx), naming the Domain API.
		// Retrying here too would ask again sooner than that, inside every wait.
		liveperson.WithRetryPolicy(liveperson.RetryPolicy{MaxAttempts: 1}),
	}, cfg.Options...)
	d, err := liveperson.NewDomainAPI(cfg.DomainAPIURL, opts...)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	u, _ := url.Parse(cfg.DomainAPIURL)
	return &Router{
		domain: d, accounts: cfg.Accounts, patterns: patterns, ttl: cfg.TTL, clock: cfg.Clock,
		testMode: u.Scheme == "http" && isLoopback(u.Hostname()), namedHosts: cfg.NamedHostsInTestMode,
		onViolation: cfg.OnViolation, useList: cfg.UseListForm, listRetry: cfg.ListFormRetry, lookupLimit: cfg.LookupTimeout,
		entries: map[serviceKey]*entry{}, listTried: map[string]time.Time{},
	}, nil
}

// Scheme is "https", or "http" in test mode.
func (r *Router) Scheme() string {
	if r.testMode {
		return "http"
	}
	return "https"
}

// TestMode reports whether the loopback test mode is on.
func (r *Router) TestMode() bool { return r.testMode }

// Region returns the configured region of account ("" if unknown).
func (r *Router) Region(account string) string { return r.accounts[account] }

// Violations counts refused hosts since start.
func (r *Router) Violations() int64 { return r.violations.Load() }

// Host returns the guarded host of the account's service.
func (r *Router) Host(ctx context.Context, account, service string) (string, error) {
	reg, ok := r.accounts[account]
	if !ok {
		return "", &liveperson.Error{Kind: liveperson.KindInvalid, Service: service, Op: "route",
			Reason: "account not configured"}
	}
	k := serviceKey{account, service}
	if !r.fresh(k) {
		if err := r.discover(ctx, k, reg); err != nil {
			return r.fallback(k, reg, err)
		}
	}
	if h, ok, err := r.lookup(k); ok {
		return h, err
	}
	return r.fallback(k, reg, &liveperson.Error{Kind: liveperson.KindRetryable, Service: service, Op: "route",
		Reason: "no host discovered"})
}

// fallback answers when discovery failed: the last good host, else the static
// deletion host, else the discovery error. Test mode has no static host: it
// would be the real LivePerson, called over plain http.
func (r *Router) fallback(k serviceKey, reg string, cause error) (string, error) {
	if h, ok, err := r.lookup(k); ok {
		return h, err
	}
	if k.service == liveperson.ServiceDeletion && !r.testMode {
		if h, ok := StaticDeletionHosts()[reg]; ok && r.refusal(reg, h) == "" {
			return h, nil
		}
	}
	return "", cause
}

func residency(service, reason string) error {
	return &liveperson.Error{Kind: liveperson.KindResidency, Service: service, Op: "route",
		Reason: "discovered host refused: " + reason}
}
