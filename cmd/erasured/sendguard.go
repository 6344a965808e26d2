package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/erasured/erasured/store"
)

// A deposed leader must never send to LivePerson once another replica may be acting on the
// same deletion batches. The pipeline's work runs under its term's fenced context, and every
// LivePerson request it makes carries that context; sendGuard, the innermost transport of the
// LivePerson client, checks the term before each request goes out and bounds it in time:
//
//   - A request is refused, never sent, once time.Now is past the term's ValidUntil minus
//     sendMargin, or once the term has ended (Done closed).
//   - A request that goes out carries a deadline of ValidUntil minus sendMargin: the connection
//     is cut then, so the process writes nothing to LivePerson after it.
//
// ValidUntil is the latest time at which no other replica can have been elected, whatever
// happens to this one. A new leader is elected only once the old term's lease has expired,
// which is after the old leader's last ValidUntil; it then waits takeoverWait (sendMargin and a
// network allowance) before its pipeline starts. So the old leader's last bytes left it at
// least sendMargin before the new term began, and the new leader's first request leaves a
// further takeoverWait after that: whatever the old leader sent has reached LivePerson (the
// allowance covers a slow network) before the new leader reads LivePerson's list to settle the
// outcomes it does not know. LivePerson may take longer than that to record a create it has
// received; the pipeline covers that itself: it does not take "not listed" for "not created"
// until the last send's call timeout and an allowance have passed (service/pipeline listwait.go).
//
// The residual risk is a process frozen between the check and the write of its request (a
// SIGSTOP, a VM paused, a GC pause of many seconds) inside the Go runtime or the kernel: the
// deadline cuts the connection only when the process runs again, and the bytes already handed
// to the kernel may still leave. Keeping lease_ttl well above such pauses, and the margin
// above the time a request takes to be written, makes it unlikely, not impossible.
//
// Requests without a term pass unchanged: those of the calls served on any replica (Preview,
// a remote Cancel, SettleBatch's look-ups), and every request on a backend whose term never
// lapses (bbolt's ValidUntil is far in the future).

const (
	// sendMargin is how long before the term's ValidUntil the pipeline's requests stop: the
	// last request is written out by then.
	sendMargin = time.Second
	// networkAllowance is how long a request written out may still take to reach LivePerson
	// and be recorded there.
	networkAllowance = 2 * time.Second
	// takeoverWait is how long a new leader waits before its pipeline starts.
	takeoverWait = sendMargin + networkAllowance
)

// errTermLapsing is the error of a request refused because the term may pass to another
// replica before it could be sent and answered.
var errTermLapsing = errors.New("pipeline leadership is ending: request not sent to LivePerson")

// sendGuard is the transport that refuses and bounds the requests made under a term of
// leadership (see above).
type sendGuard struct {
	next   http.RoundTripper
	margin time.Duration
	now    func() time.Time
}

// newSendGuard guards next with sendMargin.
func newSendGuard(next http.RoundTripper) *sendGuard {
	return &sendGuard{next: next, margin: sendMargin, now: time.Now}
}

// RoundTrip sends req unless it is made under a term that has ended or is about to, with a
// deadline at the end of what the term certainly holds.
func (g *sendGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	l := store.LeadershipOf(req.Context())
	if l == nil {
		return g.next.RoundTrip(req)
	}
	select {
	case <-l.Done():
		closeBody(req)
		return nil, errTermLapsing
	default:
	}
	until := l.ValidUntil().Add(-g.margin)
	if !g.now().Before(until) {
		closeBody(req)
		return nil, errTermLapsing
	}
	ctx, cancel := context.WithDeadline(req.Context(), until)
	resp, err := g.next.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	// The deadline holds until the answer is read: the body ends the request.
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// closeBody closes the body of a request not sent, as a RoundTripper must.
func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// cancelBody releases the request's deadline once its answer has been read.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
