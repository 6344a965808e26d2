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

// Tuning of the rate controller: slow start doubles every busy, clean 100 ms;
// near the limit the rate grows 5% per busy, clean second and is cut on a
// 429, harder when the last cut was recent (still clearly over the limit).
const (
	minRate        = 0.5
	probeWindow    = 100 * time.Millisecond
	steadyWindow   = time.Second
	steadyIncrease = 1.05
	steadyDecrease = 0.9
	rapidDecrease  = 0.75 // a 429 within rapidWindow of the previous cut
	rapidWindow    = time.Second
	busyFraction   = 0.8 // a window counts only if the rate was really used
)

type phase int

const (
	phaseSlowStart phase = iota // learning: doubling per clean window
	phaseSteady                 // near the limit
)

// controller is the rate limiter of one (region, service), with an AIMD-style
// controller on top: a 429 lowers the rate at once, clean busy windows raise
// it slowly. Only a 429 for a request admitted after the last cut cuts again,
// so the requests already in flight at a cut do not compound it. A configured
// rate starts in the steady phase with that rate as ceiling.
type controller struct {
	sem chan struct{}

	mu       sync.Mutex
	lim      *rate.Limiter
	ceiling  float64
	cur      float64
	phase    phase
	lastCut  time.Time
	gen      int // counts cuts; slots reserved under an older gen are re-reserved
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
//
// Slots are reserved ahead, so waiters go out exactly on the limiter's
// schedule; but a slot reserved before a cut was priced at the old rate, so
// its holder re-reserves at the new one instead of going out early into more
// 429s.
func (c *controller) acquire(ctx context.Context, clk Clock) (time.Time, error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
	for {
		now := clk.Now()
		c.mu.Lock()
		gen := c.gen
		r := c.lim.ReserveN(now, 1)
		c.mu.Unlock()
		if d := r.DelayFrom(now); d > 0 {
			if err := clk.Sleep(ctx, d); err != nil {
				c.mu.Lock()
				r.CancelAt(clk.Now())
				c.mu.Unlock()
				<-c.sem
				return time.Time{}, err
			}
		}
		at := clk.Now()
		c.mu.Lock()
		if c.gen != gen {
			r.CancelAt(at)
			c.mu.Unlock()
			continue
		}
		c.observe(at)
		c.mu.Unlock()
		return at, nil
	}
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
	if c.phase == phaseSlowStart {
		c.set(now, c.cur*2)
	} else {
		c.set(now, c.cur*steadyIncrease)
	}
}

// throttled lowers the rate after a 429 for a request admitted at sentAt.
func (c *controller) throttled(sentAt, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.lastCut.IsZero() && !sentAt.After(c.lastCut) {
		return
	}
	recent := !c.lastCut.IsZero() && now.Sub(c.lastCut) < rapidWindow
	c.lastCut, c.winStart, c.winCount = now, now, 0
	c.gen++
	switch {
	case c.phase == phaseSlowStart:
		// The previous, halved rate ran clean for a whole window.
		c.phase = phaseSteady
		c.set(now, c.cur/2)
	case recent:
		c.set(now, c.cur*rapidDecrease)
	default:
		c.set(now, c.cur*steadyDecrease)
	}
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
