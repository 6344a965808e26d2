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

// FastClock is a scaled clock that starts at a chosen time, with a timer that runs as fast: a
// benchmark gives one clock to the simulator and to erasured (its Now, and its pipeline's
// After), so that a month of LivePerson's timeline passes in a minute and both sides agree on
// every instant. Hold stops it while work that should take no time of its own runs (a benchmark
// holds it during each search call, so that this machine's speed at answering searches is not
// what a simulated month measures).
type FastClock struct {
	origin time.Time // real time at start
	start  time.Time // the clock's time at origin
	speed  float64

	mu       sync.Mutex
	held     int           // holds in force
	heldFrom time.Time     // real time the first of them began
	stopped  time.Duration // real time spent held, before heldFrom
	parked   []fastTimer   // timers that came due in real time while the clock was held
}

type fastTimer struct {
	at time.Time
	ch chan time.Time
}

// MinWait is the shortest real time FastClock.After waits, so that a loop that waits for a
// duration which scales to nothing still yields the processor instead of spinning.
const MinWait = time.Millisecond

// NewFastClock returns a clock that reads start now and runs speed times faster than real time
// (speed ≤ 0 counts as 1).
func NewFastClock(start time.Time, speed float64) *FastClock {
	if speed <= 0 {
		speed = 1
	}
	return &FastClock{origin: time.Now(), start: start.UTC(), speed: speed}
}

// Now returns the clock's time, in UTC.
func (c *FastClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now()
}

// now is Now with c.mu held.
func (c *FastClock) now() time.Time {
	real := time.Now()
	if c.held > 0 {
		real = c.heldFrom
	}
	ran := real.Sub(c.origin) - c.stopped
	return c.start.Add(time.Duration(float64(ran) * c.speed))
}

// Speed is how many times faster than real time the clock runs.
func (c *FastClock) Speed() float64 { return c.speed }

// Real is the real time that d of the clock's time takes while the clock runs.
func (c *FastClock) Real(d time.Duration) time.Duration {
	return time.Duration(float64(d) / c.speed)
}

// Hold stops the clock until as many Releases as Holds: holds nest and may overlap.
func (c *FastClock) Hold() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == 0 {
		c.heldFrom = time.Now()
	}
	c.held++
}

// Release ends one Hold; when none is left the clock runs again, and the timers that came due
// meanwhile wait for what is left of their time.
func (c *FastClock) Release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == 0 {
		return
	}
	if c.held--; c.held > 0 {
		return
	}
	c.stopped += time.Since(c.heldFrom)
	now := c.now()
	for _, t := range c.parked {
		c.arm(t, t.at.Sub(now))
	}
	c.parked = nil
}

// After is time.After on the clock: the channel receives the clock's time once d of it has
// passed, which takes d/speed of real time while the clock runs, and never less than MinWait.
func (c *FastClock) After(d time.Duration) <-chan time.Time {
	t := fastTimer{at: c.Now().Add(d), ch: make(chan time.Time, 1)}
	c.arm(t, d)
	return t.ch
}

// arm fires t after d of the clock's time (at least MinWait of real time) unless the clock is
// held then: then t waits for the clock to run again.
func (c *FastClock) arm(t fastTimer, d time.Duration) {
	time.AfterFunc(max(c.Real(d), MinWait), func() {
		c.mu.Lock()
		if c.held > 0 {
			c.parked = append(c.parked, t)
			c.mu.Unlock()
			return
		}
		now := c.now()
		c.mu.Unlock()
		if left := t.at.Sub(now); left > 0 {
			c.arm(t, left)
			return
		}
		t.ch <- now
	})
}
