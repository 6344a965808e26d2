// Package region maps LivePerson accounts to their region and each region's
// service hosts, and guards data residency: a host outside the account's
// region is refused and reported, never called.
//
// Hosts come from the Domain API (list form, then the single form for a
// service the list lacks), cached for a TTL; when discovery fails the last good
// answer is kept, and for the deletion service (rtbf) the beta documentation's
// static hosts are the final fallback.
package region

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/erasured/erasured/liveperson"
	"github.com/erasured/erasured/liveperson/internal/flight"
)

// The regions erasured knows.
const (
	US   = "us"
	UK   = "uk"
	APAC = "apac"
)

// DefaultPatterns are the host patterns (path.Match syntax, matched against the
// host name without port) each region's hosts must match.
func DefaultPatterns() map[string][]string {
	return map[string][]string{US: {"va.*"}, UK: {"lo.*"}, APAC: {"sy.*"}}
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
}

// Config configures New.
type Config struct {
	// DomainAPIURL defaults to liveperson.DefaultDomainAPI. An http:// URL on a
	// loopback address switches on test mode: discovered hosts are called over
	// http and loopback hosts pass the guard.
	DomainAPIURL string
	Accounts     map[string]string   // account id → region
	Patterns     map[string][]string // default DefaultPatterns()
	TTL          time.Duration       // discovery cache lifetime, default 1 h
	// OnViolation is called for every refused host (alerting).
	OnViolation func(Violation)
	Clock       liveperson.Clock
	// Options tune the Domain API client; by default it retries briefly,
	// because a caller is waiting and a last good answer may do.
	Options []liveperson.Option
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
	onViolation func(Violation)
	violations  atomic.Int64

	mu      sync.Mutex
	entries map[string]*entry // by account
	flight  flight.Group[string, struct{}]
}

type entry struct {
	fetched time.Time
	hosts   map[string]string // guarded hosts by service: the last good answers
	refused map[string]bool   // services whose latest discovered host was refused
}

var _ liveperson.HostResolver = (*Router)(nil)

// New builds a Router; it checks the configuration and reports every problem.
func New(cfg Config) (*Router, error) {
	if cfg.DomainAPIURL == "" {
		cfg.DomainAPIURL = liveperson.DefaultDomainAPI
	}
	if cfg.Patterns == nil {
		cfg.Patterns = DefaultPatterns()
	}
	if cfg.TTL <= 0 {
		cfg.TTL = time.Hour
	}
	if cfg.Clock == nil {
		cfg.Clock = liveperson.SystemClock{}
	}
	var errs []error
	for acct, reg := range cfg.Accounts {
		if len(cfg.Patterns[reg]) == 0 {
			errs = append(errs, fmt.Errorf("region: account %s: region %q has no host patterns", acct, reg))
		}
	}
	for reg, pats := range cfg.Patterns {
		for _, p := range pats {
			if _, err := path.Match(p, ""); err != nil {
				errs = append(errs, fmt.Errorf("region: bad pattern %q for %s", p, reg))
			}
		}
	}
	opts := append([]liveperson.Option{
		liveperson.WithClock(cfg.Clock),
		liveperson.WithCallTimeout(10 * time.Second),
		liveperson.WithRetryPolicy(liveperson.RetryPolicy{MaxAttempts: 3, Steps: []time.Duration{time.Second, 2 * time.Second}}),
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
		domain: d, accounts: cfg.Accounts, patterns: cfg.Patterns, ttl: cfg.TTL, clock: cfg.Clock,
		testMode: u.Scheme == "http" && isLoopback(u.Hostname()), onViolation: cfg.OnViolation,
		entries: map[string]*entry{},
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
	now := r.clock.Now()
	r.mu.Lock()
	e := r.entries[account]
	fresh := e != nil && now.Sub(e.fetched) < r.ttl
	r.mu.Unlock()
	if !fresh {
		_, derr := r.flight.Do(ctx, account, func(ctx context.Context) (struct{}, error) {
			return struct{}{}, r.discover(ctx, account, reg)
		})
		if derr != nil && !liveperson.IsResidency(derr) {
			return r.fallback(account, reg, service, derr)
		}
	}
	if h, ok, err := r.lookup(account, service); ok {
		return h, err
	}
	// The list form lacked the service: ask for it alone.
	h, err := r.domain.BaseURI(ctx, account, service)
	if err != nil {
		return r.fallback(account, reg, service, err)
	}
	r.store(account, reg, map[string]string{service: h}, false)
	h, _, err = r.lookup(account, service)
	return h, err
}

// discover refreshes the account's entry from the Domain API list form.
func (r *Router) discover(ctx context.Context, account, reg string) error {
	hosts, err := r.domain.BaseURIs(ctx, account)
	if err != nil {
		return err
	}
	r.store(account, reg, hosts, true)
	return nil
}

// store guards and records discovered hosts; refreshed marks a full refresh.
func (r *Router) store(account, reg string, hosts map[string]string, refreshed bool) {
	r.mu.Lock()
	e := r.entries[account]
	if e == nil {
		e = &entry{hosts: map[string]string{}, refused: map[string]bool{}}
		r.entries[account] = e
	}
	if refreshed {
		e.fetched = r.clock.Now()
	}
	var refused []Violation
	for svc, h := range hosts {
		if r.allowed(reg, h) {
			e.hosts[svc] = h
			delete(e.refused, svc)
			continue
		}
		e.refused[svc] = true
		refused = append(refused, Violation{Account: account, Region: reg, Service: svc, Host: h})
	}
	r.mu.Unlock()
	for _, v := range refused {
		r.violations.Add(1)
		if r.onViolation != nil {
			r.onViolation(v)
		}
	}
}

// lookup answers from the entry: a refused service is a residency error (the
// last good host is not used silently: a region move needs an operator).
func (r *Router) lookup(account, service string) (host string, found bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.entries[account]
	if e == nil {
		return "", false, nil
	}
	if e.refused[service] {
		return "", true, residency(service)
	}
	h, ok := e.hosts[service]
	return h, ok, nil
}

// fallback answers when discovery failed: the last good host, else the static
// deletion host, else the discovery error.
func (r *Router) fallback(account, reg, service string, cause error) (string, error) {
	if h, ok, err := r.lookup(account, service); ok {
		return h, err
	}
	if service == liveperson.ServiceDeletion {
		if h, ok := StaticDeletionHosts()[reg]; ok && r.allowed(reg, h) {
			return h, nil
		}
	}
	return "", cause
}

func residency(service string) error {
	return &liveperson.Error{Kind: liveperson.KindResidency, Service: service, Op: "route",
		Reason: "discovered host is outside the account's region"}
}

// allowed is the residency guard.
func (r *Router) allowed(reg, host string) bool {
	name, ok := hostName(host)
	if !ok {
		return false
	}
	if r.testMode && isLoopback(name) {
		return true
	}
	for _, p := range r.patterns[reg] {
		if m, _ := path.Match(strings.ToLower(p), name); m {
			return true
		}
	}
	return false
}

// hostName validates a bare host[:port] as the Domain API returns it and
// returns the lowercased name. Anything with a scheme, path, user info or
// query is refused: it is not what LivePerson sends.
func hostName(host string) (string, bool) {
	if host == "" || strings.ContainsAny(host, "/@?#\\ \t") {
		return "", false
	}
	u, err := url.Parse("//" + host)
	if err != nil || u.Host != host || u.Hostname() == "" {
		return "", false
	}
	return strings.ToLower(u.Hostname()), true
}

func isLoopback(name string) bool {
	if strings.EqualFold(name, "localhost") {
		return true
	}
	ip := net.ParseIP(name)
	return ip != nil && ip.IsLoopback()
}
