package service

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/erasured/erasured/service/pipeline"
	"github.com/erasured/erasured/store"
)

// stepBatch sends, reconciles or polls one batch, as its state calls for. A step whose change
// of an erasure the transition table refuses backs off like any failed step and reports the
// refusal: the batch's schedule entry is still due after a failed transaction, and retrying at
// once would call LivePerson in a tight loop for as long as the refusal lasts.
func (p *Pipeline) stepBatch(ctx context.Context, idText string) error {
	id, err := strconv.ParseUint(idText, 10, 64)
	if err != nil {
		return err
	}
	err = p.stepBatchOnce(ctx, id, idText)
	if transitionRefused(err) {
		return p.refusedRetry(ctx, id, "batch", err)
	}
	return err
}

// stepBatchOnce is one step of batch id (stepBatch).
func (p *Pipeline) stepBatchOnce(ctx context.Context, id uint64, idText string) error {
	var err error
	var b *batch
	var ids []string
	err = p.s.db.View(func(tx store.Tx) error {
		if b, err = pipeline.GetBatch(tx, id); err != nil || b == nil {
			return err
		}
		if b.State == batchIntent {
			ids, err = p.s.batchIDs(tx, b)
		}
		return err
	})
	if err != nil {
		return err
	}
	if b == nil {
		return p.dropTask(ctx, taskBatch+idText)
	}
	switch b.State {
	case batchIntent:
		return p.sendBatch(ctx, b, ids)
	case LPNotStarted, LPInProgress:
		return p.pollBatch(ctx, b)
	}
	return p.updateBatch(ctx, b.ID, func(tx store.Tx, b *batch) error { return pipeline.PollNext(tx, b, time.Time{}) })
}

// sendBatch creates the LivePerson request of a batch exactly once. A batch that may already
// have been sent (Sends > 0: an earlier attempt's outcome is unknown, or the process died
// around the POST) is first looked for in LivePerson's list of requests, unless an operator has
// just settled it as not created. Only one batch of an account may be in flight (sent, outcome
// unknown, not held) at a time, so that a request found in the list can be told to be this
// batch's: a batch whose turn has not come waits, and its erasures say so.
func (p *Pipeline) sendBatch(ctx context.Context, b *batch, ids []string) error {
	if b.Sends > 0 && !b.Resend && !bugNoReconcile {
		found, err := p.reconcile(ctx, b, ids)
		if err != nil {
			p.s.reportRefusal(b.Account, "reconcile", err, "batch", b.ID)
		}
		switch {
		case errors.Is(err, errListUnread):
			return p.listFailed(ctx, b, err)
		case err != nil:
			return p.batchRetry(ctx, b.ID, "reconcile", err)
		case found.claim:
			return p.claimFound(ctx, b.ID, found.request)
		case found.hold:
			return p.hold(ctx, b, found.candidates, nil)
		}
	}
	// Record that a send is about to happen before it happens: a crash after this commit
	// makes the next attempt reconcile first.
	now := p.s.now()
	waiting := false
	err := p.s.db.Update(ctx, func(tx store.Tx) error {
		waiting = false
		cur, err := pipeline.GetBatch(tx, b.ID)
		if err != nil {
			return err
		}
		if cur == nil || cur.State != batchIntent || cur.Sends != b.Sends {
			return errStale
		}
		turn, err := pipeline.TakeSendTurn(tx, cur)
		if err != nil {
			return err
		}
		if err := p.showWaiting(tx, cur, !turn, now); err != nil {
			return err
		}
		if !turn {
			// Woken when the batch whose turn it is settles; the late poll is only a safety net.
			waiting = true
			if err := pipeline.PollNext(tx, cur, now.Add(p.s.cfg.PollInterval)); err != nil {
				return err
			}
			return pipeline.PutBatch(tx, cur)
		}
		if cur.Sends == 0 {
			cur.FirstSend = now
		}
		cur.Sends++
		cur.Resend, cur.ListFailures = false, 0
		return pipeline.PutBatch(tx, cur)
	})
	if errors.Is(err, errStale) {
		return nil // another step moved the batch on; the schedule brings it back if needed
	}
	if err != nil || waiting {
		return err
	}
	d, err := p.lp.CreateDeletion(ctx, b.Account, TargetKind(b.Kind), ids)
	if err != nil {
		p.s.reportRefusal(b.Account, "submit", err, "batch", b.ID)
	}
	switch {
	case err == nil:
		return p.batchCreated(ctx, b.ID, d, d.RequestedBy)
	case errors.Is(err, ErrQuotaExhausted):
		return p.dissolve(ctx, b.ID, batchDissolved, err)
	case errors.Is(err, ErrRejected) || errors.Is(err, ErrResidency):
		return p.dissolve(ctx, b.ID, batchRejected, err)
	}
	return p.batchRetry(ctx, b.ID, "submit", err)
}

// batchCreated records LivePerson's request id and moves the batch's targets to SUBMITTED.
// who is the requested_by of LivePerson's answer to our own create (empty otherwise): it is
// remembered as who we are at LivePerson.
func (p *Pipeline) batchCreated(ctx context.Context, id uint64, d Deletion, who string) error {
	now := p.s.now()
	err := p.updateBatch(ctx, id, func(tx store.Tx, b *batch) error {
		if b.State != batchIntent {
			return errStale
		}
		if who != "" {
			if err := pipeline.PutRequestedBy(tx, b.Account, who); err != nil {
				return err
			}
		}
		return p.s.follow(tx, b, d, "created", now)
	})
	if transitionRefused(err) {
		return p.followRefused(ctx, id, d, "submit", err)
	}
	return err
}

// follow makes batch b follow LivePerson request d: a create's answer, a request found in
// LivePerson's list, or one an operator named. The account's turn to send passes on.
//
// how says where d came from ("created", "reconciled", "settled"); the batch's new request is
// logged with it once tx commits.
func (s *Service) follow(tx store.Tx, b *batch, d Deletion, how string, now time.Time) error {
	if err := pipeline.ReleaseSendTurn(tx, b, now); err != nil {
		return err
	}
	batchID, account, kind := b.ID, b.Account, TargetKind(b.Kind)
	if err := tx.OnCommit(func() {
		s.log.Info("LivePerson deletion request "+how, "batch", batchID, "account", account,
			"lp_request", d.ID, "kind", kind.String(), "lp_status", d.Status)
	}); err != nil {
		return err
	}
	b.LPID, b.Sent, b.Failures, b.Candidates, b.Rivals = d.ID, now, 0, nil, nil
	b.Unlisted, b.ListFailures = false, 0
	status := d.Status
	if status == "" {
		status = LPNotStarted
	}
	b.State = status
	if err := s.applyBatchStatus(tx, b, now); err != nil {
		return err
	}
	return pipeline.PollNext(tx, b, s.nextPoll(b, now))
}

// pollBatch asks LivePerson for the request's status and applies a change.
func (p *Pipeline) pollBatch(ctx context.Context, b *batch) error {
	d, err := p.lp.GetDeletion(ctx, b.Account, b.LPID)
	if err != nil {
		p.s.reportRefusal(b.Account, "poll", err, "batch", b.ID)
		return p.batchRetry(ctx, b.ID, "poll", err)
	}
	now := p.s.now()
	err = p.updateBatch(ctx, b.ID, func(tx store.Tx, cur *batch) error {
		cur.Failures = 0
		// A status does not go back: NOT_STARTED after IN_PROGRESS is an older answer than
		// the one already applied (see the transition table), and changes nothing.
		regressed := d.Status == LPNotStarted && cur.State == LPInProgress
		if d.Status != "" && d.Status != cur.State && !regressed {
			cur.State = d.Status
			if err := p.s.applyBatchStatus(tx, cur, now); err != nil {
				return err
			}
		}
		next := time.Time{}
		if cur.State == LPNotStarted || cur.State == LPInProgress {
			next = p.s.nextPoll(cur, now)
		}
		return pipeline.PollNext(tx, cur, next)
	})
	if transitionRefused(err) {
		return p.refusedRetry(ctx, b.ID, "poll", err)
	}
	return err
}

// nextPoll adapts polling to LivePerson's timeline: a NOT_STARTED request is looked at again
// when its cancel window should end (or sooner, at the poll interval); an IN_PROGRESS one at
// the poll interval. Never more often than 1/50 of the poll interval.
func (s *Service) nextPoll(b *batch, now time.Time) time.Time {
	floor := max(s.cfg.PollInterval/50, 10*time.Millisecond)
	wait := s.cfg.PollInterval
	if b.State == LPNotStarted {
		wait = min(wait, b.Sent.Add(s.cfg.CancelWindow).Sub(now))
	}
	return now.Add(max(wait, floor))
}

// batchRetry keeps the batch as it is and tries again later (5, 10, 15 s … up to the poll
// interval). A batch whose send failed keeps Sends > 0, so it is reconciled before any resend.
// The retry is logged once stored, with the step that failed and the next attempt time.
func (p *Pipeline) batchRetry(ctx context.Context, id uint64, step string, cause error) error {
	now := p.s.now()
	return p.updateBatch(ctx, id, func(tx store.Tx, b *batch) error {
		b.Failures++
		next := now.Add(retryDelay(b.Failures, p.s.cfg.PollInterval, cause))
		if err := p.logRetry(tx, b, step, cause, next); err != nil {
			return err
		}
		return pipeline.PollNext(tx, b, next)
	})
}

// logRetry logs, once tx commits, that batch b's step failed and is tried again at next.
func (p *Pipeline) logRetry(tx store.Tx, b *batch, step string, cause error, next time.Time) error {
	id, account, failures, reason := b.ID, b.Account, b.Failures, describe(cause)
	if errors.Is(cause, errTaken) {
		reason = "the LivePerson request found belongs to another batch"
	}
	return tx.OnCommit(func() {
		p.s.log.Warn("pipeline step failed; retrying", "batch", id, "account", account, "step", step,
			"reason", reason, "failures", failures, "next_attempt_time", next.UTC())
	})
}

// listFailed handles a reconciliation that could not read LivePerson's list. Retrying for
// ever would keep the account's send turn and leave the batch's erasures looking merely
// delayed: a refusal (permanent, such as credentials without list rights) holds the batch at
// once, and so does the maxListFailures-th failure in a row. A held batch shows why, is logged
// and counted, and waits for an operator, who can read the list by other means. A failure
// while the pipeline stops is not LivePerson's answer and is not counted.
func (p *Pipeline) listFailed(ctx context.Context, b *batch, cause error) error {
	if ctx.Err() != nil {
		return cause
	}
	if errors.Is(cause, ErrRejected) || b.ListFailures+1 >= maxListFailures {
		return p.hold(ctx, b, nil, cause)
	}
	now := p.s.now()
	err := p.updateBatch(ctx, b.ID, func(tx store.Tx, cur *batch) error {
		if cur.State != batchIntent || cur.Sends != b.Sends {
			return errStale
		}
		cur.ListFailures++
		cur.Failures++
		next := now.Add(retryDelay(cur.Failures, p.s.cfg.PollInterval, cause))
		if err := p.logRetry(tx, cur, "reconcile", cause, next); err != nil {
			return err
		}
		return pipeline.PollNext(tx, cur, next)
	})
	return err
}

// dissolve ends a batch that LivePerson did not create: its targets go back to the queue. On a
// 429 the month's quota is marked spent; on a rejection each target counts it, and a target
// rejected twice fails its erasure.
func (p *Pipeline) dissolve(ctx context.Context, id uint64, state string, cause error) error {
	now := p.s.now()
	return p.updateBatch(ctx, id, func(tx store.Tx, b *batch) error {
		if b.State != batchIntent {
			return errStale
		}
		if err := pipeline.ReleaseSendTurn(tx, b, now); err != nil {
			return err
		}
		b.State = state
		if state == batchDissolved {
			month := pipeline.Month(now)
			q, err := pipeline.GetQuota(tx, b.Account, month)
			if err != nil {
				return err
			}
			q.Exhausted = true
			if err := pipeline.PutQuota(tx, b.Account, month, q); err != nil {
				return err
			}
		}
		err := p.s.forMembers(tx, b, func(r *record, ts []Target) error {
			prev := r.State
			failed := false
			for i := range ts {
				if ts[i].Batch != b.ID {
					continue
				}
				ts[i].Batch = 0
				if state == batchRejected {
					ts[i].Rejected++
					failed = failed || ts[i].Rejected >= 2
				}
			}
			r.LastError = describe(cause)
			switch {
			case failed:
				if err := p.s.failErasure(tx, r, "deletion_rejected"); err != nil {
					return err
				}
				r.LastError = "LivePerson rejected the deletion request twice"
			case state == batchDissolved:
				r.BlockedOn = heldFirst(r, BlockedQuota)
				r.NextAttemptTime = pipeline.NextMonth(now)
			}
			if !failed {
				if err := p.s.enqueueTargets(tx, r, ts, now); err != nil {
					return err
				}
			}
			return p.s.transition(tx, r, erasureChange{from: prev, targets: ts, now: now})
		})
		if err != nil {
			return err
		}
		return pipeline.PollNext(tx, b, time.Time{})
	})
}

// forMembers calls fn for each open erasure holding records of batch b, with its targets.
func (s *Service) forMembers(tx store.Tx, b *batch, fn func(r *record, ts []Target) error) error {
	for _, eid := range b.Erasures {
		r, err := getRecord(tx, eid)
		if err != nil {
			return err
		}
		if r == nil || r.State.Final() {
			continue
		}
		ts, err := s.targetsOf(tx, r)
		if err != nil {
			return err
		}
		if err := fn(r, ts); err != nil {
			return err
		}
	}
	return nil
}

// applyBatchStatus carries a batch's LivePerson status to its member erasures' targets, and
// moves each erasure to the state its targets now put it in.
func (s *Service) applyBatchStatus(tx store.Tx, b *batch, now time.Time) error {
	return s.forMembers(tx, b, func(r *record, ts []Target) error {
		prev := r.State
		clearHeld(r, ts, b.ID) // a held batch that now follows a request is no longer held
		n := int32(0)
		for i := range ts {
			t := &ts[i]
			if t.Batch != b.ID {
				continue
			}
			n++
			switch b.State {
			case LPNotStarted, LPInProgress:
				t.Status, t.LPRequest = TargetSubmitted, b.LPID
			case LPDone:
				t.Status = TargetDone
			case LPCanceled:
				if !r.CancelRequested {
					t.Status, t.Batch, t.LPRequest = TargetQueued, 0, 0
				}
			}
		}
		i := slices.IndexFunc(r.LPRequests, func(q LPRequest) bool { return q.ID == b.LPID })
		if i < 0 {
			r.LPRequests = append(r.LPRequests, LPRequest{ID: b.LPID, Kind: TargetKind(b.Kind), RecordCount: n})
			i = len(r.LPRequests) - 1
		}
		r.LPRequests[i].Status = b.State
		if r.CancelRequested {
			return s.transition(tx, r, erasureChange{from: prev, targets: ts, now: now})
		}
		if b.State == LPCanceled {
			if err := s.enqueueTargets(tx, r, ts, now); err != nil {
				return err
			}
		}
		r.State = deriveState(r, ts)
		next := r.NextAttemptTime
		if r.State == StateVerifying {
			next = now
		}
		if err := setNext(tx, r, next); err != nil {
			return err
		}
		return s.transition(tx, r, erasureChange{from: prev, targets: ts, now: now})
	})
}

// updateBatch changes one batch in a transaction; errStale from change means "no longer
// applies" and is not an error.
func (p *Pipeline) updateBatch(ctx context.Context, id uint64, change func(tx store.Tx, b *batch) error) error {
	err := p.s.db.Update(ctx, func(tx store.Tx) error {
		b, err := pipeline.GetBatch(tx, id)
		if err != nil || b == nil {
			return err
		}
		if err := change(tx, b); err != nil {
			return err
		}
		return pipeline.PutBatch(tx, b)
	})
	if errors.Is(err, errStale) {
		return nil
	}
	return err
}
