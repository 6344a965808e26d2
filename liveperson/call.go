package liveperson

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync/atomic"
	"time"
)

// request is one logical LivePerson call; do turns it into attempts.
type request struct {
	service, op, account string
	method, path         string
	query                url.Values
	body                 []byte
	contentType          string
	// unsafe marks calls that change state at LivePerson (deletion create,
	// cancel): they are never repeated once they may have been sent.
	unsafe bool
	// decode reads a successful body. An errPartial result makes a safe call
	// retry; any other error is a malformed response.
	decode func(status int, body []byte) error
}

var errPartial = errors.New("partial result")

type retryNoticeKey struct{}

// Retry describes an attempt of a call that failed and is tried again after Wait.
type Retry struct {
	Err     *Error // the failure; its Service and Op say where
	Attempt int    // the attempt that failed; the first is 1
	Wait    time.Duration
}

// WithRetryNotice returns ctx carrying f, which a call made with it invokes before each wait
// between attempts: the caller can show at once that LivePerson is failing, rather than when the
// call gives up minutes later. Calls the client makes on the way (host discovery, a token fetch)
// report theirs too. f must not block for long: the call waits for it.
func WithRetryNotice(ctx context.Context, f func(Retry)) context.Context {
	return context.WithValue(ctx, retryNoticeKey{}, f)
}

// do runs rq with the retry policy: 429 waits at least a second (or
// Retry-After) and teaches the rate controller; 5xx, transport failures and
// partial results on safe calls wait 5, 10, 15 s then longer (or a 5xx's
// Retry-After); a 401 refreshes
// cached credentials once; anything else, and an answer over the size limit,
// is returned at once.
func (c *Client) do(ctx context.Context, rq request) error {
	start := c.clock.Now()
	var n5xx, n429 int
	refreshed := false
	for attempt := 1; ; attempt++ {
		e, sent := c.attempt(ctx, rq)
		if e == nil {
			return nil
		}
		var wait time.Duration
		switch e.Kind {
		case KindUnauthorized:
			inv, ok := c.auth.(Invalidator)
			if !ok || refreshed || sent == nil || e.Status != http.StatusUnauthorized {
				return e
			}
			// A cached token may be revoked or expired early; a 401 means
			// nothing was done, so one retry with fresh credentials is safe
			// even for deletion create.
			inv.Invalidate(rq.account, sent)
			refreshed = true
			attempt--
			continue
		case KindRateLimited:
			n429++
			wait = c.policy.rateLimitWait(n429, e.RetryAfter, c.random)
		case KindRetryable:
			// An unsafe call is repeated only when it failed before anything was
			// sent (host discovery, credentials): then nothing can have changed.
			if (rq.unsafe && sent != nil) || e.notNow {
				return e
			}
			n5xx++
			wait = c.policy.serverErrorWait(n5xx, e.RetryAfter, c.random)
		default:
			return e
		}
		if ctx.Err() != nil || attempt >= c.policy.MaxAttempts || c.clock.Now().Sub(start)+wait > c.policy.MaxElapsed {
			return e
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return e // the wait would outlive the caller
		}
		if f, ok := ctx.Value(retryNoticeKey{}).(func(Retry)); ok {
			f(Retry{Err: e, Attempt: attempt, Wait: wait})
		}
		if err := c.clock.Sleep(ctx, wait); err != nil {
			if e.Err == nil {
				e.Err = err // so errors.Is(err, context.Canceled) holds
			}
			return e
		}
	}
}

// attempt performs one HTTP exchange and classifies its outcome.
// It also returns the request sent, if any, so a 401 can invalidate exactly
// the credentials it carried.
func (c *Client) attempt(ctx context.Context, rq request) (*Error, *http.Request) {
	fail := func(k Kind, status int, reason string, err error) *Error {
		return &Error{Kind: k, Service: rq.service, Op: rq.op, Status: status, Reason: reason, Err: err}
	}
	host, err := c.resolver.Host(ctx, rq.account, rq.service)
	if err != nil {
		var le *Error
		if errors.As(err, &le) {
			return le, nil
		}
		return fail(KindRetryable, 0, "host discovery failed", stripURL(err)), nil
	}
	g := c.gate(c.resolver.Region(rq.account), rq.service)
	// The limiter wait comes before the attempt's timeout starts: waiting our
	// turn is not LivePerson being slow.
	sentAt, err := g.acquire(ctx, c.clock)
	if err != nil {
		return fail(KindRetryable, 0, "waiting for rate limit", err), nil
	}
	defer g.release()

	u := url.URL{Scheme: c.resolver.Scheme(), Host: host, Path: rq.path, RawQuery: rq.query.Encode()}
	actx, cancel := context.WithTimeout(ctx, c.callTimeout)
	defer cancel()
	var wrote atomic.Bool
	actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true) },
	})
	var body io.Reader
	if rq.body != nil {
		body = bytes.NewReader(rq.body)
	}
	req, err := http.NewRequestWithContext(actx, rq.method, u.String(), body)
	if err != nil {
		return fail(KindInvalid, 0, "cannot build request", nil), nil
	}
	req.Header.Set("Accept", "application/json")
	if rq.body != nil {
		req.Header.Set("Content-Type", rq.contentType)
	}
	if err := c.auth.Authorize(WithServiceName(actx, rq.service), rq.account, req); err != nil {
		var le *Error
		if errors.As(err, &le) {
			return le, nil
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			// The call ended while its credentials were being fetched: not a refusal.
			return waitingForCredentials(err), nil
		}
		return fail(KindUnauthorized, 0, "cannot authorize", stripURL(err)), nil
	}

	began := time.Now()
	e := c.exchange(req, rq, &wrote, g, sentAt, fail)
	if c.observe != nil {
		o := Observation{Service: rq.service, Op: rq.op, Duration: time.Since(began)}
		if e != nil {
			o.Status, o.Kind = e.Status, e.Kind
		} else {
			o.Status = http.StatusOK
		}
		c.observe(o)
	}
	return e, req
}

func (c *Client) exchange(req *http.Request, rq request, wrote *atomic.Bool, g *controller, sentAt time.Time,
	fail func(Kind, int, string, error) *Error) *Error {
	// A failure after the request was written may have changed state.
	lost := func(status int, reason string, err error) *Error {
		if rq.unsafe && (wrote.Load() || status != 0) {
			return fail(KindOutcomeUnknown, status, reason, err)
		}
		return fail(KindRetryable, status, reason, err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return lost(0, "transport failure", stripURL(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return lost(resp.StatusCode, "reading response failed", stripURL(err))
	}
	if int64(len(data)) > c.maxBody {
		switch {
		case rq.unsafe && resp.StatusCode < 300:
			return fail(KindOutcomeUnknown, resp.StatusCode, "response too large", nil)
		case rq.unsafe:
			return fail(KindTerminal, resp.StatusCode, "response too large", nil)
		}
		// A safe read may succeed later (smaller, or with a raised limit);
		// repeating it now would fetch the same answer again.
		e := fail(KindRetryable, resp.StatusCode, "response too large", nil)
		e.notNow = true
		return e
	}
	st := resp.StatusCode
	switch {
	case st >= 200 && st < 300:
		if rq.decode == nil {
			return nil
		}
		if err := rq.decode(st, data); err != nil {
			if errors.Is(err, errPartial) && !rq.unsafe {
				return fail(KindRetryable, st, "partial result", nil)
			}
			return lost(st, "malformed response", nil)
		}
		return nil
	case st == http.StatusTooManyRequests:
		ra, _ := ParseRetryAfter(resp.Header.Get("Retry-After"), c.clock.Now())
		if rq.service == ServiceDeletion && rq.op == opCreate {
			return &Error{Kind: KindQuotaExhausted, Service: rq.service, Op: rq.op, Status: st, RetryAfter: ra,
				Reason: "monthly deletion request quota reached"}
		}
		g.throttled(sentAt, c.clock.Now())
		e := fail(KindRateLimited, st, "too many requests", nil)
		e.RetryAfter = ra
		return e
	case st == http.StatusUnauthorized:
		return fail(KindUnauthorized, st, oauthProblem(data), nil)
	case st >= 500:
		e := lost(st, "server error", nil)
		// LivePerson documents no Retry-After on a 5xx; one that comes is honoured.
		e.RetryAfter, _ = ParseRetryAfter(resp.Header.Get("Retry-After"), c.clock.Now())
		return e
	case st >= 300 && st < 400:
		// The redirect was not followed (noRedirects), and its Location, which
		// may hold anything, is not kept. None of the LivePerson APIs called
		// here redirects: whoever answered an unsafe call with one may still
		// have acted on it, so it is reconciled, never sent again blindly.
		if rq.unsafe {
			return fail(KindOutcomeUnknown, st, "redirect not followed", nil)
		}
		return fail(KindTerminal, st, "redirect not followed", nil)
	default:
		return fail(KindTerminal, st, "request refused", nil)
	}
}

// stripURL drops the URL from net/http errors: a query string is no place
// for personal data, but an error is no place for anything we did not choose.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// oauthProblem extracts LivePerson's fixed `oauth_problem=` code from a 401
// body; nothing else of the body is kept.
func oauthProblem(body []byte) string {
	const key = "oauth_problem="
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return "credentials rejected"
	}
	rest := body[i+len(key):]
	j := 0
	for j < len(rest) && j < 40 && (rest[j] == '_' || rest[j] >= 'a' && rest[j] <= 'z') {
		j++
	}
	if j == 0 {
		return "credentials rejected"
	}
	return "oauth_problem=" + string(rest[:j])
}
