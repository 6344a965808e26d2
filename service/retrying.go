package service

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/erasured/erasured/store"
)

// A LivePerson call may retry for minutes inside one method (5, 10, 15 s, then longer). Without
// word from it, an erasure would show nothing wrong until the call gives up, and its next
// attempt time would lie in the past all that while. Retrying is that word.

// retryKey carries, in a pipeline step's context, what to do when a LivePerson call retries.
type retryKey struct{}

// Retrying tells the pipeline step that ctx belongs to that a LivePerson call failed with err
// and is tried again after wait, within the same step. A LivePerson implementation that retries
// inside a method calls it before each wait: the erasure then shows what it is blocked on and
// when the next attempt is from the first failed attempt on, and the failure is logged. Outside
// a step it does nothing. It blocks for one store commit at most.
func Retrying(ctx context.Context, err error, wait time.Duration) {
	if f, ok := ctx.Value(retryKey{}).(func(error, time.Duration)); ok {
		f(err, wait)
	}
}

// withRetryNotice returns ctx carrying the notice of retries for the step on snap. Each notice
// shows the failure on the erasure if it is still at the step's revision, and moves the step's
// revision along, so that the step's own result is not taken for stale.
func (p *Pipeline) withRetryNotice(ctx context.Context, snap *snapshot) context.Context {
	var mu sync.Mutex
	step := stepName(snap.r.State)
	return context.WithValue(ctx, retryKey{}, func(cause error, wait time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		now := p.s.now().UTC()
		next := now.Add(wait)
		var rev uint64
		err := p.s.db.Update(ctx, func(tx *store.Tx) error {
			r, err := getRecord(tx, snap.r.ID)
			if err != nil {
				return err
			}
			if r == nil || r.Revision != snap.revision() {
				return errStale
			}
			r.LastError = describe(cause)
			r.BlockedOn = heldFirst(r, BlockedLivePersonUnavailable)
			if err := setNext(tx, r, next); err != nil {
				return err
			}
			id, account, reason := r.ID, r.AccountID, r.LastError
			if err := tx.OnCommit(func() {
				p.s.log.Warn("LivePerson call failed; retrying within the step", "erasure", id, "account", account,
					"step", step, "reason", reason, "next_attempt_time", next)
			}); err != nil {
				return err
			}
			if err := p.s.putChange(tx, r, r.State, now); err != nil {
				return err
			}
			rev = r.Revision
			return nil
		})
		if err == nil {
			snap.setRevision(rev)
		} else if !errors.Is(err, errStale) && ctx.Err() == nil {
			p.s.log.Warn("pipeline: showing a LivePerson retry", "erasure", snap.r.ID, "err", err)
		}
	})
}
