package liveperson

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/erasured/erasured/internal/backoff"
)

// maxRetryAfter bounds what a server can make us wait: a garbage or hostile
// header must not park a worker for days.
const maxRetryAfter = backoff.Ceiling

// ParseRetryAfter reads a Retry-After header value (RFC 9110 §10.2.3): either
// delay-seconds or an HTTP-date, relative to now. It reports false for an
// absent or unreadable value. Negative results are clamped to zero, huge ones
// to a day.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		if strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
			return 0, false
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n > uint64(maxRetryAfter/time.Second) {
			// Digits only but beyond any sane wait: honour it as the cap.
			return maxRetryAfter, true
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	switch {
	case d < 0:
		return 0, true
	case d > maxRetryAfter:
		return maxRetryAfter, true
	}
	return d, true
}
