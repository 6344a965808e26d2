package service

import (
	"errors"
	"time"
)

// RetryAfterError is a LivePerson failure that came with the server's own wait (Retry-After):
// the step or batch it failed is not tried again before the wait has passed, however early its
// backoff would come back. A LivePerson implementation builds it with WithRetryAfter, around an
// error that says what failed (ErrUnavailable and the like).
type RetryAfterError struct {
	Err  error         // the failure
	Wait time.Duration // how long LivePerson asked us to wait
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }

func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter is how long LivePerson asked us to wait.
func (e *RetryAfterError) RetryAfter() time.Duration { return e.Wait }

// WithRetryAfter returns err carrying LivePerson's wait d; with no wait (d <= 0) or no error it
// returns err as it is.
func WithRetryAfter(err error, d time.Duration) error {
	if err == nil || d <= 0 {
		return err
	}
	return &RetryAfterError{Err: err, Wait: d}
}

// serverWait is the wait LivePerson asked for with err, 0 when it asked for none.
func serverWait(err error) time.Duration {
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		return ra.RetryAfter()
	}
	return 0
}
