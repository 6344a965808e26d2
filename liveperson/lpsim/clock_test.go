package lpsim

import (
	"testing"
	"time"
)

func TestFastClock(t *testing.T) {
	start := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	c := NewFastClock(start, 3600) // an hour a second
	if got := c.Now(); got.Before(start) || got.Sub(start) > time.Hour {
		t.Fatalf("Now = %v, want just after %v", got, start)
	}
	if got := c.Real(time.Hour); got != time.Second {
		t.Errorf("Real(1h) = %v, want 1s", got)
	}
	began := time.Now()
	at := <-c.After(36 * time.Second) // 10 ms of real time
	if real := time.Since(began); real < 10*time.Millisecond {
		t.Errorf("After(36s) returned after %v of real time, want ≥ 10ms", real)
	}
	if at.Sub(start) < 36*time.Second {
		t.Errorf("After(36s) delivered %v, less than 36s after the start", at.Sub(start))
	}
	// A wait that scales to nothing still takes MinWait, so a loop cannot spin.
	began = time.Now()
	<-c.After(time.Microsecond)
	if real := time.Since(began); real < MinWait {
		t.Errorf("After(1µs) returned after %v, want ≥ %v", real, MinWait)
	}
}

func TestFastClockHold(t *testing.T) {
	began := time.Now()
	c := NewFastClock(time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), 3600)
	c.Hold()
	c.Hold() // holds nest
	held := c.Now()
	fired := c.After(time.Second) // 0.28 ms of real time, were the clock running
	time.Sleep(20 * time.Millisecond)
	if got := c.Now(); !got.Equal(held) {
		t.Fatalf("the held clock moved by %v", got.Sub(held))
	}
	select {
	case <-fired:
		t.Fatal("a timer fired while the clock was held")
	default:
	}
	c.Release()
	if got := c.Now(); !got.Equal(held) {
		t.Fatalf("the clock ran with one hold left: moved by %v", got.Sub(held))
	}
	c.Release()
	at := <-fired
	if at.Sub(held) < time.Second {
		t.Errorf("the timer fired %v after the hold began, want ≥ 1s", at.Sub(held))
	}
	// At least 20 ms were held: the clock ran at most for the rest of the real time.
	ran := time.Since(began) - 20*time.Millisecond
	if moved := c.Now().Sub(held); moved > time.Duration(float64(ran)*3600) {
		t.Errorf("the clock counted its held time: %v since the hold, in %v of real time", moved, time.Since(began))
	}
	c.Release() // one too many: no effect
}
