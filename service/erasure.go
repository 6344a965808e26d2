// Package service is erasured's domain: the erasure state machine, Submit idempotency and
// subject deduplication, queries, and the watch of changes. It knows nothing of gRPC; the server
// package adapts it. It keeps everything in a Store and no work lives only in memory.
//
// The packages below it, and which way they point:
//
//   - service/model holds the domain's data types (an erasure's public view and stored record,
//     its targets) and the LivePerson port. This package re-exports them under their old names
//     (the aliases below), so that callers name them as before.
//   - service/schema holds the store layout: bucket names, key encodings, schema versions.
//   - service/pipeline carries erasures to a final state: its scheduler loop and every step
//     (resolver, batcher with the quota ledger, submitter, poller, reconciler, verifier). It
//     imports model, schema and store, never this package: what it needs of the erasure domain
//     (sealing and unsealing with an erasure's data key, the one transition function, receipts,
//     incidents) it reaches through pipeline.Domain, which the Service implements (domain.go).
//
// This package imports pipeline to build a pipeline (NewPipeline), to wake it, and for the
// changes its own operations share with the steps (a confirmation schedules the plan's records,
// a remote cancel and SettleBatch change batches): pipeline.Changes. The Service does not hold
// its pipeline: an API operation records what it decided in the store and signals new work on
// the service's wake channel, which a running pipeline listens to.
package service

import (
	"time"

	"github.com/erasured/erasured/service/model"
)

// The domain's data types live in package model; these are their names here.
type (
	State        = model.State
	SubjectKind  = model.SubjectKind
	Channel      = model.Channel
	Confirmation = model.Confirmation
	BlockedOn    = model.BlockedOn
	TargetKind   = model.TargetKind
	TargetStatus = model.TargetStatus
	Subject      = model.Subject
	TargetCount  = model.TargetCount
	LPRequest    = model.LPRequest
	Receipt      = model.Receipt
	HeldBatch    = model.HeldBatch
	Erasure      = model.Erasure
)

const (
	StateUnspecified              = model.StateUnspecified
	StateReceived                 = model.StateReceived
	StateResolving                = model.StateResolving
	StateAwaitingConfirmation     = model.StateAwaitingConfirmation
	StateScheduled                = model.StateScheduled
	StateSubmitted                = model.StateSubmitted
	StateDeleting                 = model.StateDeleting
	StateVerifying                = model.StateVerifying
	StateCompleted                = model.StateCompleted
	StateFailed                   = model.StateFailed
	StateCancelled                = model.StateCancelled
	StateRejected                 = model.StateRejected
	SubjectUnspecified            = model.SubjectUnspecified
	SubjectCustomerID             = model.SubjectCustomerID
	SubjectEmail                  = model.SubjectEmail
	SubjectPhone                  = model.SubjectPhone
	SubjectConsumerID             = model.SubjectConsumerID
	SubjectTargets                = model.SubjectTargets
	ChannelUnspecified            = model.ChannelUnspecified
	ChannelChat                   = model.ChannelChat
	ChannelMessaging              = model.ChannelMessaging
	ConfirmationUnspecified       = model.ConfirmationUnspecified
	ConfirmationAutomatic         = model.ConfirmationAutomatic
	ConfirmationManual            = model.ConfirmationManual
	BlockedNone                   = model.BlockedNone
	BlockedQuota                  = model.BlockedQuota
	BlockedOpenConversations      = model.BlockedOpenConversations
	BlockedSearchLag              = model.BlockedSearchLag
	BlockedLivePersonUnavailable  = model.BlockedLivePersonUnavailable
	BlockedConfirmation           = model.BlockedConfirmation
	BlockedIdentifierUnsearchable = model.BlockedIdentifierUnsearchable
	BlockedDeletionOutcomeUnknown = model.BlockedDeletionOutcomeUnknown
	KindUnspecified               = model.KindUnspecified
	KindEngagement                = model.KindEngagement
	KindConversation              = model.KindConversation
	KindConsumer                  = model.KindConsumer
	TargetUnspecified             = model.TargetUnspecified
	TargetFound                   = model.TargetFound
	TargetDeferredOpen            = model.TargetDeferredOpen
	TargetQueued                  = model.TargetQueued
	TargetSubmitted               = model.TargetSubmitted
	TargetDone                    = model.TargetDone
	TargetVerified                = model.TargetVerified
	TargetNotFound                = model.TargetNotFound
	NamePrefix                    = model.NamePrefix
)

// Event is one change of one erasure, as Watch delivers it.
type Event struct {
	Revision      uint64  `json:"-"`
	Erasure       Erasure `json:"erasure"`
	PreviousState State   `json:"previous_state"`
	// Skipped are the states the erasure passed over when it moved from PreviousState to its
	// state in one change (a declared skip, see Skipped), in table order; empty for a move of
	// one step or none.
	Skipped []State   `json:"skipped_states,omitempty"`
	Time    time.Time `json:"time"`
}
