package liveperson

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimit configures the calls of one service in one region.
type RateLimit struct {
	// Rate is the allowed requests per second. 0 means unknown: the client
	// starts at LearnStart and learns the server's limit from its 429s.
	Rate float64
	// Burst is the limiter's bucket size (default 1: smooth traffic, no bursts).
	Burst int
	// Concurrency bounds requests in flight (default 8).
	Concurrency int
	// LearnStart is the starting rate when Rate is unknown (default 50/s).
	LearnStart float64
	// LearnMax caps a learned rate (default 1000/s).
	LearnMax float64
}

func (l RateLimit) withDefaults() RateLimit {
	if l.Burst <= 0 {
		l.Burst = 1
	}
	if l.Concurrency <= 0 {
		l.Concurrency = 8
	}
	if l.LearnStart <= 0 {
		l.LearnStart = 50
	}
	if l.LearnMax <= 0 {
		l.LearnMax = 1000
	}
	return l
}

// Tuning of the rate controller. Probe windows are short while searching for
// the limit and long once near it, so the steady state adds few 429s.
const (
	minRate        = 0.5
	probeWindow    = 100 * time.Millisecond
	steadyWindow   = time.Second
	steadyIncrease = 1.02 // per clean, busy steady window
	steadyDecrease = 0.9  // per 429 in the steady phase
	searchDone     = 0.05 // stop bisecting when hi-lo is within 5% of hi
	busyFraction   = 0.8  // a window counts only if the rate was really used
)

type phase int

const (
	phaseSlowStart phase = iota // doubling per clean window
	phaseSearch                 // bisecting between the last clean and first throttled rate
	phaseSteady                 // near the limit: +2% per clean second, -10% per 429
)

// controller is the rate limiter of one (region, service), with an AIMD-style
// controller on top: a 429 lowers the rate at once, clean busy windows raise
// it slowly. Only a 429 for a request sent after the last cut cuts again, so
// the requests already in flight at a cut do not compound it.
type controller struct {
	sem chan struct{}

	mu       sync.Mutex
	lim      *rate.Limiter
	ceiling  float64
	cur      float64
	phase    phase
	lo, hi   float64
	lastCut  time.Time
	winStart time.Time
	winCount int
}

func newController(l RateLimit, now time.Time) *controller {
	l = l.withDefaults()
	c := &controller{sem: make(chan struct{}, l.Concurrency), winStart: now}
	if l.Rate > 0 {
		c.ceiling, c.cur, c.phase = l.Rate, l.Rate, phaseSteady
	} else {
		c.ceiling, c.cur, c.phase = l.LearnMax, min(l.LearnStart, l.LearnMax), phaseSlowStart
	}
	c.lim = rate.NewLimiter(rate.Limit(c.cur), l.Burst)
	return c
}

// acquire takes a concurrency slot and waits for the limiter. It returns the
// admission time, which later identifies whether a 429 predates a cut.
func (c *controller) acquire(ctx context.Context, clk Clock) (time.Time, error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
	now := clk.Now()
	c.mu.Lock()
	r := c.lim.ReserveN(now, 1)
	c.mu.Unlock()
	if d := r.DelayFrom(now); d > 0 {
		if err := clk.Sleep(ctx, d); err != nil {
			r.CancelAt(clk.Now())
			<-c.sem
			return time.Time{}, err
		}
	}
	at := clk.Now()
	c.mu.Lock()
	c.observe(at)
	c.mu.Unlock()
	return at, nil
}

func (c *controller) release() { <-c.sem }

// observe counts an admission and, at the end of a window that was busy and
// saw no cut, raises the rate.
func (c *controller) observe(now time.Time) {
	c.winCount++
	win := probeWindow
	if c.phase == phaseSteady {
		win = steadyWindow
	}
	elapsed := now.Sub(c.winStart)
	if elapsed < win {
		return
	}
	busy := float64(c.winCount) >= busyFraction*c.cur*elapsed.Seconds()
	c.winStart, c.winCount = now, 0
	if !busy || c.cur >= c.ceiling {
		return
	}
	switch c.phase {
	case phaseSlowStart:
		c.set(now, c.cur*2)
	case phaseSearch:
		c.lo = c.cur
		c.bisect(now)
	case phaseSteady:
		c.set(now, c.cur*steadyIncrease)
	}
}

// throttled lowers the rate after a 429 for a request admitted at sentAt.
func (c *controller) throttled(sentAt, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sentAt.Before(c.lastCut) {
		return
	}
	c.lastCut, c.winStart, c.winCount = now, now, 0
	switch c.phase {
	case phaseSlowStart:
		c.phase, c.hi, c.lo = phaseSearch, c.cur, c.cur/2
		c.bisect(now)
	case phaseSearch:
		c.hi = c.cur
		c.bisect(now)
	case phaseSteady:
		c.set(now, c.cur*steadyDecrease)
	}
}

func (c *controller) bisect(now time.Time) {
	if c.hi-c.lo <= searchDone*c.hi {
		c.phase = phaseSteady
		c.set(now, c.lo)
		return
	}
	c.set(now, (c.lo+c.hi)/2)
}

func (c *controller) set(now time.Time, r float64) {
	c.cur = max(minRate, min(r, c.ceiling))
	c.lim.SetLimitAt(now, rate.Limit(c.cur))
}

// Rate returns the current allowed rate (for tests and metrics).
func (c *controller) rate() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}
