package service

import (
	"context"
	"errors"
	"fmt"
	"github.com/erasured/erasured/service/model"
	"slices"
	"time"

	"github.com/erasured/erasured/store"
)

// resolveStep searches LivePerson for the subject's records and plans their deletion.
func (p *Pipeline) resolveStep(ctx context.Context, snap *snapshot) error {
	ids, err := p.s.identities(snap.r.ID)
	if err != nil {
		return err
	}
	followed, err := p.s.followedConsumers(snap.r.ID)
	if err != nil {
		return err
	}
	now := p.s.now()
	res, err := resolver{lp: p.lp, now: now, followed: followed}.resolve(ctx, snap.r.AccountID, ids, snap.r.Channels, snap.r.EraseConsumerProfile)
	if err != nil {
		return err
	}
	lagPassed := !now.Before(snap.r.ReceivedTime.Add(p.cfg.SearchLag))
	return p.commit(ctx, snap, func(tx store.Tx, r *record, ts []Target) ([]Target, error) {
		searched(r, res, ids)
		if err := p.s.addConsumers(tx, r, res.consumers); err != nil {
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
			r.BlockedOn = BlockedSearchLag
			return merged, setNext(tx, r, r.ReceivedTime.Add(p.cfg.SearchLag))
		}
		if r.Confirmation == ConfirmationManual && !r.Confirmed {
			r.State = StateAwaitingConfirmation
			r.BlockedOn = BlockedConfirmation
			return merged, setNext(tx, r, time.Time{})
		}
		return merged, p.s.scheduleTargets(tx, r, merged, now)
	})
}

// scheduleTargets queues every found target, holds open conversations, and sets the erasure's
// state, what it is blocked on and its next re-check accordingly.
func (s *Service) scheduleTargets(tx store.Tx, r *record, ts []Target, now time.Time) error {
	for i := range ts {
		if ts[i].Status == TargetFound {
			ts[i].Status = TargetQueued
		}
	}
	r.AtRisk = now.Add(s.cfg.CancelWindow + s.cfg.DeletionWindow).After(r.DueTime)
	if err := s.enqueueTargets(tx, r, ts, now); err != nil {
		return err
	}
	r.State = deriveState(r, ts)
	r.BlockedOn = BlockedNone
	next := time.Time{}
	switch {
	case hasStatus(ts, TargetDeferredOpen):
		r.BlockedOn = BlockedOpenConversations
		next = now.Add(s.cfg.PollInterval)
	case r.State == StateVerifying:
		next = now
	}
	return setNext(tx, r, next)
}

// deriveState is the state an erasure's targets put it in, once it is past confirmation.
func deriveState(r *record, ts []Target) State {
	status := map[int64]string{}
	for _, q := range r.LPRequests {
		status[q.ID] = q.Status
	}
	switch {
	case !model.HasLive(ts):
		return r.State
	case hasStatus(ts, TargetFound, TargetQueued, TargetDeferredOpen):
		return StateScheduled
	case slices.ContainsFunc(ts, func(t Target) bool { return t.Status == TargetSubmitted && status[t.LPRequest] == LPNotStarted }):
		return StateSubmitted
	case hasStatus(ts, TargetSubmitted):
		return StateDeleting
	}
	return StateVerifying
}

// recheckOpen looks again at held open conversations; those now closed are queued.
func (p *Pipeline) recheckOpen(ctx context.Context, snap *snapshot) error {
	var open []string
	for _, t := range snap.targets {
		if t.Status == TargetDeferredOpen {
			open = append(open, t.ID)
		}
	}
	if len(open) == 0 {
		return p.commit(ctx, snap, func(tx store.Tx, r *record, ts []Target) ([]Target, error) {
			return ts, setNext(tx, r, time.Time{})
		})
	}
	var found []Target
	for chunk := range slices.Chunk(open, 100) {
		recs, err := p.lp.ConversationsByID(ctx, snap.r.AccountID, chunk)
		if err != nil {
			return err
		}
		for _, c := range recs {
			if !c.Open && slices.Contains(chunk, c.ConversationID) {
				found = append(found, Target{Kind: KindConversation, ID: c.ConversationID, Status: TargetFound})
			}
		}
	}
	now := p.s.now()
	return p.commit(ctx, snap, func(tx store.Tx, r *record, ts []Target) ([]Target, error) {
		r.Failures, r.LastError = 0, ""
		merged, _ := model.MergeTargets(ts, found)
		return merged, p.s.scheduleTargets(tx, r, merged, now)
	})
}

// verifyStep re-reads every deleted record. A record gone, or read with its content and masked,
// is verified; one read with its content and not masked is queued once more, and if it survives
// that too the erasure fails with the evidence. A record returned without its content proves
// nothing either way: the step fails for now and is retried. Consumer profiles cannot be read
// back at all: LivePerson's DONE is all there is, and they stay DONE. Once all are verified, a
// final sweep (at least search_lag after received_time) must find nothing new before the
// erasure completes.
func (p *Pipeline) verifyStep(ctx context.Context, snap *snapshot) error {
	now := p.s.now()
	reads, err := p.reread(ctx, snap.r.AccountID, snap.targets, now)
	if err != nil {
		return err
	}
	survivors := 0
	for _, rb := range reads {
		switch rb {
		case readUnread:
			return errContentUnread
		case readKept:
			survivors++
		}
	}
	var sweep *resolution
	var ids []Subject
	if survivors == 0 && !now.Before(snap.r.ReceivedTime.Add(p.cfg.SearchLag)) {
		if ids, err = p.s.identities(snap.r.ID); err != nil {
			return err
		}
		followed, err := p.s.followedConsumers(snap.r.ID)
		if err != nil {
			return err
		}
		res, err := resolver{lp: p.lp, now: now, followed: followed}.resolve(ctx, snap.r.AccountID, ids, snap.r.Channels, snap.r.EraseConsumerProfile)
		if err != nil {
			return err
		}
		sweep = &res
	}
	return p.commit(ctx, snap, func(tx store.Tx, r *record, ts []Target) ([]Target, error) {
		r.Failures, r.LastError = 0, ""
		failed := 0
		for i := range ts {
			if ts[i].Status != TargetDone || ts[i].Kind == KindConsumer {
				continue
			}
			if reads[targetKey(ts[i])] != readKept {
				ts[i].Status = TargetVerified
				continue
			}
			if ts[i].Requeued > 0 {
				failed++
				continue
			}
			ts[i].Requeued++
			ts[i].Status, ts[i].Batch, ts[i].LPRequest = TargetQueued, 0, 0
		}
		if failed > 0 {
			if err := p.s.failErasure(tx, r, "verification_failed"); err != nil {
				return nil, err
			}
			r.LastError = fmt.Sprintf("verification: %d record(s) still hold data after deletion was requested twice (LivePerson requests %v)",
				failed, lpRequestIDs(r))
			return ts, nil
		}
		if hasStatus(ts, TargetQueued) {
			return ts, p.s.scheduleTargets(tx, r, ts, now)
		}
		if sweep == nil {
			r.BlockedOn = BlockedSearchLag
			return ts, setNext(tx, r, r.ReceivedTime.Add(p.cfg.SearchLag))
		}
		searched(r, *sweep, ids)
		if err := p.s.addConsumers(tx, r, sweep.consumers); err != nil {
			return nil, err
		}
		merged, added := model.MergeTargets(ts, sweep.targets)
		if added > 0 {
			return merged, p.s.scheduleTargets(tx, r, merged, now)
		}
		return merged, p.finish(tx, r, merged, now)
	})
}

// finish completes an erasure whose final sweep found nothing new, unless Messaging
// Interactions may have missed the person's conversations (some identifier may be unsearchable
// there and no searchable one led to the person's consumer) and no approver has accepted that:
// then the erasure waits, with nothing scheduled, for an alias that leads to the consumer (a
// Submit joining it wakes it) or for an approver's confirmation (Resolve).
func (p *Pipeline) finish(tx store.Tx, r *record, ts []Target, now time.Time) error {
	if r.IdentifierUnsearchable && !r.UnsearchableAccepted {
		r.BlockedOn = BlockedIdentifierUnsearchable
		return setNext(tx, r, time.Time{})
	}
	r.Swept = true
	r.State = StateCompleted
	return p.s.complete(tx, r, ts, now)
}

// errContentUnread: LivePerson answered a verification read without the record's content.
var errContentUnread = errors.New("a record was read back without its content")

// readBack is what re-reading a deleted record showed.
type readBack int

const (
	readErased readBack = iota // gone, or read with its content and masked
	readKept                   // read with its content, and not masked: still holds data
	readUnread                 // returned without its content: proves nothing
)

func targetKey(t Target) string { return t.Kind.String() + "/" + t.ID }

// verifyReadChunk is how many conversations one verification read asks for: those reads carry
// every message, and a hundred long conversations could outgrow the largest answer accepted.
const verifyReadChunk = 20

// reread re-reads DONE targets that can be read (chats and conversations) and says, by
// targetKey, what each showed.
func (p *Pipeline) reread(ctx context.Context, account string, ts []Target, now time.Time) (map[string]readBack, error) {
	out := map[string]readBack{}
	var convs []string
	for _, t := range ts {
		if t.Status != TargetDone {
			continue
		}
		switch t.Kind {
		case KindConversation:
			convs = append(convs, t.ID)
		case KindEngagement:
			rec, found, err := p.readChat(ctx, account, t, now)
			if err != nil {
				return nil, err
			}
			out[targetKey(t)] = readOf(found, rec.ContentRead, rec.Masked)
		case KindConsumer:
			// LivePerson offers no read of a consumer profile.
		}
	}
	for chunk := range slices.Chunk(convs, verifyReadChunk) {
		recs, err := p.lp.ConversationsByID(ctx, account, chunk)
		if err != nil {
			return nil, err
		}
		for _, id := range chunk {
			i := slices.IndexFunc(recs, func(c ConversationRecord) bool { return c.ConversationID == id })
			key := targetKey(Target{Kind: KindConversation, ID: id})
			if i < 0 {
				out[key] = readErased
				continue
			}
			out[key] = readOf(true, recs[i].ContentRead, recs[i].Masked)
		}
	}
	return out, nil
}

func readOf(found, contentRead, masked bool) readBack {
	switch {
	case !found:
		return readErased
	case !contentRead:
		return readUnread
	case masked:
		return readErased
	}
	return readKept
}

// readChat re-reads one chat: first in the one window that holds its start, then, if it is not
// there, across the whole retention (absence counts as erased, so a miss must be a real one).
func (p *Pipeline) readChat(ctx context.Context, account string, t Target, now time.Time) (ChatRecord, bool, error) {
	if !t.Start.IsZero() {
		from := t.Start.Add(-time.Hour).Truncate(windowAlign)
		rec, found, err := p.lp.ChatByID(ctx, account, t.ID, from, from.Add(chatWindow))
		if err != nil || (found && rec.EngagementID == t.ID) {
			return rec, found, err
		}
	}
	return resolver{lp: p.lp, now: now}.chatByID(ctx, account, t.ID)
}

func lpRequestIDs(r *record) []int64 {
	var ids []int64
	for _, q := range r.LPRequests {
		ids = append(ids, q.ID)
	}
	return ids
}
