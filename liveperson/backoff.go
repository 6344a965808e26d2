package liveperson

import (
	"time"

	"github.com/erasured/erasured/internal/backoff"
)

// RetryPolicy bounds automatic retries of calls that are safe to repeat.
// The zero value takes LivePerson's documented policy (see the fields).
type RetryPolicy struct {
	// Steps are the waits before the first retries after a 5xx or transport
	// failure; LivePerson documents 5, 10 and 15 s.
	Steps []time.Duration
	// MaxBackoff caps the exponential growth after Steps (default 2 min).
	MaxBackoff time.Duration
	// MaxAttempts bounds attempts per call, the first included (default 6).
	MaxAttempts int
	// MaxElapsed bounds the total time spent on one call, waits included
	// (default 5 min). A wait that would pass it is not started.
	MaxElapsed time.Duration
	// MinRateLimitWait is the least wait after a 429 (default 1 s).
	MinRateLimitWait time.Duration
	// Jitter is the random fraction added to each wait (default 0.2; negative
	// for none), so that workers failed by the same outage do not return in one
	// burst.
	Jitter float64
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Steps == nil {
		p.Steps = []time.Duration{5 * time.Second, 10 * time.Second, 15 * time.Second}
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 2 * time.Minute
	}
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 6
	}
	if p.MaxElapsed <= 0 {
		p.MaxElapsed = 5 * time.Minute
	}
	if p.MinRateLimitWait <= 0 {
		p.MinRateLimitWait = time.Second
	}
	if p.Jitter < 0 {
		p.Jitter = 0
	} else if p.Jitter == 0 {
		p.Jitter = 0.2
	}
	return p
}

// serverErrorWait is the wait before retry n (1-based) after a 5xx/transport
// failure: the documented steps, then doubling from the last step, capped; and
// never less than the server's Retry-After.
func (p RetryPolicy) serverErrorWait(n int, retryAfter time.Duration, rnd func() float64) time.Duration {
	return backoff.Policy{Steps: p.Steps, Max: p.MaxBackoff, Jitter: p.Jitter}.Wait(n, retryAfter, rnd)
}

// rateLimitWait is the wait before retry n (counting only 429s): at least
// MinRateLimitWait doubling per consecutive 429, capped, and never less than the
// server's Retry-After.
func (p RetryPolicy) rateLimitWait(n int, retryAfter time.Duration, rnd func() float64) time.Duration {
	return backoff.Policy{Base: p.MinRateLimitWait, Max: p.MaxBackoff, Jitter: p.Jitter}.Wait(n, retryAfter, rnd)
}
