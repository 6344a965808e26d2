package backoff

import (
	"testing"
	"time"
)

func TestWait(t *testing.T) {
	const s = time.Second
	documented := Policy{Steps: []time.Duration{5 * s, 10 * s, 15 * s}, Max: 2 * time.Minute}
	for _, tc := range []struct {
		name       string
		p          Policy
		n          int
		serverWait time.Duration
		rnd        func() float64
		want       time.Duration
	}{
		{"first step", documented, 1, 0, nil, 5 * s},
		{"third step", documented, 3, 0, nil, 15 * s},
		{"doubling past the steps", documented, 4, 0, nil, 30 * s},
		{"doubling again", documented, 5, 0, nil, time.Minute},
		{"capped", documented, 6, 0, nil, 2 * time.Minute},
		{"capped far past the steps", documented, 10_000, 0, nil, 2 * time.Minute},
		{"server asks for longer", documented, 1, 7 * s, nil, 7 * s},
		{"server asks for less", documented, 2, 3 * s, nil, 10 * s},
		{"server wait beyond the cap", documented, 1, 10 * time.Minute, nil, 10 * time.Minute},
		{"server wait beyond the ceiling", documented, 1, 1000 * time.Hour, nil, Ceiling},
		{"base doubling", Policy{Base: s, Max: 2 * time.Minute}, 3, 0, nil, 4 * s},
		{"zero value starts at a second", Policy{}, 1, 0, nil, s},
		{"zero value grows to the ceiling", Policy{}, 1000, 0, nil, Ceiling},
		{"no retry yet", documented, 0, 0, nil, 0},
		{"jitter adds at most its share", Policy{Steps: []time.Duration{5 * s}, Jitter: 0.2}, 1, 0,
			func() float64 { return 0.999999 }, 5*s + time.Duration(0.999999*0.2*float64(5*s))},
		{"jitter never takes away", Policy{Steps: []time.Duration{5 * s}, Jitter: 0.2}, 1, 0,
			func() float64 { return 0 }, 5 * s},
		{"jitter on the capped wait", Policy{Base: s, Max: 4 * s, Jitter: 0.5}, 9, 0,
			func() float64 { return 0.5 }, 5 * s},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.Wait(tc.n, tc.serverWait, tc.rnd); got != tc.want {
				t.Errorf("Wait(%d, %v) = %v, want %v", tc.n, tc.serverWait, got, tc.want)
			}
		})
	}
}

// TestWaitNeverBelowStep: whatever the random draw, a wait is at least the
// documented step and at most the step plus its jitter share.
func TestWaitNeverBelowStep(t *testing.T) {
	p := Policy{Steps: []time.Duration{5 * time.Second, 10 * time.Second, 15 * time.Second}, Max: 2 * time.Minute, Jitter: 0.2}
	bare := Policy{Steps: p.Steps, Max: p.Max}
	for n := 1; n <= 12; n++ {
		for _, r := range []float64{0, 0.25, 0.5, 0.75, 0.999} {
			floor := bare.Wait(n, 0, nil)
			got := p.Wait(n, 0, func() float64 { return r })
			if got < floor || got > floor+floor/5 {
				t.Errorf("Wait(%d) with draw %v = %v, want within [%v, %v]", n, r, got, floor, floor+floor/5)
			}
		}
	}
}
