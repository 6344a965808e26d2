package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/store"
)

// verifyStep re-reads every deleted record. A record gone, or read with its content and masked,
// is verified; one read with its content and not masked is queued once more, and if it survives
// that too the erasure fails with the evidence. A record returned without its content proves
// nothing either way: the step fails for now and is retried. Consumer profiles cannot be read
// back at all: LivePerson's DONE is all there is, and they stay DONE. Once all are verified, a
// final sweep (at least search_lag after received_time) must find nothing new before the
// erasure completes.
func (p *Pipeline) verifyStep(ctx context.Context, snap *snapshot) error {
	now := p.now()
	reads, err := p.reread(ctx, snap.r.AccountID, snap.targets, now)
	if err != nil {
		return err
	}
	survivors := 0
	for _, rb := range reads {
		switch rb {
		case readUnread:
			return ErrContentUnread
		case readKept:
			survivors++
		}
	}
	var sweep *resolution
	var ids []model.Subject
	if survivors == 0 && !now.Before(snap.r.ReceivedTime.Add(p.cfg.SearchLag)) {
		var followed []string
		if ids, followed, err = p.subject(snap.r.ID); err != nil {
			return err
		}
		res, err := p.finalResolver(&snap.r, followed, now).resolve(ctx, snap.r.AccountID, ids, snap.r.Channels, snap.r.EraseConsumerProfile)
		if err != nil {
			return err
		}
		sweep = &res
	}
	return p.commit(ctx, snap, func(tx store.Tx, r *model.Record, ts []model.Target) ([]model.Target, error) {
		r.Failures, r.LastError = 0, ""
		failed := 0
		for i := range ts {
			if ts[i].Status != model.TargetDone || ts[i].Kind == model.KindConsumer {
				continue
			}
			if reads[targetKey(ts[i])] != readKept {
				ts[i].Status = model.TargetVerified
				continue
			}
			if ts[i].Requeued > 0 {
				failed++
				continue
			}
			ts[i].Requeued++
			// The batch no longer stands for this record: it may be sent again.
			if err := p.ch.dropLink(tx, r.AccountID, ts[i].Kind, ts[i].ID, ts[i].Batch); err != nil {
				return nil, err
			}
			ts[i].Status, ts[i].Batch, ts[i].LPRequest = model.TargetQueued, 0, 0
		}
		if failed > 0 {
			if err := p.d.Fail(tx, r, "verification_failed"); err != nil {
				return nil, err
			}
			r.LastError = fmt.Sprintf("verification: %d record(s) still hold data after deletion was requested twice (LivePerson requests %v)",
				failed, model.LPRequestIDs(&r.Erasure))
			return ts, nil
		}
		if model.HasStatus(ts, model.TargetQueued) {
			return ts, p.ch.ScheduleTargets(tx, r, ts, now)
		}
		if sweep == nil {
			r.BlockedOn = model.BlockedSearchLag
			return ts, SetNext(tx, &r.Erasure, r.ReceivedTime.Add(p.cfg.SearchLag))
		}
		searched(r, *sweep, ids)
		if err := p.d.AddConsumers(tx, r, sweep.consumers); err != nil {
			return nil, err
		}
		merged, added := model.MergeTargets(ts, sweep.targets)
		if added > 0 {
			return merged, p.ch.ScheduleTargets(tx, r, merged, now)
		}
		return merged, p.finish(tx, r, merged, now)
	})
}

// finish completes an erasure whose final sweep found nothing new, unless Messaging
// Interactions may have missed the person's conversations (some identifier may be unsearchable
// there and no searchable one led to the person's consumer) and no approver has accepted that:
// then the erasure waits, with nothing scheduled, for an alias that leads to the consumer (a
// Submit joining it wakes it) or for an approver's confirmation (Resolve).
func (p *Pipeline) finish(tx store.Tx, r *model.Record, ts []model.Target, now time.Time) error {
	if r.IdentifierUnsearchable && !r.UnsearchableAccepted {
		r.BlockedOn = model.BlockedIdentifierUnsearchable
		return SetNext(tx, &r.Erasure, time.Time{})
	}
	r.Swept = true
	r.State = model.StateCompleted
	return p.d.Complete(tx, r, ts, now)
}

// ErrContentUnread: LivePerson answered a verification read without the record's content.
var ErrContentUnread = errors.New("a record was read back without its content")

// readBack is what re-reading a deleted record showed.
type readBack int

const (
	readErased readBack = iota // gone, or read with its content and masked
	readKept                   // read with its content, and not masked: still holds data
	readUnread                 // returned without its content: proves nothing
)

func targetKey(t model.Target) string { return t.Kind.String() + "/" + t.ID }

// verifyReadChunk is how many conversations one verification read asks for: those reads carry
// every message, and a hundred long conversations could outgrow the largest answer accepted.
const verifyReadChunk = 20

// reread re-reads DONE targets that can be read (chats and conversations) and says, by
// targetKey, what each showed.
func (p *Pipeline) reread(ctx context.Context, account string, ts []model.Target, now time.Time) (map[string]readBack, error) {
	out := map[string]readBack{}
	var convs []string
	for _, t := range ts {
		if t.Status != model.TargetDone {
			continue
		}
		switch t.Kind {
		case model.KindConversation:
			convs = append(convs, t.ID)
		case model.KindEngagement:
			rec, found, err := p.readChat(ctx, account, t, now)
			if err != nil {
				return nil, err
			}
			out[targetKey(t)] = readOf(found, rec.ContentRead, rec.Masked)
		case model.KindConsumer:
			// LivePerson offers no read of a consumer profile.
		}
	}
	for chunk := range slices.Chunk(convs, verifyReadChunk) {
		recs, err := p.lp.ConversationsByID(ctx, account, chunk)
		if err != nil {
			return nil, err
		}
		for _, id := range chunk {
			i := slices.IndexFunc(recs, func(c model.ConversationRecord) bool { return c.ConversationID == id })
			key := targetKey(model.Target{Kind: model.KindConversation, ID: id})
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
func (p *Pipeline) readChat(ctx context.Context, account string, t model.Target, now time.Time) (model.ChatRecord, bool, error) {
	if !t.Start.IsZero() {
		from := t.Start.Add(-time.Hour).Truncate(windowAlign)
		rec, found, err := p.lp.ChatByID(ctx, account, t.ID, from, from.Add(chatWindow))
		if err != nil || (found && rec.EngagementID == t.ID) {
			return rec, found, err
		}
	}
	return resolver{lp: p.lp, now: now}.chatByID(ctx, account, t.ID)
}
