package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/store"
)

// Domain is what the pipeline needs of the erasure domain, and the Service provides: the
// operations that need the erasure's data key (every identifier and record id is sealed with
// it), the one function through which an erasure changes, receipts and incidents. Everything
// else (the record's fields, the schedule, the queue, the ledger, batches) the pipeline reads
// and writes itself, through package model and the schema layer. Methods that take a tx work
// inside the caller's transaction and may run more than once with it.
type Domain interface {
	// Targets unseals r's targets.
	Targets(tx store.Tx, r *model.Record) ([]model.Target, error)
	// Search unseals what a search for r's subject needs: its identifiers (the subject first,
	// then its aliases) and the messaging consumers earlier searches followed as the person's.
	Search(tx store.Tx, r *model.Record) (ids []model.Subject, followed []string, err error)
	// AddConsumers seals into r the union of the consumers it followed and found.
	AddConsumers(tx store.Tx, r *model.Record, found []string) error
	// TargetSealer returns a function that seals targets for r with its data key, usable
	// outside tx: the batcher seals outside the committer.
	TargetSealer(tx store.Tx, r *model.Record) (func([]model.Target) ([]byte, error), error)
	// SealBatchIDs seals the record ids of batch id under a new key, and returns that key
	// wrapped; the batcher stores both. BatchIDs opens them again (sorted), inside tx.
	SealBatchIDs(id uint64, ids []string) (sealed, wrappedKey []byte, err error)
	BatchIDs(tx store.Tx, b *Batch) ([]string, error)
	// Committable reports whether a key SealBatchIDs wrapped may still be stored in tx: the key
	// that wrapped it is the newest and is not about to be destroyed. False makes the batcher
	// plan again, with a key wrapped anew.
	Committable(tx store.Tx, wrappedKey []byte) bool
	// Transition is the one way an erasure changes: it checks the move from `from` to r.State
	// against the transition table, seals and stores targets (nil: as stored), stores r and
	// appends the change's one event, and updates r (revision, times, what it is blocked on).
	// A refused move writes nothing and returns an error that matches ErrTransitionRefused.
	Transition(tx store.Tx, r *model.Record, from model.State, targets []model.Target, now time.Time) error
	// Complete attaches a signed receipt to r, chained to the receipts before it. It is half of
	// a change: the caller sets r.State to COMPLETED first (Complete refuses, writing nothing,
	// for any other state), then calls Transition in this transaction.
	Complete(tx store.Tx, r *model.Record, ts []model.Target, now time.Time) error
	// Fail sets r.State to FAILED and reports the incident once tx commits; reason is fixed
	// text. It is half of a change: the caller then calls Transition in this transaction,
	// which checks the move.
	Fail(tx store.Tx, r *model.Record, reason string) error
	// Describe words a step's failure for an erasure's last_error: a fixed phrase by kind,
	// never the text of a LivePerson answer.
	Describe(err error) string
	// ReportRefusal reports LivePerson's refusal at a step (of the account's credentials or of
	// the request) as an incident; other failures are not incidents. attrs name the erasure or
	// batch, never personal data.
	ReportRefusal(account, step string, err error, attrs ...any)
	// ReportRefusedMove reports a step whose change of an erasure the transition table refused.
	ReportRefusedMove(account, step string, attrs ...any)
	// Maintenance returns the domain's periodic work (the key keeper) when it is due at now,
	// nil otherwise. The loop runs it beside the steps, under Run's context.
	Maintenance(now time.Time) func(ctx context.Context)
}

// ErrTransitionRefused is matched (errors.Is) by Domain.Transition's error for a move the
// transition table refuses.
var ErrTransitionRefused = errors.New("the transition table refuses the erasure change")

// transitionRefused reports whether err is (or wraps) a refusal by the transition table.
func transitionRefused(err error) bool { return errors.Is(err, ErrTransitionRefused) }

// Timing is what the pipeline and the service's own operations share of the service's timings.
type Timing struct {
	// PollInterval: the usual interval between polls of an open LivePerson request, and between
	// looks at held open conversations.
	PollInterval time.Duration
	// CancelWindow is how long LivePerson keeps a request cancellable; DeletionWindow how long
	// it may then take to delete. Margin is kept between the latest safe submit time and the
	// deadline.
	CancelWindow, DeletionWindow, Margin time.Duration
}

// Changes are the changes of erasures and batches that the pipeline's steps and the service's
// own operations both make: a confirmation schedules the plan's records (ScheduleTargets), a
// remote cancel carries a batch's new status to its erasures (ApplyBatchStatus), and an
// operator settling a held batch makes it follow a request (Follow) or be sent again (Unhold).
// They need no running pipeline: each is a write in the caller's transaction, which a pipeline
// finds whenever it runs.
type Changes struct {
	d   Domain
	t   Timing
	log *slog.Logger
}

// NewChanges returns the changes made through d with the timings t; log receives the lines
// they write once their transaction commits.
func NewChanges(d Domain, t Timing, log *slog.Logger) *Changes {
	if log == nil {
		log = slog.Default()
	}
	return &Changes{d: d, t: t, log: log}
}
