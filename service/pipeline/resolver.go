package pipeline

import (
	"context"
	"slices"
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/store"
)

// resolveStep searches LivePerson for the subject's records and plans their deletion.
func (p *Pipeline) resolveStep(ctx context.Context, snap *snapshot) error {
	ids, followed, err := p.subject(snap.r.ID)
	if err != nil {
		return err
	}
	now := p.now()
	rv := resolver{lp: p.lp, now: now, followed: followed}
	if snap.r.BlockedOn == model.BlockedSearchLag {
		// The last search of this step found nothing and was complete, for every identifier the
		// erasure holds (a join since would have cleared the block): only chats that were not
		// searchable yet remain to be found.
		rv.late = lateSweep{swept: len(ids), from: lateFrom(&snap.r, p.cfg.SearchLag)}
	}
	res, err := rv.resolve(ctx, snap.r.AccountID, ids, snap.r.Channels, snap.r.EraseConsumerProfile)
	if err != nil {
		return err
	}
	lagPassed := !now.Before(snap.r.ReceivedTime.Add(p.cfg.SearchLag))
	return p.commit(ctx, snap, func(tx store.Tx, r *model.Record, ts []model.Target) ([]model.Target, error) {
		searched(r, res, ids)
		if err := p.d.AddConsumers(tx, r, res.consumers); err != nil {
			return nil, err
		}
		r.Failures, r.LastError = 0, ""
		merged, _ := model.MergeTargets(ts, res.targets)
		if !model.HasLive(merged) { // nothing, or only named records LivePerson does not have
			if lagPassed {
				return merged, p.finish(tx, r, merged, now)
			}
			// Nothing yet, but records of the last two hours are not searchable: look again
			// once the search lag has passed before declaring that nothing exists.
			r.BlockedOn = model.BlockedSearchLag
			return merged, SetNext(tx, &r.Erasure, r.ReceivedTime.Add(p.cfg.SearchLag))
		}
		if r.Confirmation == model.ConfirmationManual && !r.Confirmed {
			r.State = model.StateAwaitingConfirmation
			r.BlockedOn = model.BlockedConfirmation
			return merged, SetNext(tx, &r.Erasure, time.Time{})
		}
		return merged, p.ch.ScheduleTargets(tx, r, merged, now)
	})
}

// chatSpan is how long a chat is taken to last at most, for lateFrom: Engagement History
// returns a chat only once it has ended, and finds it by when it started.
const chatSpan = 24 * time.Hour

// lateFrom is the earliest start of a chat that a complete search of r's identifiers, run once
// r existed, may have missed: a chat that ended search_lag before r was created (or before its
// received time, when that is earlier) was searchable by then, and one that ended later started
// at most chatSpan before its end. A record without those times gets the zero time: everything
// is searched again.
func lateFrom(r *model.Record, lag time.Duration) time.Time {
	t := r.ReceivedTime
	if r.CreateTime.Before(t) {
		t = r.CreateTime
	}
	if t.IsZero() {
		return time.Time{}
	}
	return t.Add(-lag - chatSpan)
}

// finalResolver is the resolver of r's final sweep, at now. The subject was searched completely
// when r was resolved, so its chats are searched only where one may have become searchable
// since (lateFrom); aliases may have joined after that and are searched over the whole
// retention, as is messaging, where a conversation may stay open for long and is found by when
// it started.
func (p *Pipeline) finalResolver(r *model.Record, followed []string, now time.Time) resolver {
	return resolver{lp: p.lp, now: now, followed: followed, late: lateSweep{swept: 1, from: lateFrom(r, p.cfg.SearchLag)}}
}

// scheduleTargets queues every found target, holds open conversations, and sets the erasure's
// state, what it is blocked on and its next re-check accordingly.
func (c *Changes) ScheduleTargets(tx store.Tx, r *model.Record, ts []model.Target, now time.Time) error {
	prev := r.State
	for i := range ts {
		if ts[i].Status == model.TargetFound {
			ts[i].Status = model.TargetQueued
		}
	}
	// A mark once made stays (the forecast may have made it): only the deadline rule adds one.
	r.AtRisk = r.AtRisk || now.Add(c.t.CancelWindow+c.t.DeletionWindow).After(r.DueTime)
	if r.AtRisk && r.AtRiskTime.IsZero() {
		r.AtRiskTime = now
	}
	// Ids a live batch already holds follow it rather than wait to be sent again.
	joined, err := c.linkQueued(tx, r, ts, now)
	if err != nil {
		return err
	}
	if err := c.enqueueTargets(tx, r, ts, now); err != nil {
		return err
	}
	r.State = deriveState(r, ts)
	if joined {
		r.State = joinedState(prev, r.State)
	}
	r.BlockedOn = model.BlockedNone
	next := time.Time{}
	switch {
	case model.HasStatus(ts, model.TargetDeferredOpen):
		r.BlockedOn = model.BlockedOpenConversations
		next = now.Add(c.t.PollInterval)
	case r.State == model.StateVerifying, joined && movesOn(r, ts):
		next = now
	}
	r.BlockedOn = model.HeldFirst(&r.Erasure, r.BlockedOn) // a joined held batch shows
	return SetNext(tx, &r.Erasure, next)
}

// deriveState is the state an erasure's targets put it in, once it is past confirmation.
func deriveState(r *model.Record, ts []model.Target) model.State {
	status := map[int64]string{}
	for _, q := range r.LPRequests {
		status[q.ID] = q.Status
	}
	switch {
	case !model.HasLive(ts):
		return r.State
	case model.HasStatus(ts, model.TargetFound, model.TargetQueued, model.TargetDeferredOpen):
		return model.StateScheduled
	case slices.ContainsFunc(ts, func(t model.Target) bool {
		return t.Status == model.TargetSubmitted && status[t.LPRequest] == model.LPNotStarted
	}):
		return model.StateSubmitted
	case model.HasStatus(ts, model.TargetSubmitted):
		return model.StateDeleting
	}
	return model.StateVerifying
}

// recheckOpen looks again at held open conversations; those now closed are queued.
func (p *Pipeline) recheckOpen(ctx context.Context, snap *snapshot) error {
	var open []string
	for _, t := range snap.targets {
		if t.Status == model.TargetDeferredOpen {
			open = append(open, t.ID)
		}
	}
	if len(open) == 0 {
		now := p.now()
		return p.commit(ctx, snap, func(tx store.Tx, r *model.Record, ts []model.Target) ([]model.Target, error) {
			// Records that joined live batches (linked.go) move the erasure on with them.
			r.State = deriveState(r, ts)
			next := time.Time{}
			if r.State == model.StateVerifying {
				next = now
			}
			return ts, SetNext(tx, &r.Erasure, next)
		})
	}
	var found []model.Target
	for chunk := range slices.Chunk(open, 100) {
		recs, err := p.lp.ConversationsByID(ctx, snap.r.AccountID, chunk)
		if err != nil {
			return err
		}
		for _, c := range recs {
			if !c.Open && slices.Contains(chunk, c.ConversationID) {
				found = append(found, model.Target{Kind: model.KindConversation, ID: c.ConversationID, Status: model.TargetFound})
			}
		}
	}
	now := p.now()
	return p.commit(ctx, snap, func(tx store.Tx, r *model.Record, ts []model.Target) ([]model.Target, error) {
		r.Failures, r.LastError = 0, ""
		merged, _ := model.MergeTargets(ts, found)
		return merged, p.ch.ScheduleTargets(tx, r, merged, now)
	})
}

// queuedKinds are the record kinds the queue holds: each has a queue per account (see package
// pipeline), and a batch holds records of one kind.
var queuedKinds = []int32{int32(model.KindEngagement), int32(model.KindConversation), int32(model.KindConsumer)}

// enqueueTargets puts every QUEUED target of r that is not in a batch yet in the queue,
// refreshing the erasure's entry for each kind (or removing it when none waits).
func (c *Changes) enqueueTargets(tx store.Tx, r *model.Record, ts []model.Target, now time.Time) error {
	counts := map[model.TargetKind]int{}
	for _, t := range ts {
		if t.Status == model.TargetQueued && t.Batch == 0 {
			counts[t.Kind]++
		}
	}
	safe := r.DueTime.Add(-(c.t.CancelWindow + c.t.DeletionWindow + c.t.Margin))
	for _, kind := range queuedKinds {
		e := QueueEntry{Enqueued: now, SafeBy: safe, AtRisk: r.AtRisk, Count: counts[model.TargetKind(kind)]}
		if err := Enqueue(tx, r.AccountID, kind, r.ID, e); err != nil {
			return err
		}
	}
	return nil
}

// DequeueErasure removes every queue entry of an erasure (it is final).
func DequeueErasure(tx store.Tx, account, id string) error {
	return Dequeue(tx, account, id, queuedKinds...)
}
