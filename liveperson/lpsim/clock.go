package lpsim

import (
	"sync"
	"time"
)

// Clock is the simulator's time: it drives searchability lag, retention, the
// deletion lifecycle and token expiry. Tests use a ManualClock; the sandbox a
// ScaledClock so that LivePerson's 5 + 20 days pass in under a minute.
type Clock interface {
	Now() time.Time
}

// ManualClock only moves when told to.
type ManualClock struct {
	mu sync.Mutex
	t  time.Time
}

// NewManualClock starts a clock at t.
func NewManualClock(t time.Time) *ManualClock { return &ManualClock{t: t.UTC()} }

// Now returns the clock's time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Set moves the clock to t.
func (c *ManualClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t.UTC()
}

type scaledClock struct {
	origin time.Time
	speed  float64
}

// ScaledClock starts at the real now and runs speed times faster than real
// time: ScaledClock(50000) passes 25 days in about 43 s. ScaledClock(1) is real
// time, in UTC: the simulator writes its timestamps with a literal Z.
func ScaledClock(speed float64) Clock {
	if speed <= 0 {
		speed = 1
	}
	return scaledClock{origin: time.Now(), speed: speed}
}

func (c scaledClock) Now() time.Time {
	real := time.Since(c.origin)
	return c.origin.Add(time.Duration(float64(real) * c.speed)).UTC()
}
