package liveperson

import (
	"context"
	"testing"
	"time"
)

// TestControllerLearns drives the controller against an imaginary server that
// allows 200 req/s: slow start doubles, the first 429 starts a bisection, and
// the rate settles within 15% under the limit.
func TestControllerLearns(t *testing.T) {
	clk := NewFakeClock(time.Unix(0, 0))
	c := newController(RateLimit{}, clk.Now())
	if got := c.rate(); got != 50 {
		t.Fatalf("start rate = %v, want 50", got)
	}
	const limit = 200.0
	ctx := context.Background()
	var throttled int
	for i := 0; i < 2000; i++ {
		at, err := c.acquire(ctx, clk)
		if err != nil {
			t.Fatal(err)
		}
		c.release()
		if c.rate() > limit*1.05 { // the server answers 429 once we run clearly above its limit
			throttled++
			c.throttled(at, clk.Now())
		}
	}
	got := c.rate()
	if got > limit*1.05 || got < limit*0.85 {
		t.Errorf("learned rate = %.1f, want within [170, 210]", got)
	}
	if throttled > 10 {
		t.Errorf("throttled %d times while learning, want ≤ 10", throttled)
	}
}

// TestControllerKnownRate keeps a configured rate, cuts it on a 429, and
// recovers slowly, never above the configured ceiling.
func TestControllerKnownRate(t *testing.T) {
	clk := NewFakeClock(time.Unix(0, 0))
	c := newController(RateLimit{Rate: 100}, clk.Now())
	at, _ := c.acquire(context.Background(), clk)
	c.release()
	c.throttled(at, clk.Now())
	if got := c.rate(); got != 90 {
		t.Fatalf("rate after 429 = %v, want 90", got)
	}
	c.throttled(at, clk.Now()) // same generation: no second cut
	if got := c.rate(); got != 90 {
		t.Fatalf("rate after stale 429 = %v, want 90", got)
	}
	for i := 0; i < 3000; i++ {
		if _, err := c.acquire(context.Background(), clk); err != nil {
			t.Fatal(err)
		}
		c.release()
	}
	if got := c.rate(); got != 100 {
		t.Errorf("rate after recovery = %v, want the ceiling 100", got)
	}
}

// TestControllerIdleDoesNotRaise: a rate that is not used must not grow, or
// an idle client would burst into 429s later.
func TestControllerIdleDoesNotRaise(t *testing.T) {
	clk := NewFakeClock(time.Unix(0, 0))
	c := newController(RateLimit{}, clk.Now())
	for i := 0; i < 50; i++ {
		clk.Advance(time.Second)
		if _, err := c.acquire(context.Background(), clk); err != nil {
			t.Fatal(err)
		}
		c.release()
	}
	if got := c.rate(); got != 50 {
		t.Errorf("rate after idle use = %v, want 50", got)
	}
}
