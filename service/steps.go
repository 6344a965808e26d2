package service

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/erasured/erasured/internal/backoff"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// snapshot is an erasure read for a step: the record, its targets and its subject.
type snapshot struct {
	r       record
	targets []Target

	mu sync.Mutex // guards r.Revision, which a retry notice moves on (retrying.go)
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
	err := p.s.db.View(func(tx store.Tx) error {
		r, err := getRecord(tx, id)
		if err != nil || r == nil {
			return err
		}
		ts, err := p.s.targetsOf(tx, r)
		if err != nil {
			return err
		}
		snap = &snapshot{r: *r, targets: ts}
		return nil
	})
	return snap, err
}

// errStale means the erasure changed while a step worked outside a transaction (a Cancel, a
// batch update): the step's result is dropped and the step runs again on the new state.
var errStale = errors.New("erasure changed during the step")

// commit applies change to the erasure if it is still at the revision the step started from,
// and stores it through transition. change gets the record and its targets; it returns the
// targets to store.
func (p *Pipeline) commit(ctx context.Context, snap *snapshot, change func(tx store.Tx, r *record, ts []Target) ([]Target, error)) error {
	now := p.s.now().UTC()
	err := p.s.db.Update(ctx, func(tx store.Tx) error {
		r, err := getRecord(tx, snap.r.ID)
		if err != nil {
			return err
		}
		if r == nil || r.Revision != snap.revision() {
			return errStale
		}
		ts, err := p.s.targetsOf(tx, r)
		if err != nil {
			return err
		}
		prev := r.State
		ts, err = change(tx, r, ts)
		if err != nil {
			return err
		}
		return p.s.transition(tx, r, erasureChange{from: prev, targets: ts, now: now})
	})
	if errors.Is(err, errStale) {
		return nil // the schedule still holds the task; it runs again on the new state
	}
	return err
}

// stepErasure does the work an erasure's state calls for.
func (p *Pipeline) stepErasure(ctx context.Context, id string) error {
	snap, err := p.load(id)
	if err != nil {
		return err
	}
	if snap == nil {
		return p.dropTask(ctx, taskErasure+id)
	}
	var stepErr error
	ctx, stopNotices := p.withRetryNotice(ctx, snap)
	defer stopNotices()
	switch snap.r.State {
	case StateReceived:
		return p.commit(ctx, snap, func(tx store.Tx, r *record, ts []Target) ([]Target, error) {
			r.State = StateResolving
			return ts, setNext(tx, r, p.s.now())
		})
	case StateResolving:
		stepErr = p.resolveStep(ctx, snap)
	case StateScheduled:
		stepErr = p.recheckOpen(ctx, snap)
	case StateVerifying:
		stepErr = p.verifyStep(ctx, snap)
	default:
		// Nothing to do on a timer in this state (batches drive SUBMITTED and DELETING).
		return p.commit(ctx, snap, func(tx store.Tx, r *record, ts []Target) ([]Target, error) {
			return ts, setNext(tx, r, time.Time{})
		})
	}
	if stepErr != nil && ctx.Err() == nil {
		return p.backoff(ctx, snap, stepErr)
	}
	return stepErr
}

// dropTask removes a schedule entry whose erasure no longer exists.
func (p *Pipeline) dropTask(ctx context.Context, task string) error {
	return p.s.db.Update(ctx, func(tx store.Tx) error {
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
	p.s.reportRefusal(snap.r.AccountID, step, stepErr, "erasure", snap.r.ID)
	return p.commit(ctx, snap, func(tx store.Tx, r *record, ts []Target) ([]Target, error) {
		r.Failures++
		r.LastError = describe(stepErr)
		r.BlockedOn = BlockedLivePersonUnavailable
		if errors.Is(stepErr, ErrQuotaExhausted) {
			r.BlockedOn = BlockedQuota
		}
		// LivePerson refusing the same request again and again will not change: give up with
		// the reason rather than retry forever.
		// (A residency refusal is retried: an operator fixes discovery, and failing would be worse.)
		if errors.Is(stepErr, ErrRejected) && r.Failures >= maxRejections {
			return ts, p.s.failErasure(tx, r, "steps_rejected")
		}
		next := p.s.now().Add(retryDelay(r.Failures, p.s.cfg.PollInterval, stepErr))
		id, account, failures, reason := r.ID, r.AccountID, r.Failures, r.LastError
		if err := tx.OnCommit(func() {
			p.s.log.Warn("pipeline step failed; retrying", "erasure", id, "account", account, "step", step,
				"reason", reason, "failures", failures, "next_attempt_time", next.UTC())
		}); err != nil {
			return nil, err
		}
		return ts, setNext(tx, r, next)
	})
}

// maxRejections is how many times in a row LivePerson may refuse a step before the erasure fails.
const maxRejections = 5

// retryDelay follows LivePerson's documented policy for 5xx: 5, 10, 15 s, then exponential,
// capped at the poll interval (at least 15 s), and never shorter than the wait LivePerson asked
// for with cause (Retry-After, which a call gives up on when it outlasts the call). It has no
// jitter: a step's next attempt is exact, and the client already spreads the attempts of one call.
func retryDelay(failures int, limit time.Duration, cause error) time.Duration {
	return max(stepBackoff(limit).Wait(failures, serverWait(cause), nil), time.Second)
}

// stepBackoff is the backoff between a step's attempts, the client's own documented steps.
func stepBackoff(limit time.Duration) backoff.Policy {
	return backoff.Policy{Steps: []time.Duration{5 * time.Second, 10 * time.Second, 15 * time.Second},
		Max: max(limit, 15*time.Second)}
}

// describe turns an error into a message for last_error: fixed phrases by kind, never the text
// of a LivePerson response (which could echo personal data).
func describe(err error) string {
	switch {
	case errors.Is(err, ErrQuotaExhausted):
		return "LivePerson deletion quota for this month is spent"
	case errors.Is(err, ErrResidency):
		return "refused: LivePerson host outside the account's region"
	case errors.Is(err, ErrUnauthorized):
		return "LivePerson refused the account's credentials"
	case errors.Is(err, ErrRejected):
		return "LivePerson rejected the request"
	case errors.Is(err, ErrPartial):
		return "LivePerson returned partial results"
	case errors.Is(err, ErrOutcomeUnknown), errors.Is(err, ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return "LivePerson unavailable"
	case errors.Is(err, errShredded):
		return "the erasure's data key is destroyed"
	case errors.Is(err, errContentUnread):
		return "LivePerson returned a record without its content"
	case transitionRefused(err):
		return "the erasure cannot make the change LivePerson's answer calls for"
	}
	return "internal error"
}

// stepName names the step an erasure in state st works on, for incidents.
func stepName(st State) string {
	switch st {
	case StateResolving:
		return "resolve"
	case StateScheduled:
		return "recheck"
	case StateVerifying:
		return "verify"
	}
	return strings.ToLower(st.String())
}

// incidentMessages are the log messages of incidents, by kind.
var incidentMessages = map[string]string{
	IncidentAuthFailed:        "incident: LivePerson refused the account's credentials",
	IncidentStepRejected:      "incident: LivePerson refused a step",
	IncidentFailed:            "incident: erasure failed",
	IncidentTransitionRefused: "incident: a pipeline step asked for an erasure change the transition table refuses",
}

// report logs an incident an operator must see, then passes it to Config.OnIncident. The line
// names the kind, the account, the step, a fixed reason and attrs (an erasure or batch id),
// never personal data.
func (s *Service) report(inc Incident, attrs ...any) {
	level := slog.LevelError
	if inc.Kind == IncidentStepRejected {
		level = slog.LevelWarn
	}
	line := []any{"incident", inc.Kind, "account", inc.Account}
	if inc.Step != "" {
		line = append(line, "step", inc.Step)
	}
	line = append(append(line, "reason", inc.Reason), attrs...)
	s.log.Log(context.Background(), level, incidentMessages[inc.Kind], line...)
	if f := s.cfg.OnIncident; f != nil {
		f(inc)
	}
}

// reportRefusal reports LivePerson's refusal at a step of the pipeline: of the account's
// credentials, or of the request itself. Other failures (unavailable, quota spent, residency)
// are retried or shown on the erasure, and are not incidents.
func (s *Service) reportRefusal(account, step string, err error, attrs ...any) {
	switch {
	case errors.Is(err, ErrUnauthorized):
		s.report(Incident{Kind: IncidentAuthFailed, Account: account, Step: step, Reason: "credentials_refused"}, attrs...)
	case errors.Is(err, ErrRejected):
		s.report(Incident{Kind: IncidentStepRejected, Account: account, Step: step, Reason: "request_rejected"}, attrs...)
	}
}

// reportAuth reports a refusal of the account's credentials only: for calls on behalf of a
// caller (a preview, a cancel, a settle), whose other refusals are the caller's to see.
func (s *Service) reportAuth(account, step string, err error) {
	if errors.Is(err, ErrUnauthorized) {
		s.reportRefusal(account, step, err)
	}
}

// failErasure moves r to FAILED, in tx, and reports the move once tx commits (not at all if
// it does not, and once however often the store runs the transaction function). reason is a
// fixed string.
func (s *Service) failErasure(tx store.Tx, r *record, reason string) error {
	from := apiName(r.State)
	r.State = StateFailed
	inc, id := Incident{Kind: IncidentFailed, Account: r.AccountID, Reason: reason}, r.ID
	return tx.OnCommit(func() { s.report(inc, "erasure", id, "from", from, "to", apiName(StateFailed)) })
}
