package service

import (
	"time"

	"github.com/erasured/erasured/service/model"
)

// The LivePerson port, what the pipeline needs from LivePerson, lives in package model; these are
// its names here. The liveperson package implements the calls; cmd adapts it to the port.
type (
	LivePerson         = model.LivePerson
	SDESearch          = model.SDESearch
	ChatRecord         = model.ChatRecord
	ConversationRecord = model.ConversationRecord
	Deletion           = model.Deletion
	RetryAfterError    = model.RetryAfterError
)

const (
	LPNotStarted = model.LPNotStarted
	LPInProgress = model.LPInProgress
	LPDone       = model.LPDone
	LPCanceled   = model.LPCanceled
)

var (
	ErrQuotaExhausted = model.ErrQuotaExhausted
	ErrOutcomeUnknown = model.ErrOutcomeUnknown
	ErrRejected       = model.ErrRejected
	ErrUnavailable    = model.ErrUnavailable
	ErrUnauthorized   = model.ErrUnauthorized
	ErrResidency      = model.ErrResidency
	ErrPartial        = model.ErrPartial
)

// WithRetryAfter returns err carrying LivePerson's wait d; with no wait (d <= 0) or no error it
// returns err as it is (see model.WithRetryAfter).
func WithRetryAfter(err error, d time.Duration) error { return model.WithRetryAfter(err, d) }
