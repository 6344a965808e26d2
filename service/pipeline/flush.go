package pipeline

import (
	"context"
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// When a part-full batch leaves. A full one (100 ids) always leaves at once; what follows is
// the rule for the rest of a queue, by the pipeline's FlushPolicy.
//
// FlushPack, the default. Quota, not time, is what an account runs out of: 100 requests a month,
// whatever they hold. So a part-full batch waits while more records of its kind may still join
// it, and leaves:
//   - sendLead before the first of its members reaches its latest safe submit time
//     (QueueEntry.SafeBy): a request sent then still meets that erasure's deadline, with
//     sendLead (besides the margin inside SafeBy) to spare for a LivePerson outage, a spent
//     quota or a held batch an operator must settle;
//   - when nothing more can join it: no erasure of the account is on its way to the queue (the
//     account's Backlog: none being resolved or awaiting confirmation, and for conversations
//     none holding records on open conversations), the account's erasures come in bursts (its
//     quiet period is at most quietBurst), and no new erasure has arrived for that period;
//   - when its oldest record has waited batch_max_wait, if the operator set one (0: no bound).
//
// An erasure at risk does not make a batch leave by itself (the forecast marks erasures at risk
// days before their safe time, and a request of three ids then wastes a quota unit): it goes
// first in the batch (Queue.Order) and may use the reserve. A record re-queued after a failed
// verify, or a held conversation once closed, is in the queue the moment it is found, and
// joins the next batch like any other.
//
// "Nothing is resolving" alone is not "nothing more can join": an account erasing ten people a
// day has an empty resolution backlog most of the time, and sending each alone is the waste this
// policy removes. The quiet period is derived from the account's own arrivals (Backlog.Quiet):
// twice the longest recent gap between two of its erasures, bounded by quietMin and quietMax.
// Arrivals as a Poisson stream of ten a day leave a longest recent gap of about twelve hours;
// a silence twice that long is rare while the stream goes on (e^-10 per gap), so it is taken as
// the stream having stopped. A burst submitted at once (a script, the pipeline benchmark) has
// gaps of milliseconds, and its batches leave quietMin after the last Submit once resolution is
// done.
//
// Only a burst's silence is trusted, though: the month benchmark showed a stream whose gaps are
// hours long (a few erasures a day) ending its batches on a silence of a day or two, then
// starting new ones with the erasures that came after, three requests more per kind in a month
// that needed seven. Leaving early saves no quota, only time, and the batch still leaves by its
// send time. So an account whose quiet period is longer than quietBurst (its arrivals come
// hours apart, or it has one arrival only) keeps its part-full batches until they are full or
// due.
//
// FlushMaxWait is the rule before FlushPack: a part-full batch leaves once its oldest record has
// waited batch_max_wait, a member reaches its latest safe submit time, or a member is at risk.
// FlushPerErasure sends each erasure's records of a kind in a request of their own as soon as
// they are queued: the naive one request per subject. Both are baselines for the month
// benchmark, not for production.

// sendLead is how long before its first member's latest safe submit time a part-full batch
// leaves under FlushPack. A day more of packing saves few requests; a day more of slack is what
// a LivePerson outage or an operator's settling of a held batch needs.
const sendLead = 2 * time.Hour

// Urgent reports whether a queue summed up as s must leave at now under FlushPack because of
// its members' deadlines: its first member's latest safe submit time is within sendLead. Such a
// batch is not held back by the month's pace and may use the reserve: its first member is at
// risk.
func (s QueueSummary) Urgent(now time.Time) bool { return !now.Before(s.FirstSafe.Add(-sendLead)) }

// The quiet period's bounds and factor (see Backlog.Quiet).
const (
	// quietMin keeps a pause of a few seconds in a stream of Submits from counting as its end.
	quietMin = 5 * time.Second
	// quietMax is the quiet period of an account with no history, or whose erasures come days
	// apart; longer than quietBurst, so such an account's batches wait for their send time.
	quietMax  = 72 * time.Hour
	quietGaps = 2
	// quietBurst is the longest quiet period that counts as the end of a burst; an account whose
	// erasures come further apart waits for its batches' send time (see above).
	quietBurst = 30 * time.Minute
)

// Quiet is how long the account must have had no new erasure before a part-full batch of it
// leaves for want of more records.
func (b Backlog) Quiet() time.Duration {
	if b.Arrivals < 2 {
		return quietMax
	}
	return min(max(quietGaps*b.Gap, quietMin), quietMax)
}

// Flowing reports whether more records of kind may still join a queue of the account at now:
// an erasure of it is on its way to the queue, its erasures do not come in bursts, or its
// quiet period since the last arrival has not passed. Without a recorded arrival (erasures stored before arrivals were kept), the
// queue's newest record stands for it.
func (b Backlog) Flowing(kind model.TargetKind, newest, now time.Time) bool {
	if b.Resolving > 0 || (kind == model.KindConversation && b.Open > 0) {
		return true
	}
	last := b.Last
	if b.Arrivals == 0 {
		last = newest
	}
	quiet := b.Quiet()
	return quiet > quietBurst || now.Before(last.Add(quiet))
}

// partDue reports whether the part-full queue g, summed up as s, is due at now under the
// pipeline's policy (FlushPack or FlushMaxWait), the account's backlog being b.
func (p *Pipeline) partDue(g *Queue, s QueueSummary, b Backlog, now time.Time) bool {
	maxWait := p.cfg.BatchMaxWait
	if p.cfg.Flush == FlushMaxWait {
		_, _, due := g.Due(now, maxWait)
		return due
	}
	switch {
	case s.Urgent(now):
		return true
	case maxWait > 0 && !now.Before(s.Oldest.Add(maxWait)):
		return true
	}
	return !b.Flowing(model.TargetKind(g.Kind), s.Newest, now)
}

// flushEach forms, under FlushPerErasure, a batch of each erasure's records in queue g, at once.
// When the quota stops routine work, the queue's other routine erasures are not tried this round;
// when it stops at-risk work, none is.
func (p *Pipeline) flushEach(ctx context.Context, g *Queue, now time.Time) error {
	quotaOut := false
	for _, i := range g.Order() {
		atRisk := g.Entries[i].AtRisk
		if quotaOut && !atRisk {
			continue
		}
		for {
			formed, blocked, err := p.formBatchOf(ctx, g.Account, model.TargetKind(g.Kind), atRisk, g.IDs[i], now)
			if err != nil {
				return err
			}
			if blocked && atRisk {
				// The whole quota, the reserve too, is spent: its erasures were just marked
				// waiting for the month, and trying each other one would mark them all again.
				return nil
			}
			quotaOut = quotaOut || blocked
			if !formed {
				break
			}
		}
	}
	return nil
}

// readForFlush reads the queues, and the backlog of each account that has one, in one view.
func (p *Pipeline) readForFlush() (queues []*Queue, backlogs map[string]Backlog, kept bool, err error) {
	err = p.db.View(func(tx store.Tx) error {
		kept = tx.Get(schema.Ledger, backlogMarkerKey) != nil
		if queues, err = ReadQueues(tx); err != nil {
			return err
		}
		backlogs = map[string]Backlog{}
		for _, g := range queues {
			if _, ok := backlogs[g.Account]; ok {
				continue
			}
			if backlogs[g.Account], err = GetBacklog(tx, g.Account); err != nil {
				return err
			}
		}
		return nil
	})
	return queues, backlogs, kept, err
}
