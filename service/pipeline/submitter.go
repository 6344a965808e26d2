package pipeline

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/erasured/erasured/service/model"
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
	var b *Batch
	var ids []string
	err = p.db.View(func(tx store.Tx) error {
		if b, err = GetBatch(tx, id); err != nil || b == nil {
			return err
		}
		if b.State == BatchIntent {
			ids, err = p.d.BatchIDs(tx, b)
		}
		return err
	})
	if err != nil {
		return err
	}
	if b == nil {
		return p.dropTask(ctx, TaskBatch+idText)
	}
	switch b.State {
	case BatchIntent:
		return p.sendBatch(ctx, b, ids)
	case model.LPNotStarted, model.LPInProgress:
		return p.pollBatch(ctx, b)
	}
	return p.updateBatch(ctx, b.ID, func(tx store.Tx, b *Batch) error { return PollNext(tx, b, time.Time{}) })
}

// sendBatch creates the LivePerson request of a batch exactly once. A batch that may already
// have been sent (Sends > 0: an earlier attempt's outcome is unknown, or the process died
// around the POST) is first looked for in LivePerson's list of requests, unless an operator has
// just settled it as not created. A batch not found there is sent again only once a create
// LivePerson may still be processing would be listed (listwait.go). Only one batch of an
// account may be in flight (sent, outcome unknown, not held) at a time, so that a request
// found in the list can be told to be this batch's: a batch whose turn has not come waits, and
// its erasures say so.
func (p *Pipeline) sendBatch(ctx context.Context, b *Batch, ids []string) error {
	if b.Sends > 0 && b.Resend {
		// An operator settled the batch as not created; a create LivePerson is still processing
		// would not have shown in what they checked either, so the resend waits for that too.
		if until := p.listedBy(b); p.now().Before(until) {
			return p.updateBatch(ctx, b.ID, func(tx store.Tx, cur *Batch) error {
				if cur.State != BatchIntent || cur.Sends != b.Sends || !cur.Resend {
					return errStale
				}
				return PollNext(tx, cur, until)
			})
		}
	}
	if b.Sends > 0 && !b.Resend && !bugNoReconcile {
		found, err := p.reconcile(ctx, b, ids)
		if err != nil {
			p.d.ReportRefusal(b.Account, "reconcile", err, "batch", b.ID)
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
		if until := p.listedBy(b); p.now().Before(until) {
			return p.waitListing(ctx, b, until)
		}
	}
	// Record that a send is about to happen before it happens: a crash after this commit
	// makes the next attempt reconcile first.
	now := p.now()
	waiting := false
	err := p.db.Update(ctx, func(tx store.Tx) error {
		waiting = false
		cur, err := GetBatch(tx, b.ID)
		if err != nil {
			return err
		}
		if cur == nil || cur.State != BatchIntent || cur.Sends != b.Sends {
			return errStale
		}
		turn, err := TakeSendTurn(tx, cur)
		if err != nil {
			return err
		}
		if err := p.showWaiting(tx, cur, !turn, now); err != nil {
			return err
		}
		if !turn {
			// Woken when the batch whose turn it is settles; the late poll is only a safety net.
			waiting = true
			if err := PollNext(tx, cur, now.Add(p.t.PollInterval)); err != nil {
				return err
			}
			return PutBatch(tx, cur)
		}
		if err := p.showListWait(tx, cur, time.Time{}, now); err != nil {
			return err
		}
		if cur.Sends == 0 {
			cur.FirstSend = now
		}
		cur.Sends++
		// The create call below is cut at now + CallTimeout, whatever it waits for first (the
		// rate limiter, a token, a retry after 429): that is the latest its POST can leave.
		cur.LastSend = now.Add(p.cfg.CallTimeout)
		cur.Resend, cur.ListFailures = false, 0
		return PutBatch(tx, cur)
	})
	if errors.Is(err, errStale) {
		return nil // another step moved the batch on; the schedule brings it back if needed
	}
	if err != nil || waiting {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, p.cfg.CallTimeout) // a real-time bound; now may be a test's clock
	d, err := p.lp.CreateDeletion(cctx, b.Account, model.TargetKind(b.Kind), ids)
	cancel()
	if err != nil {
		p.d.ReportRefusal(b.Account, "submit", err, "batch", b.ID)
	}
	switch {
	case err == nil:
		return p.batchCreated(ctx, b.ID, d, d.RequestedBy)
	case errors.Is(err, model.ErrQuotaExhausted):
		return p.dissolve(ctx, b.ID, BatchDissolved, err)
	case errors.Is(err, model.ErrRejected) || errors.Is(err, model.ErrResidency):
		return p.dissolve(ctx, b.ID, BatchRejected, err)
	}
	return p.sendLost(ctx, b.ID, b.Sends+1, err)
}

// batchCreated records LivePerson's request id and moves the batch's targets to SUBMITTED.
// who is the requested_by of LivePerson's answer to our own create (empty otherwise): it is
// remembered as who we are at LivePerson.
func (p *Pipeline) batchCreated(ctx context.Context, id uint64, d model.Deletion, who string) error {
	now := p.now()
	err := p.updateBatch(ctx, id, func(tx store.Tx, b *Batch) error {
		if b.State != BatchIntent {
			return errStale
		}
		if who != "" {
			if err := PutRequestedBy(tx, b.Account, who); err != nil {
				return err
			}
		}
		return p.ch.Follow(tx, b, d, "created", now)
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
func (c *Changes) Follow(tx store.Tx, b *Batch, d model.Deletion, how string, now time.Time) error {
	if err := ReleaseSendTurn(tx, b, now); err != nil {
		return err
	}
	batchID, account, kind := b.ID, b.Account, model.TargetKind(b.Kind)
	if err := tx.OnCommit(func() {
		c.log.Info("LivePerson deletion request "+how, "batch", batchID, "account", account,
			"lp_request", d.ID, "kind", kind.String(), "lp_status", d.Status)
	}); err != nil {
		return err
	}
	b.LPID, b.Sent, b.Failures, b.Candidates, b.Rivals = d.ID, now, 0, nil, nil
	b.Unlisted, b.ListFailures, b.ListWait = false, 0, time.Time{}
	status := d.Status
	if status == "" {
		status = model.LPNotStarted
	}
	b.State = status
	if err := c.ApplyBatchStatus(tx, b, now); err != nil {
		return err
	}
	return PollNext(tx, b, c.nextPoll(b, now))
}

// batchRetry keeps the batch as it is and tries again later (5, 10, 15 s … up to the poll
// interval). A batch whose send failed keeps Sends > 0, so it is reconciled before any resend.
// The retry is logged once stored, with the step that failed and the next attempt time.
func (p *Pipeline) batchRetry(ctx context.Context, id uint64, step string, cause error) error {
	now := p.now()
	return p.updateBatch(ctx, id, func(tx store.Tx, b *Batch) error { return p.retryLater(tx, b, step, cause, now) })
}

// sendLost is batchRetry for a create that ended without LivePerson's answer: its POST, the
// batch's sends-th, may have reached LivePerson as late as now, so the batch's last send moves
// on to now (a create waiting its turn inside the call, for the host, the rate limit or
// credentials, left later than it was recorded).
func (p *Pipeline) sendLost(ctx context.Context, id uint64, sends int, cause error) error {
	now := p.now()
	return p.updateBatch(ctx, id, func(tx store.Tx, b *Batch) error {
		if b.State == BatchIntent && b.Sends == sends {
			b.LastSend = now
		}
		return p.retryLater(tx, b, "submit", cause, now)
	})
}

// retryLater counts a failure of batch b's step and schedules the next attempt with backoff;
// the caller stores b.
func (p *Pipeline) retryLater(tx store.Tx, b *Batch, step string, cause error, now time.Time) error {
	b.Failures++
	next := now.Add(retryDelay(b.Failures, p.t.PollInterval, cause))
	if err := p.logRetry(tx, b, step, cause, next); err != nil {
		return err
	}
	return PollNext(tx, b, next)
}

// logRetry logs, once tx commits, that batch b's step failed and is tried again at next.
func (p *Pipeline) logRetry(tx store.Tx, b *Batch, step string, cause error, next time.Time) error {
	id, account, failures, reason := b.ID, b.Account, b.Failures, p.d.Describe(cause)
	if errors.Is(cause, errTaken) {
		reason = "the LivePerson request found belongs to another batch"
	}
	return tx.OnCommit(func() {
		p.log.Warn("pipeline step failed; retrying", "batch", id, "account", account, "step", step,
			"reason", reason, "failures", failures, "next_attempt_time", next.UTC())
	})
}

// listFailed handles a reconciliation that could not read LivePerson's list. Retrying for
// ever would keep the account's send turn and leave the batch's erasures looking merely
// delayed: a refusal (permanent, such as credentials without list rights) holds the batch at
// once, and so does the MaxListFailures-th failure in a row. A held batch shows why, is logged
// and counted, and waits for an operator, who can read the list by other means. A failure
// while the pipeline stops is not LivePerson's answer and is not counted.
func (p *Pipeline) listFailed(ctx context.Context, b *Batch, cause error) error {
	if ctx.Err() != nil {
		return cause
	}
	if errors.Is(cause, model.ErrRejected) || b.ListFailures+1 >= MaxListFailures {
		return p.hold(ctx, b, nil, cause)
	}
	now := p.now()
	err := p.updateBatch(ctx, b.ID, func(tx store.Tx, cur *Batch) error {
		if cur.State != BatchIntent || cur.Sends != b.Sends {
			return errStale
		}
		cur.ListFailures++
		return p.retryLater(tx, cur, "reconcile", cause, now)
	})
	return err
}

// dissolve ends a batch that LivePerson did not create: its targets go back to the queue. On a
// 429 the month's quota is marked spent; on a rejection each target counts it, and a target
// rejected twice fails its erasure.
func (p *Pipeline) dissolve(ctx context.Context, id uint64, state string, cause error) error {
	now := p.now()
	return p.updateBatch(ctx, id, func(tx store.Tx, b *Batch) error {
		if b.State != BatchIntent {
			return errStale
		}
		if err := ReleaseSendTurn(tx, b, now); err != nil {
			return err
		}
		b.State = state
		if state == BatchDissolved {
			month := Month(now)
			q, err := GetQuota(tx, b.Account, month)
			if err != nil {
				return err
			}
			q.Exhausted = true
			if err := PutQuota(tx, b.Account, month, q); err != nil {
				return err
			}
		}
		err := p.ch.forMembers(tx, b, func(r *model.Record, ts []model.Target) error {
			prev := r.State
			failed := false
			for i := range ts {
				if ts[i].Batch != b.ID {
					continue
				}
				ts[i].Batch = 0
				if state == BatchRejected {
					ts[i].Rejected++
					failed = failed || ts[i].Rejected >= 2
				}
			}
			r.LastError = p.d.Describe(cause)
			switch {
			case failed:
				if err := p.d.Fail(tx, r, "deletion_rejected"); err != nil {
					return err
				}
				r.LastError = "LivePerson rejected the deletion request twice"
			case state == BatchDissolved:
				r.BlockedOn = model.HeldFirst(&r.Erasure, model.BlockedQuota)
				r.NextAttemptTime = NextMonth(now)
			}
			if !failed {
				if err := p.ch.enqueueTargets(tx, r, ts, now); err != nil {
					return err
				}
			}
			return p.d.Transition(tx, r, prev, ts, now)
		})
		if err != nil {
			return err
		}
		return PollNext(tx, b, time.Time{})
	})
}

// updateBatch changes one batch in a transaction; errStale from change means "no longer
// applies" and is not an error.
func (p *Pipeline) updateBatch(ctx context.Context, id uint64, change func(tx store.Tx, b *Batch) error) error {
	err := p.db.Update(ctx, func(tx store.Tx) error {
		b, err := GetBatch(tx, id)
		if err != nil || b == nil {
			return err
		}
		if err := change(tx, b); err != nil {
			return err
		}
		return PutBatch(tx, b)
	})
	if errors.Is(err, errStale) {
		return nil
	}
	return err
}
