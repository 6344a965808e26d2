package liveperson

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies a failed LivePerson call by what the caller should do next.
type Kind int

const (
	// KindRetryable: a transient failure (5xx, transport, timeout, partial
	// result, an answer over the size limit or holding fewer records than it
	// counts) on a call that is safe to repeat later; retries were exhausted.
	KindRetryable Kind = iota + 1
	// KindTerminal: LivePerson refused the request (a 4xx other than 401/429),
	// answered a safe call with a redirect (never followed), or the response
	// cannot be used. Repeating it will not help.
	KindTerminal
	// KindQuotaExhausted: 429 on deletion create, the monthly request quota is
	// spent. Do not retry before the calendar month turns.
	KindQuotaExhausted
	// KindRateLimited: 429 on any other call; RetryAfter says when to come back.
	KindRateLimited
	// KindUnauthorized: credentials rejected (401, or a token could not be had).
	KindUnauthorized
	// KindOutcomeUnknown: a non-idempotent request (deletion create or cancel)
	// may have reached LivePerson but no usable answer came back (a redirect
	// included: it is never followed). The caller must reconcile (list and
	// match) before sending it again.
	KindOutcomeUnknown
	// KindResidency: the host discovered for the account is outside the
	// account's region. The call was refused and nothing was sent.
	KindResidency
	// KindInvalid: the request was refused before sending because it breaks the
	// contract (window too long, more than 100 ids, duplicates, ...).
	KindInvalid
)

var kindNames = map[Kind]string{
	KindRetryable:      "retryable",
	KindTerminal:       "terminal",
	KindQuotaExhausted: "quota exhausted",
	KindRateLimited:    "rate limited",
	KindUnauthorized:   "unauthorized",
	KindOutcomeUnknown: "outcome unknown",
	KindResidency:      "residency",
	KindInvalid:        "invalid request",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Error is the one error type of this package. Its text names the service, the
// operation, the HTTP status and a fixed reason; never a body or an identifier.
type Error struct {
	Kind       Kind
	Service    string        // LivePerson service name, e.g. "rtbf", "msgHist"
	Op         string        // operation, e.g. "deletion.create"
	Status     int           // HTTP status, 0 when none was received
	RetryAfter time.Duration // the server's Retry-After (a 429, or a 5xx that sent one), when known
	Reason     string        // fixed text chosen by this package, free of personal data
	Err        error         // underlying cause (transport or context), if any
	// notNow marks a retryable failure that repeating at once cannot cure
	// (an answer over the size limit): it is returned without in-place retries.
	notNow bool
}

func (e *Error) Error() string {
	s := "liveperson " + e.Service + " " + e.Op + ": " + e.Kind.String()
	if e.Status != 0 {
		s += fmt.Sprintf(" (HTTP %d)", e.Status)
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of err, or 0 when err is not (or does not wrap) an
// *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

// IsRetryable reports whether repeating the call later may succeed without
// reconciliation: transient failures and rate limiting.
func IsRetryable(err error) bool {
	k := KindOf(err)
	return k == KindRetryable || k == KindRateLimited
}

// IsQuotaExhausted reports a monthly deletion quota 429.
func IsQuotaExhausted(err error) bool { return KindOf(err) == KindQuotaExhausted }

// IsOutcomeUnknown reports a non-idempotent call whose effect is unknown.
func IsOutcomeUnknown(err error) bool { return KindOf(err) == KindOutcomeUnknown }

// IsResidency reports a call refused by the residency guard.
func IsResidency(err error) bool { return KindOf(err) == KindResidency }

// IsUnauthorized reports rejected credentials.
func IsUnauthorized(err error) bool { return KindOf(err) == KindUnauthorized }

// RetryAfterOf returns the wait LivePerson asked for, or 0.
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

func invalid(service, op, reason string) *Error {
	return &Error{Kind: KindInvalid, Service: service, Op: op, Reason: reason}
}
