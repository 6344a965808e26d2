package model

import (
	"context"
	"errors"
	"time"
)

// LivePerson is what the pipeline needs from LivePerson. The liveperson package implements the
// calls; cmd adapts it to this interface. Every method is one logical operation: paging, retries
// of safe calls, rate limits and regional routing happen behind it.
type LivePerson interface {
	// SearchChats runs one Engagement History keyword search over [from, to) (at most one month),
	// the keyword quoted, over the customerInfo and personalInfo areas. Only ended chats return.
	SearchChats(ctx context.Context, account string, from, to time.Time, keyword string) ([]ChatRecord, error)
	// ChatByID re-reads one engagement by id, with its transcript (for verification and explicit
	// targets); found is false if it is not in [from, to).
	ChatByID(ctx context.Context, account, engagementID string, from, to time.Time) (rec ChatRecord, found bool, err error)
	// SearchConversations runs one Messaging Interactions search over [from, to) (at most three
	// months) with the phrase in the customerInfo or personalInfo SDEs, for open and closed
	// conversations alike (ConversationRecord.Open tells them apart).
	SearchConversations(ctx context.Context, account string, from, to time.Time, sde SDESearch) ([]ConversationRecord, error)
	// ConversationsByConsumer returns a consumer's conversations, open and closed.
	ConversationsByConsumer(ctx context.Context, account, consumerID string) ([]ConversationRecord, error)
	// ConversationsByID re-reads conversations by id (at most 100), with their messages and
	// attributes (content read), for verification and for explicit targets.
	ConversationsByID(ctx context.Context, account string, ids []string) ([]ConversationRecord, error)

	// CreateDeletion asks LivePerson to delete ids of one kind (at most 100). It is NOT
	// idempotent and costs quota; it is never retried blindly. Errors: ErrQuotaExhausted,
	// ErrOutcomeUnknown (the request may have been created), ErrRejected, ErrUnavailable.
	CreateDeletion(ctx context.Context, account string, kind TargetKind, ids []string) (Deletion, error)
	// ListDeletions lists the account's deletion requests created between from and to (days);
	// a zero to means no upper bound.
	ListDeletions(ctx context.Context, account string, from, to time.Time) ([]Deletion, error)
	// GetDeletion reads one deletion request.
	GetDeletion(ctx context.Context, account string, id int64) (Deletion, error)
	// CancelDeletion cancels a deletion request that is still NOT_STARTED.
	CancelDeletion(ctx context.Context, account string, id int64) (Deletion, error)
}

// SDESearch selects the engagement-attribute areas a messaging search looks in.
type SDESearch struct {
	CustomerInfo string // phrase to find in customerInfo (empty: not searched)
	PersonalInfo string // phrase to find in personalInfo (empty: not searched)
}

// ChatRecord is one chat engagement as Engagement History returns it, reduced to what matching
// and verification need.
type ChatRecord struct {
	EngagementID string
	Start        time.Time
	CustomerIDs  []string // customerInfo customerId values
	Emails       []string // personalInfo contacts
	Phones       []string
	// ContentRead is true when the answer carried the chat's transcript, so that Masked means
	// something. A record read without its content proves nothing: neither kept nor erased.
	ContentRead bool
	// Masked: the content was read, and every consumer-authored line and every attribute value
	// shows LivePerson's deletion mask. System and agent lines may stay.
	Masked bool
}

// ConversationRecord is one messaging conversation, reduced likewise.
type ConversationRecord struct {
	ConversationID string
	Open           bool
	Start          time.Time
	ConsumerIDs    []string // consumer participant ids
	// Attribute values from authenticated engagement attributes (sdes): the brand vouches for
	// them, so a match on them makes the conversation's consumer the person's.
	CustomerIDs []string
	Emails      []string
	Phones      []string
	// Attribute values from unauthenticated engagement attributes (unAuthSdes): whatever the
	// visitor typed. A match on them makes the conversation a target, never its consumer.
	UnauthCustomerIDs []string
	UnauthEmails      []string
	UnauthPhones      []string
	// ContentRead is true when the answer carried the conversation's messageRecords (and its
	// attributes). Searches do not ask for messages; verification reads do.
	ContentRead bool
	// Masked: the content was read, and every consumer-authored message and every attribute
	// value shows LivePerson's deletion mask.
	Masked bool
}

// Deletion is a LivePerson Personal Data Deletion request.
type Deletion struct {
	ID     int64
	Status string // NOT_STARTED, IN_PROGRESS, DONE, CANCELED
	// Kind and IDs decoded from LivePerson's delete_json echo (empty when not returned).
	Kind TargetKind
	IDs  []string
	// Created is LivePerson's request_time.
	Created time.Time
	// RequestedBy is LivePerson's requested_by: who created the request (the credentials'
	// user or application name). Reconciliation uses it when delete_json is absent.
	RequestedBy string
}

// LivePerson deletion request statuses.
const (
	LPNotStarted = "NOT_STARTED"
	LPInProgress = "IN_PROGRESS"
	LPDone       = "DONE"
	LPCanceled   = "CANCELED"
)

// Errors a LivePerson implementation returns (wrapped), so the pipeline can decide without
// looking at HTTP.
var (
	// ErrQuotaExhausted: the account's monthly deletion quota is spent (429 on create).
	ErrQuotaExhausted = errors.New("liveperson: monthly deletion quota exhausted")
	// ErrOutcomeUnknown: a create may or may not have reached LivePerson (timeout, reset, 5xx).
	ErrOutcomeUnknown = errors.New("liveperson: outcome of the request is unknown")
	// ErrRejected: LivePerson refused the request as invalid (a 4xx other than 429); retrying
	// the same request will not help.
	ErrRejected = errors.New("liveperson: request rejected")
	// ErrUnavailable: LivePerson failed or is unreachable; retry later.
	ErrUnavailable = errors.New("liveperson: unavailable")
	// ErrUnauthorized: LivePerson refused the account's credentials (a 401, or a 403 for
	// credentials without the rights). It comes wrapped with ErrUnavailable or ErrRejected,
	// which decide what the pipeline does; it only tells an operator what to fix.
	ErrUnauthorized = errors.New("liveperson: credentials refused")
	// ErrResidency: the call would have sent data outside the account's region; refused.
	ErrResidency = errors.New("liveperson: host outside the account's region")
	// ErrPartial: LivePerson reported a partial result; the search must be retried.
	ErrPartial = errors.New("liveperson: partial result")
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

// ServerWait is the wait LivePerson asked for with err, 0 when it asked for none.
func ServerWait(err error) time.Duration {
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		return ra.RetryAfter()
	}
	return 0
}
