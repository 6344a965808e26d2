package service

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestSearchWindows checks the windows for many clocks: each fits LivePerson's shortest reading
// of its limit after LivePerson rounds from down and to up to 10 minutes (so each is aligned to
// 10 minutes and at most 28 or 89 days), they follow one another without gap, oldest first, and
// cover 13 calendar months and a day back from now.
func TestSearchWindows(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	nows := []time.Time{
		time.Date(2026, 3, 31, 23, 59, 59, 999, time.UTC),
		time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC), // aligned already
		time.Date(2025, 3, 29, 0, 5, 0, 0, time.UTC),
	}
	for range 500 {
		nows = append(nows, base.Add(time.Duration(rng.Int64N(int64(4*365*24*time.Hour)))))
	}
	const align = 10 * time.Minute
	for _, span := range []struct {
		name string
		d    time.Duration
		max  time.Duration
	}{{"chat", chatWindow, 28 * 24 * time.Hour}, {"messaging", messagingWindow, 89 * 24 * time.Hour}} {
		for _, now := range nows {
			wantFrom := now.AddDate(0, -13, -1).Truncate(align)
			var prev time.Time
			n := 0
			for from, to := range windows(now, span.d) {
				if n == 0 && !from.Equal(wantFrom) {
					t.Fatalf("%s windows at %v start at %v, want %v", span.name, now, from, wantFrom)
				}
				if n > 0 && !from.Equal(prev) {
					t.Fatalf("%s windows at %v: gap or overlap between %v and %v", span.name, now, prev, from)
				}
				lpFrom, lpTo := from.Truncate(align), ceil(to, align)
				if !lpFrom.Equal(from) || !lpTo.Equal(to) {
					t.Fatalf("%s window [%v, %v) is not aligned to 10 minutes", span.name, from, to)
				}
				if !to.After(from) || lpTo.Sub(lpFrom) > span.max {
					t.Fatalf("%s window [%v, %v) is %v after rounding, want at most %v", span.name, from, to, lpTo.Sub(lpFrom), span.max)
				}
				prev = to
				n++
			}
			if prev.Before(now) || prev.Sub(now) >= align {
				t.Fatalf("%s windows at %v end at %v, want now rounded up to 10 minutes", span.name, now, prev)
			}
		}
	}
}

func ceil(t time.Time, d time.Duration) time.Time {
	if f := t.Truncate(d); f.Equal(t) {
		return t
	} else {
		return f.Add(d)
	}
}
