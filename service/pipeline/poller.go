package pipeline

import (
	"context"
	"slices"
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/store"
)

// pollBatch asks LivePerson for the request's status and applies a change.
func (p *Pipeline) pollBatch(ctx context.Context, b *Batch) error {
	d, err := p.lp.GetDeletion(ctx, b.Account, b.LPID)
	if err != nil {
		p.d.ReportRefusal(b.Account, "poll", err, "batch", b.ID)
		return p.batchRetry(ctx, b.ID, "poll", err)
	}
	now := p.now()
	err = p.updateBatch(ctx, b.ID, func(tx store.Tx, cur *Batch) error {
		cur.Failures = 0
		// A status does not go back: NOT_STARTED after IN_PROGRESS is an older answer than
		// the one already applied (see the transition table), and changes nothing.
		regressed := d.Status == model.LPNotStarted && cur.State == model.LPInProgress
		if d.Status != "" && d.Status != cur.State && !regressed {
			cur.State = d.Status
			if err := p.ch.ApplyBatchStatus(tx, cur, now); err != nil {
				return err
			}
		}
		next := time.Time{}
		if cur.State == model.LPNotStarted || cur.State == model.LPInProgress {
			next = p.ch.nextPoll(cur, now)
		}
		return PollNext(tx, cur, next)
	})
	if transitionRefused(err) {
		return p.refusedRetry(ctx, b.ID, "poll", err)
	}
	return err
}

// nextPoll adapts polling to LivePerson's timeline: a NOT_STARTED request is looked at again
// when its cancel window should end (or sooner, at the poll interval); an IN_PROGRESS one at
// the poll interval. Never more often than 1/50 of the poll interval.
func (c *Changes) nextPoll(b *Batch, now time.Time) time.Time {
	floor := max(c.t.PollInterval/50, 10*time.Millisecond)
	wait := c.t.PollInterval
	if b.State == model.LPNotStarted {
		wait = min(wait, b.Sent.Add(c.t.CancelWindow).Sub(now))
	}
	return now.Add(max(wait, floor))
}

// forMembers calls fn for each open erasure holding records of batch b, with its targets.
func (c *Changes) forMembers(tx store.Tx, b *Batch, fn func(r *model.Record, ts []model.Target) error) error {
	for _, eid := range b.Erasures {
		r, err := model.GetRecord(tx, eid)
		if err != nil {
			return err
		}
		if r == nil || r.State.Final() {
			continue
		}
		ts, err := c.d.Targets(tx, r)
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
func (c *Changes) ApplyBatchStatus(tx store.Tx, b *Batch, now time.Time) error {
	return c.forMembers(tx, b, func(r *model.Record, ts []model.Target) error {
		prev := r.State
		clearHeld(r, ts, b.ID) // a held batch that now follows a request is no longer held
		if r.LastError == ListingWaitError {
			r.LastError = "" // nor waits for LivePerson's list
		}
		n := int32(0)
		for i := range ts {
			t := &ts[i]
			if t.Batch != b.ID {
				continue
			}
			n++
			switch b.State {
			case model.LPNotStarted, model.LPInProgress:
				t.Status, t.LPRequest = model.TargetSubmitted, b.LPID
			case model.LPDone:
				t.Status = model.TargetDone
			case model.LPCanceled:
				if !r.CancelRequested {
					t.Status, t.Batch, t.LPRequest = model.TargetQueued, 0, 0
				}
			}
		}
		i := slices.IndexFunc(r.LPRequests, func(q model.LPRequest) bool { return q.ID == b.LPID })
		if i < 0 {
			r.LPRequests = append(r.LPRequests, model.LPRequest{ID: b.LPID, Kind: model.TargetKind(b.Kind), RecordCount: n})
			i = len(r.LPRequests) - 1
		}
		r.LPRequests[i].Status = b.State
		if r.CancelRequested {
			return c.d.Transition(tx, r, prev, ts, now)
		}
		if b.State == model.LPCanceled {
			if err := c.enqueueTargets(tx, r, ts, now); err != nil {
				return err
			}
		}
		r.State = deriveState(r, ts)
		next := r.NextAttemptTime
		if r.State == model.StateVerifying {
			next = now
		}
		if err := SetNext(tx, &r.Erasure, next); err != nil {
			return err
		}
		return c.d.Transition(tx, r, prev, ts, now)
	})
}
