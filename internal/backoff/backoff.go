// Package backoff computes the wait before a retry. It is the one backoff of
// erasured: the LivePerson client uses it between the attempts of one call,
// and the pipeline between the attempts of a step.
//
// A wait follows LivePerson's documented retry policy: fixed first steps
// (5, 10, 15 s after a 5xx), then exponential growth to a cap; a random extra
// share on top, so that the callers one outage failed do not all come back in
// the same instant; and never less than what the server asked for in
// Retry-After. The jitter only ever adds: LivePerson documents its waits as
// minimums ("retry after at least 1 s", "after 5, 10, 15 s"), so full or
// decorrelated jitter, which may wait less than the step, would break them.
//
// A wait is a function of the retry's number alone, not of the waits before
// it: the pipeline keeps only a count of failures in the store, and a restart
// must compute the same schedule.
package backoff

import "time"

// Policy describes the waits before successive retries. The zero value waits
// a second before the first retry and doubles, up to Ceiling.
type Policy struct {
	// Steps are the waits before the first len(Steps) retries; growth goes on
	// from the last one. Empty: start from Base.
	Steps []time.Duration
	// Base is the first wait when there are no Steps (default 1 s).
	Base time.Duration
	// Max caps the growth (0: Ceiling). Jitter and a server's wait may exceed it.
	Max time.Duration
	// Jitter is the largest random extra, as a fraction of the wait (0: none).
	Jitter float64
}

// Ceiling bounds every wait, a server's included: a garbled or hostile
// Retry-After must not park a worker for days.
const Ceiling = 24 * time.Hour

// Wait is the wait before retry n (the first retry is 1): the n-th step, or
// the last step doubled once per retry past the steps, capped at Max; plus up
// to Jitter of it drawn from rnd (values in [0, 1); nil: no jitter); and at
// least serverWait, the server's Retry-After (0 when it gave none).
func (p Policy) Wait(n int, serverWait time.Duration, rnd func() float64) time.Duration {
	limit := p.Max
	if limit <= 0 || limit > Ceiling {
		limit = Ceiling
	}
	var d time.Duration
	if n > 0 {
		// Start from the n-th step, or from the last step (or Base) with the
		// retries past it still to double.
		past := n - 1
		switch {
		case len(p.Steps) > 0:
			d, past = p.Steps[min(n, len(p.Steps))-1], n-len(p.Steps)
		case p.Base > 0:
			d = p.Base
		default:
			d = time.Second
		}
		for ; past > 0 && d < limit; past-- {
			d *= 2
		}
		d = min(d, limit)
	}
	if p.Jitter > 0 && rnd != nil {
		d += time.Duration(rnd() * p.Jitter * float64(d))
	}
	return min(max(d, serverWait), Ceiling)
}
