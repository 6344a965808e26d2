package liveperson

import "time"

// Window is a half-open search interval [From, To).
type Window struct{ From, To time.Time }

// SplitWindows cuts [from, to) into consecutive windows of at most size,
// newest last: a 13-month sweep is 14 Engagement History windows of 30 days
// and 5 Messaging Interactions windows of 90.
func SplitWindows(from, to time.Time, size time.Duration) []Window {
	if size <= 0 || !to.After(from) {
		return nil
	}
	var out []Window
	for start := from; start.Before(to); start = start.Add(size) {
		out = append(out, Window{From: start, To: minTime(start.Add(size), to)})
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
