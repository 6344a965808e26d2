package pipeline

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/store"
)

// A LivePerson call may retry for minutes inside one method (5, 10, 15 s, then longer). Without
// word from it, an erasure would show nothing wrong until the call gives up, and its next
// attempt time would lie in the past all that while. RetryingCall is that word.

// retryKey carries, in a pipeline step's context, what to do when a LivePerson call retries.
type retryKey struct{}

// CallRetry describes a LivePerson call that failed and is tried again within the same step.
type CallRetry struct {
	Service string        // the LivePerson service that failed ("" when not known), for the log
	Attempt int           // the attempt that failed, the first is 1 (0 when not known)
	Wait    time.Duration // until the next attempt
	Err     error         // the failure, wrapping the port's errors (package model) as a method's would
}

// RetryingCall tells the pipeline step that ctx belongs to that a LivePerson call failed and is
// tried again after r.Wait, within the same step. A LivePerson implementation that retries
// inside a method calls it before each wait: the erasure then shows that it is blocked on
// LivePerson, and when the next attempt is, from the first failed attempt on, and the step's
// first such retry is logged. Later retries of the step move the next attempt time without an
// event (Watch history only grows when something a watcher sees changes), and are logged at
// debug level. The step's own backoff is untouched: its failure count moves only when the step
// fails. Outside a step, and once the step has ended, it does nothing. It blocks for one store
// commit at most.
func RetryingCall(ctx context.Context, r CallRetry) {
	if f, ok := ctx.Value(retryKey{}).(func(CallRetry)); ok {
		f(r)
	}
}

// withRetryNotice returns ctx carrying the notice of retries for the step on snap, and stop,
// which the step calls when it ends: a call the step started may go on without it (a shared
// token fetch or host lookup), and its late retries must not move the erasure's schedule. Each
// notice shows the failure on the erasure if it is still at the step's revision, and moves the
// step's revision along, so that the step's own result is not taken for stale.
func (p *Pipeline) withRetryNotice(ctx context.Context, snap *snapshot) (_ context.Context, stop func()) {
	var mu sync.Mutex
	stopped, logged := false, false
	step := stepName(snap.r.State)
	notice := func(c CallRetry) {
		mu.Lock()
		defer mu.Unlock()
		if stopped || ctx.Err() != nil {
			return
		}
		now := p.now().UTC()
		next := now.Add(c.Wait)
		first := !logged
		var rev uint64
		err := p.db.Update(ctx, func(tx store.Tx) error {
			r, err := model.GetRecord(tx, snap.r.ID)
			if err != nil {
				return err
			}
			if r == nil || r.Revision != snap.revision() || r.State.Final() {
				return errStale
			}
			r.LastError = p.d.Describe(c.Err)
			r.BlockedOn = model.HeldFirst(&r.Erasure, model.BlockedLivePersonUnavailable)
			if err := SetNext(tx, &r.Erasure, next); err != nil {
				return err
			}
			if err := p.logCallRetry(tx, r, step, c, next, first); err != nil {
				return err
			}
			if err := p.d.Transition(tx, r, r.State, nil, now); err != nil {
				return err
			}
			rev = r.Revision
			return nil
		})
		switch {
		case err == nil:
			snap.setRevision(rev)
			logged = true
		case !errors.Is(err, errStale) && ctx.Err() == nil:
			p.log.Warn("pipeline: showing a LivePerson retry", "erasure", snap.r.ID, "err", err)
		}
	}
	return context.WithValue(ctx, retryKey{}, notice), func() {
		mu.Lock()
		stopped = true
		mu.Unlock()
	}
}

// logCallRetry logs, once tx commits, that a LivePerson call of r's step failed and is tried
// again at next: at warning level for the step's first retry, at debug level after it. The line
// names the service, the attempt and the wait, never the call's data.
func (p *Pipeline) logCallRetry(tx store.Tx, r *model.Record, step string, c CallRetry, next time.Time, first bool) error {
	line := []any{"erasure", r.ID, "account", r.AccountID, "step", step, "reason", r.LastError,
		"next_attempt_time", next}
	if c.Service != "" {
		line = append(line, "service", c.Service)
	}
	if c.Attempt > 0 {
		line = append(line, "attempt", c.Attempt)
	}
	line = append(line, "retry_in", c.Wait)
	return tx.OnCommit(func() {
		if first {
			p.log.Warn("LivePerson call failed; retrying within the step", line...)
		} else {
			p.log.Debug("LivePerson call failed again; retrying within the step", line...)
		}
	})
}
