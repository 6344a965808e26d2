package service

import (
	"errors"
	"fmt"
)

// ErrorKind classifies a service error. The server maps each kind to one gRPC code; the service
// itself never names gRPC codes.
type ErrorKind int

// Error kinds.
const (
	KindInternal ErrorKind = iota
	KindInvalid
	KindNotFound
	KindConflict           // the request collides with what exists (request_id reused with another payload)
	KindFailedPrecondition // the erasure's state does not allow the action
	KindAborted            // a concurrency check failed (stale plan_etag): read again and retry
	KindOutOfRange         // a revision outside the range kept
	KindUnavailable        // cannot serve now; retry later
	KindUnimplemented
	KindUnauthenticated
	KindPermissionDenied
)

// Error is a service error: a kind, a stable machine-readable reason (UPPER_SNAKE_CASE) and a
// message for people. Messages never contain personal data.
type Error struct {
	Kind     ErrorKind
	Reason   string
	Message  string
	Metadata map[string]string
}

func (e *Error) Error() string { return e.Message }

func newError(kind ErrorKind, reason, format string, args ...any) *Error {
	return &Error{Kind: kind, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// KindOf returns the kind of err: the kind of the *Error it wraps, or KindInternal.
func KindOf(err error) ErrorKind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}
