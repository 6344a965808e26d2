package pipeline

import (
	"context"
	"slices"
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// A held batch waits for an operator, who looks at LivePerson's list and settles it: with the
// request that holds it, or as never created.

// HeldError is the last_error of an erasure holding records of a held batch.
const HeldError = "LivePerson may or may not have created a deletion request for these records; held until an operator settles it"

// HeldUnlistedError is the last_error of an erasure holding records of a batch held because
// LivePerson's list of deletion requests could not be read.
const HeldUnlistedError = "LivePerson's list of deletion requests could not be read, so whether a deletion request was created for these records is unknown; held until an operator settles it"

// hold stops batch b for an operator: it will not be sent again by itself. Its candidates stay
// reserved for it, and it gives up its account's send turn, so the account's next batch goes
// on (see reconciler.go for why that is sound). Its erasures show the hold; it is logged once,
// with the candidate requests (LivePerson ids, not personal data). unlisted, when set, is why
// LivePerson's list could not be read: the batch has no candidates.
func (p *Pipeline) hold(ctx context.Context, b *Batch, candidates []int64, unlisted error) error {
	now := p.now()
	held := false
	err := p.updateBatch(ctx, b.ID, func(tx store.Tx, cur *Batch) error {
		held = false
		if cur.State != BatchIntent || cur.Sends != b.Sends {
			return errStale
		}
		sib, err := scanSiblings(tx, cur.Account, cur.ID)
		if err != nil {
			return err
		}
		if err := ReleaseSendTurn(tx, cur, now); err != nil {
			return err
		}
		cur.State, cur.Candidates, cur.Rivals, cur.Failures = BatchHeld, candidates, sib.inFlight, 0
		cur.Unlisted, cur.ListFailures, cur.ListWait = unlisted != nil, 0, time.Time{}
		if err := tx.Put(schema.Ledger, schema.HeldKey(cur.Account, cur.ID), nil); err != nil {
			return err
		}
		err = p.ch.forMembers(tx, cur, func(r *model.Record, ts []model.Target) error {
			h := model.HeldBatch{BatchID: cur.ID, Kind: model.TargetKind(cur.Kind), Candidates: candidates, SendTime: cur.FirstSend}
			for _, t := range ts {
				if t.Batch == cur.ID {
					h.RecordCount++
				}
			}
			r.HeldBatches = append(slices.DeleteFunc(r.HeldBatches, func(x model.HeldBatch) bool { return x.BatchID == cur.ID }), h)
			r.BlockedOn, r.LastError = model.BlockedDeletionOutcomeUnknown, HeldError
			if unlisted != nil {
				r.LastError = HeldUnlistedError
			}
			return p.d.Transition(tx, r, r.State, nil, now)
		})
		if err != nil {
			return err
		}
		held = true
		return PollNext(tx, cur, time.Time{})
	})
	if err == nil && held {
		attrs := []any{"account", b.Account, "batch", b.ID, "candidates", candidates}
		if unlisted != nil {
			attrs = append(attrs, "list_error", p.d.Describe(unlisted))
		}
		p.log.Error("deletion batch held: LivePerson may or may not have created its request; settle it with SettleBatch", attrs...)
	}
	return err
}

// clearHeld removes batch id from r's held batches; once none is left, r is no longer blocked
// on the outcome.
func clearHeld(r *model.Record, ts []model.Target, id uint64) {
	n := len(r.HeldBatches)
	r.HeldBatches = slices.DeleteFunc(r.HeldBatches, func(h model.HeldBatch) bool { return h.BatchID == id })
	if len(r.HeldBatches) == n || len(r.HeldBatches) > 0 {
		return
	}
	r.HeldBatches = nil
	if r.BlockedOn == model.BlockedDeletionOutcomeUnknown {
		r.BlockedOn = model.BlockedNone
		if model.HasStatus(ts, model.TargetDeferredOpen) {
			r.BlockedOn = model.BlockedOpenConversations
		}
	}
	if r.LastError == HeldError || r.LastError == HeldUnlistedError {
		r.LastError = ""
	}
}

// unhold sends a held batch back to INTENT to be sent once, without reconciling: the operator
// found nothing at LivePerson. Its candidates are no longer reserved, and no longer its own
// candidates either, should its next answer be lost too. It takes the account's
// send turn like any other batch, waiting if another batch is in flight.
func (c *Changes) Unhold(tx store.Tx, b *Batch, now time.Time) error {
	err := c.forMembers(tx, b, func(r *model.Record, ts []model.Target) error {
		clearHeld(r, ts, b.ID)
		return c.d.Transition(tx, r, r.State, nil, now)
	})
	if err != nil {
		return err
	}
	b.Dismissed = append(b.Dismissed, b.Candidates...)
	b.State, b.Resend, b.Candidates, b.Rivals, b.Failures = BatchIntent, true, nil, nil, 0
	b.Unlisted, b.ListFailures = false, 0
	return PollNext(tx, b, now)
}

// A batch step whose change of an erasure the transition table refuses must not retry at once:
// its schedule entry is still due after the failed transaction, and the step would call
// LivePerson in a tight loop for as long as the refusal lasts. These helpers back it off and
// report the refusal as an incident (transition_refused), so that a gap in the table shows.

// refusedRetry reports that a step of batch id asked for an erasure change the transition
// table refuses, and has the batch tried again later (batchRetry).
func (p *Pipeline) refusedRetry(ctx context.Context, id uint64, step string, cause error) error {
	p.reportRefusedMove(id, step)
	return p.batchRetry(ctx, id, step, cause)
}

// reportRefusedMove reports a transition refused at a step of batch id, as an incident of its
// account. The incident names the batch, never an erasure's data.
func (p *Pipeline) reportRefusedMove(id uint64, step string) {
	account := ""
	_ = p.db.View(func(tx store.Tx) error {
		b, err := GetBatch(tx, id)
		if err == nil && b != nil {
			account = b.Account
		}
		return err
	})
	p.d.ReportRefusedMove(account, step, "batch", id)
}

// followRefused handles a batch that could not follow request d, just created or found to be its
// own, because the transition table refused a change of one of its erasures. The batch holds
// its account's send turn until it follows a request, and retrying would hold it for as long
// as the refusal lasts, keeping the account's other batches from being sent. So the refusal is
// reported and the batch is held with d as its one candidate: the turn passes on, the erasures
// show that an operator must settle the batch, and SettleBatch with d makes it follow d once
// the table allows the change. If even the hold fails, the batch is retried later.
func (p *Pipeline) followRefused(ctx context.Context, id uint64, d model.Deletion, step string, cause error) error {
	p.reportRefusedMove(id, step)
	var b *Batch
	err := p.db.View(func(tx store.Tx) error {
		var err error
		b, err = GetBatch(tx, id)
		return err
	})
	if err != nil || b == nil {
		return err
	}
	if err := p.hold(ctx, b, []int64{d.ID}, nil); err == nil {
		return nil
	}
	return p.batchRetry(ctx, id, step, cause)
}
