package pipeline

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
			// Thirteen months back, read either way a shorter month allows (Go's overflow or a
			// clamp to the month's last day), and a day more: the windows start at the earlier.
			latest := now.AddDate(0, -13, 0)
			if c := clampedMonthsBack(now, 13); c.Before(latest) {
				latest = c
			}
			latest = latest.AddDate(0, 0, -1)
			var prev time.Time
			n := 0
			for from, to := range windows(now, span.d) {
				if n == 0 && (from.After(latest) || from.Before(latest.Add(-align))) {
					t.Fatalf("%s windows at %v start at %v, want %v rounded down to 10 minutes", span.name, now, from, latest)
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

// clampedMonthsBack is now less n calendar months, the day clamped to the target month's length.
func clampedMonthsBack(now time.Time, n int) time.Time {
	first := time.Date(now.Year(), now.Month()-time.Month(n), 1, now.Hour(), now.Minute(), now.Second(), now.Nanosecond(), now.Location())
	days := time.Date(first.Year(), first.Month()+1, 0, 0, 0, 0, 0, now.Location()).Day()
	return first.AddDate(0, 0, min(now.Day(), days)-1)
}

// TestRetentionStartAtMonthEnds: the month step clamps, so the search reaches back to the last
// days of a shorter month instead of skipping them.
func TestRetentionStartAtMonthEnds(t *testing.T) {
	for _, c := range []struct{ now, want time.Time }{
		{time.Date(2026, 3, 31, 10, 0, 0, 0, time.UTC), time.Date(2025, 2, 27, 10, 0, 0, 0, time.UTC)},
		{time.Date(2026, 5, 31, 10, 0, 0, 0, time.UTC), time.Date(2025, 4, 29, 10, 0, 0, 0, time.UTC)},
		{time.Date(2025, 3, 29, 10, 0, 0, 0, time.UTC), time.Date(2024, 2, 28, 10, 0, 0, 0, time.UTC)},
		{time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC), time.Date(2025, 11, 2, 10, 0, 0, 0, time.UTC)},
	} {
		if got := retentionStart(c.now); !got.Equal(c.want) {
			t.Errorf("retentionStart(%v) = %v, want %v", c.now, got, c.want)
		}
	}
}
