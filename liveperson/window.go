package liveperson

import "time"

// Limits of the history APIs' time windows. The documentation says "one
// month" and "three months" and rounds from down and to up to 10 minutes, so
// a window is checked after that rounding against the shortest reading: 28
// days for Engagement History, 89 for Messaging Interactions.
const (
	MaxEngagementWindow   = 28 * 24 * time.Hour
	MaxConversationWindow = 89 * 24 * time.Hour
	// windowRounding is LivePerson's rounding of a window's ends.
	windowRounding = 10 * time.Minute
)

// window is the `start` of a history search, in epoch milliseconds.
func window(from, to time.Time) map[string]int64 {
	return map[string]int64{"from": from.UnixMilli(), "to": to.UnixMilli()}
}

// roundedSpan is the length of [from, to) once LivePerson has rounded from
// down and to up to 10 minutes, computed on the milliseconds sent.
func roundedSpan(from, to time.Time) time.Duration {
	step := windowRounding.Milliseconds()
	f, t := from.UnixMilli(), to.UnixMilli()
	f -= mod(f, step)
	if r := mod(t, step); r != 0 {
		t += step - r
	}
	return time.Duration(t-f) * time.Millisecond
}

// mod is the non-negative remainder, so that windows before 1970 round the
// same way.
func mod(a, b int64) int64 {
	if r := a % b; r < 0 {
		return r + b
	}
	return a % b
}

func checkWindow(service, op string, from, to time.Time, limit time.Duration) error {
	switch {
	case from.IsZero() || to.IsZero():
		return invalid(service, op, "start window required")
	case !to.After(from):
		return invalid(service, op, "window ends before it starts")
	case roundedSpan(from, to) > limit:
		return invalid(service, op, "window too long once rounded to 10 minutes")
	}
	return nil
}
