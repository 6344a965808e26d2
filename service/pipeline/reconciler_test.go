package pipeline

import (
	"testing"
	"time"

	"github.com/erasured/erasured/service/model"
)

// TestRuledOutByTime: only a plausible request_time well before the first send rules a request
// out; anything uncertain keeps it a candidate.
func TestRuledOutByTime(t *testing.T) {
	sent := time.Date(2026, 3, 10, 18, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		at   time.Time
		want bool
	}{
		{"no time", time.Time{}, false},
		{"unix epoch", time.UnixMilli(sent.Unix()).UTC(), false},
		{"before 2000", time.Date(1999, 12, 31, 23, 0, 0, 0, time.UTC), false},
		{"after the send", sent.Add(time.Hour), false},
		{"hours before the send", sent.Add(-20 * time.Hour), false},
		{"just within the margin", sent.Add(-RequestTimeMargin + time.Minute), false},
		{"beyond the margin", sent.Add(-RequestTimeMargin - time.Minute), true},
		{"months before the send", sent.AddDate(0, -3, 0), true},
	} {
		if got := ruledOutByTime(model.Deletion{Created: tc.at}, sent); got != tc.want {
			t.Errorf("%s: ruledOutByTime(%v) = %v, want %v", tc.name, tc.at, got, tc.want)
		}
	}
}
