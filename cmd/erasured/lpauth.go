package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"

	"github.com/erasured/erasured/liveperson"
)

// authFailures sees every refusal of an account's LivePerson credentials and counts it by
// account and service: a token that sentinel will not issue (a wrong client secret), and a 401
// or 403 from the service called. The first refusal of an account and service logs an ERROR
// line, and its first success after that an INFO line, so that a wrong secret is seen without a
// line per call. Secrets are never logged. The LivePerson client reports calls without their
// account, so the account is taken where it is known: when the request is authorized, just
// before it is sent.
//
// A 401 to a first attempt is not yet a refusal: the client drops its cached token, fetches a
// new one and tries once more (a token may be revoked or expire early). Only a 401 to that
// retry, or a refused token exchange, counts.
type authFailures struct {
	base  http.RoundTripper
	log   *slog.Logger
	count func(account, service string)
	sent  sync.Map // *http.Request → sentAs, from Authorize until the answer

	mu      sync.Mutex
	failing map[authorized]bool
	// retries counts, by account and service, the retries owed after a 401: the next
	// requests authorized for them are those retries.
	retries map[authorized]int
}

// authorized is the account and service a request was authorized for.
type authorized struct{ account, service string }

// sentAs is an authorized request on its way, and whether it retries after a 401.
type sentAs struct {
	authorized
	retry bool
}

var (
	_ liveperson.Authenticator = countingAuth{}
	_ liveperson.Invalidator   = countingAuth{}
	_ http.RoundTripper        = (*authFailures)(nil)
)

// newAuthFailures passes each refusal to count; base carries the requests.
func newAuthFailures(base http.RoundTripper, log *slog.Logger, count func(account, service string)) *authFailures {
	return &authFailures{base: base, log: log, count: count, failing: map[authorized]bool{}, retries: map[authorized]int{}}
}

// refused counts a refusal, and logs the first of a run.
func (f *authFailures) refused(a authorized, attrs ...any) {
	if f.count != nil {
		f.count(a.account, a.service)
	}
	f.mu.Lock()
	first := !f.failing[a]
	f.failing[a] = true
	f.mu.Unlock()
	if first {
		f.log.Error("LivePerson refused the account's credentials: this service's calls fail until they are fixed (check the client secret, app keys and their permissions)",
			append([]any{"account", a.account, "service", a.service}, attrs...)...)
	}
}

// accepted ends a run of refusals.
func (f *authFailures) accepted(a authorized) {
	f.mu.Lock()
	was := f.failing[a]
	delete(f.failing, a)
	f.mu.Unlock()
	if was {
		f.log.Info("LivePerson accepts the account's credentials again", "account", a.account, "service", a.service)
	}
}

// authenticator wraps the per-service authenticator so that its refusals are counted.
func (f *authFailures) authenticator(a *liveperson.PerService) countingAuth {
	return countingAuth{inner: a, f: f}
}

// RoundTrip sends the request and judges the answer to an authorized request: 403, or 401 to
// a retry, is a refusal; 401 to a first attempt owes a retry (the client makes it with a new
// token); 2xx is an acceptance.
func (f *authFailures) RoundTrip(req *http.Request) (*http.Response, error) {
	v, ok := f.sent.LoadAndDelete(req)
	resp, err := f.base.RoundTrip(req)
	if !ok || err != nil {
		return resp, err
	}
	s := v.(sentAs)
	switch st := resp.StatusCode; {
	case st == http.StatusUnauthorized && !s.retry:
		f.mu.Lock()
		f.retries[s.authorized]++
		f.mu.Unlock()
	case st == http.StatusUnauthorized || st == http.StatusForbidden:
		f.refused(s.authorized, "status", st)
	case st >= 200 && st < 300:
		f.accepted(s.authorized)
	}
	return resp, err
}

// retrying reports whether the next request authorized for a is a retry after a 401, and
// takes that retry off what is owed.
func (f *authFailures) retrying(a authorized) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.retries[a] == 0 {
		return false
	}
	if f.retries[a]--; f.retries[a] == 0 {
		delete(f.retries, a)
	}
	return true
}

// countingAuth is an Authenticator that reports credentials that cannot be had.
type countingAuth struct {
	inner *liveperson.PerService
	f     *authFailures
}

// Authorize authorizes the request; a refusal (no token from sentinel, no credentials for the
// service) is reported, and an authorized request is remembered until its answer.
func (c countingAuth) Authorize(ctx context.Context, account string, req *http.Request) error {
	a := authorized{account: account, service: liveperson.ServiceName(ctx)}
	retry := c.f.retrying(a)
	err := c.inner.Authorize(ctx, account, req)
	switch {
	case err == nil:
		c.f.sent.Store(req, sentAs{authorized: a, retry: retry})
	case liveperson.IsUnauthorized(err):
		attrs := []any{"status", 0}
		var le *liveperson.Error
		if errors.As(err, &le) {
			attrs = []any{"status", le.Status, "at", le.Service + " " + le.Op}
		}
		c.f.refused(a, attrs...)
	}
	return err
}

// Invalidate passes a rejected request on to the authenticators that cache tokens.
func (c countingAuth) Invalidate(account string, rejected *http.Request) {
	c.inner.Invalidate(account, rejected)
}
