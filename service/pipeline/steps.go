package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/erasured/erasured/internal/backoff"
	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// snapshot is an erasure read for a step: the record, its targets and its subject.
type snapshot struct {
	r       model.Record
	targets []model.Target

	mu sync.Mutex // guards r.Revision, which a retry notice moves on (notices.go)
}

func (s *snapshot) revision() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r.Revision
}

func (s *snapshot) setRevision(rev uint64) {
	s.mu.Lock()
	s.r.Revision = rev
	s.mu.Unlock()
}

func (p *Pipeline) load(id string) (*snapshot, error) {
	var snap *snapshot
	err := p.db.View(func(tx store.Tx) error {
		r, err := model.GetRecord(tx, id)
		if err != nil || r == nil {
			return err
		}
		ts, err := p.d.Targets(tx, r)
		if err != nil {
			return err
		}
		snap = &snapshot{r: *r, targets: ts}
		return nil
	})
	return snap, err
}

// subject unseals what a search for erasure id's subject needs (Domain.Search). It fails if
// the erasure is gone.
func (p *Pipeline) subject(id string) (ids []model.Subject, followed []string, err error) {
	err = p.db.View(func(tx store.Tx) error {
		r, err := model.GetRecord(tx, id)
		if err != nil {
			return err
		}
		if r == nil {
			return fmt.Errorf("erasure %s not found", id)
		}
		ids, followed, err = p.d.Search(tx, r)
		return err
	})
	return ids, followed, err
}

// errStale means the erasure changed while a step worked outside a transaction (a Cancel, a
// batch update): the step's result is dropped and the step runs again on the new state.
var errStale = errors.New("erasure changed during the step")

// commit applies change to the erasure if it is still at the revision the step started from,
// and stores it through transition. change gets the record and its targets; it returns the
// targets to store.
func (p *Pipeline) commit(ctx context.Context, snap *snapshot, change func(tx store.Tx, r *model.Record, ts []model.Target) ([]model.Target, error)) error {
	now := p.now().UTC()
	err := p.db.Update(ctx, func(tx store.Tx) error {
		r, err := model.GetRecord(tx, snap.r.ID)
		if err != nil {
			return err
		}
		if r == nil || r.Revision != snap.revision() {
			return errStale
		}
		ts, err := p.d.Targets(tx, r)
		if err != nil {
			return err
		}
		prev := r.State
		ts, err = change(tx, r, ts)
		if err != nil {
			return err
		}
		return p.d.Transition(tx, r, prev, ts, now)
	})
	if errors.Is(err, errStale) {
		return nil // the schedule still holds the task; it runs again on the new state
	}
	return err
}

// CommitForTest reads erasure id and commits change to it through commit, the path by which
// every erasure step commits. It exists for tests outside this package, which drive down that
// path a change no step makes (an illegal jump) over the real Domain; nothing else calls it.
func (p *Pipeline) CommitForTest(ctx context.Context, id string, change func(r *model.Record)) error {
	snap, err := p.load(id)
	if err != nil {
		return err
	}
	if snap == nil {
		return fmt.Errorf("erasure %s not found", id)
	}
	return p.commit(ctx, snap, func(_ store.Tx, r *model.Record, ts []model.Target) ([]model.Target, error) {
		change(r)
		return ts, nil
	})
}

// stepErasure does the work an erasure's state calls for.
func (p *Pipeline) stepErasure(ctx context.Context, id string) error {
	snap, err := p.load(id)
	if err != nil {
		return err
	}
	if snap == nil {
		return p.dropTask(ctx, TaskErasure+id)
	}
	var stepErr error
	ctx, stopNotices := p.withRetryNotice(ctx, snap)
	defer stopNotices()
	switch snap.r.State {
	case model.StateReceived:
		return p.commit(ctx, snap, func(tx store.Tx, r *model.Record, ts []model.Target) ([]model.Target, error) {
			r.State = model.StateResolving
			return ts, SetNext(tx, &r.Erasure, p.now())
		})
	case model.StateResolving:
		if p.holdSearch(ctx, snap) {
			return nil // LivePerson asked us to wait: the step runs once it may answer again
		}
		stepErr = p.resolveStep(ctx, snap)
	case model.StateScheduled:
		stepErr = p.recheckOpen(ctx, snap)
	case model.StateVerifying:
		stepErr = p.verifyStep(ctx, snap)
	default:
		// Nothing to do on a timer in this state (batches drive SUBMITTED and DELETING).
		return p.commit(ctx, snap, func(tx store.Tx, r *model.Record, ts []model.Target) ([]model.Target, error) {
			return ts, SetNext(tx, &r.Erasure, time.Time{})
		})
	}
	if stepErr != nil && ctx.Err() == nil {
		return p.backoff(ctx, snap, stepErr)
	}
	return stepErr
}

// dropTask removes a schedule entry whose erasure no longer exists.
func (p *Pipeline) dropTask(ctx context.Context, task string) error {
	return p.db.Update(ctx, func(tx store.Tx) error {
		var keys [][]byte
		err := tx.Scan(schema.Schedule, nil, func(k, _ []byte) (bool, error) {
			if string(k[8:]) == task {
				keys = append(keys, append([]byte(nil), k...))
			}
			return true, nil
		})
		for _, k := range keys {
			if err := tx.Delete(schema.Schedule, k); err != nil {
				return err
			}
		}
		return err
	})
}

// backoff records a failed step: the error (without personal data), what the erasure is blocked
// on, and when to try again (5, 10, 15 s, then doubling up to the poll interval).
//
// Each failure that backs off is logged once its retry is stored, with the step, the fixed reason
// and the next attempt time.
func (p *Pipeline) backoff(ctx context.Context, snap *snapshot, stepErr error) error {
	step := stepName(snap.r.State)
	p.d.ReportRefusal(snap.r.AccountID, step, stepErr, "erasure", snap.r.ID)
	return p.commit(ctx, snap, func(tx store.Tx, r *model.Record, ts []model.Target) ([]model.Target, error) {
		r.Failures++
		r.LastError = p.d.Describe(stepErr)
		r.BlockedOn = model.BlockedLivePersonUnavailable
		if errors.Is(stepErr, model.ErrQuotaExhausted) {
			r.BlockedOn = model.BlockedQuota
		}
		// LivePerson refusing the same request again and again will not change: give up with
		// the reason rather than retry forever.
		// (A residency refusal is retried: an operator fixes discovery, and failing would be worse.)
		if errors.Is(stepErr, model.ErrRejected) && r.Failures >= MaxRejections {
			return ts, p.d.Fail(tx, r, "steps_rejected")
		}
		next := p.now().Add(retryDelay(r.Failures, p.t.PollInterval, stepErr))
		id, account, failures, reason := r.ID, r.AccountID, r.Failures, r.LastError
		if err := tx.OnCommit(func() {
			p.log.Warn("pipeline step failed; retrying", "erasure", id, "account", account, "step", step,
				"reason", reason, "failures", failures, "next_attempt_time", next.UTC())
		}); err != nil {
			return nil, err
		}
		return ts, SetNext(tx, &r.Erasure, next)
	})
}

// MaxRejections is how many times in a row LivePerson may refuse a step before the erasure fails.
const MaxRejections = 5

// retryDelay follows LivePerson's documented policy for 5xx: 5, 10, 15 s, then exponential,
// capped at the poll interval (at least 15 s), and never shorter than the wait LivePerson asked
// for with cause (Retry-After, which a call gives up on when it outlasts the call). It has no
// jitter: a step's next attempt is exact, and the client already spreads the attempts of one call.
func retryDelay(failures int, limit time.Duration, cause error) time.Duration {
	return max(stepBackoff(limit).Wait(failures, model.ServerWait(cause), nil), time.Second)
}

// stepBackoff is the backoff between a step's attempts, the client's own documented steps.
func stepBackoff(limit time.Duration) backoff.Policy {
	return backoff.Policy{Steps: []time.Duration{5 * time.Second, 10 * time.Second, 15 * time.Second},
		Max: max(limit, 15*time.Second)}
}

// stepName names the step an erasure in state st works on, for incidents.
func stepName(st model.State) string {
	switch st {
	case model.StateResolving:
		return "resolve"
	case model.StateScheduled:
		return "recheck"
	case model.StateVerifying:
		return "verify"
	}
	return strings.ToLower(st.String())
}
