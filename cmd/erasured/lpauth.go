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
type authFailures struct {
	base  http.RoundTripper
	log   *slog.Logger
	count func(account, service string)
	sent  sync.Map // *http.Request → authorized, from Authorize until the answer

	mu      sync.Mutex
	failing map[authorized]bool
}

// authorized is the account and service a request was authorized for.
type authorized struct{ account, service string }

var (
	_ liveperson.Authenticator = countingAuth{}
	_ liveperson.Invalidator   = countingAuth{}
	_ http.RoundTripper        = (*authFailures)(nil)
)

// newAuthFailures passes each refusal to count; base carries the requests.
func newAuthFailures(base http.RoundTripper, log *slog.Logger, count func(account, service string)) *authFailures {
	return &authFailures{base: base, log: log, count: count, failing: map[authorized]bool{}}
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

// RoundTrip sends the request and judges the answer to an authorized request: 401 or 403 is a
// refusal, 2xx an acceptance.
func (f *authFailures) RoundTrip(req *http.Request) (*http.Response, error) {
	v, ok := f.sent.LoadAndDelete(req)
	resp, err := f.base.RoundTrip(req)
	if !ok || err != nil {
		return resp, err
	}
	a := v.(authorized)
	switch st := resp.StatusCode; {
	case st == http.StatusUnauthorized || st == http.StatusForbidden:
		f.refused(a, "status", st)
	case st >= 200 && st < 300:
		f.accepted(a)
	}
	return resp, err
}

// countingAuth is an Authenticator that reports credentials that cannot be had.
type countingAuth struct {
	inner *liveperson.PerService
	f     *authFailures
}

// Authorize authorizes the request; a refusal (no token from sentinel, no credentials for the
// service) is reported, and an authorized request is remembered until its answer.
func (c countingAuth) Authorize(ctx context.Context, account string, req *http.Request) error {
	svc := liveperson.ServiceName(ctx)
	err := c.inner.Authorize(ctx, account, req)
	switch {
	case err == nil:
		c.f.sent.Store(req, authorized{account: account, service: svc})
	case liveperson.IsUnauthorized(err):
		attrs := []any{"status", 0}
		var le *liveperson.Error
		if errors.As(err, &le) {
			attrs = []any{"status", le.Status, "at", le.Service + " " + le.Op}
		}
		c.f.refused(authorized{account: account, service: svc}, attrs...)
	}
	return err
}

// Invalidate passes a rejected request on to the authenticators that cache tokens.
func (c countingAuth) Invalidate(account string, rejected *http.Request) {
	c.inner.Invalidate(account, rejected)
}
