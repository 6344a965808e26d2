package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

const MaxBatchIDs = 100

// batchTxnOps are the operations of a batch's transaction besides its erasures' (the batch,
// its key, the quota, the sequence, its task), with room to spare; memberTxnOps those of one
// erasure in it (its record, its event, its schedule entry moved, its queue entry, its
// account's backlog).
const (
	batchTxnOps  = 12
	memberTxnOps = 6
)

// maxMembers is how many erasures (members, and queued erasures found gone) one batch may take
// so that its transaction stays within the store's bound: a store on etcd refuses a
// transaction of more than its --max-txn-ops (128 by default: 19 erasures). No bound on bbolt.
func (p *Pipeline) maxMembers() int {
	if p.cfg.MaxTxnOps <= 0 {
		return math.MaxInt
	}
	return max((p.cfg.MaxTxnOps-batchTxnOps)/memberTxnOps, 1)
}

// flushQueues forms a batch for every account and kind whose queue is due: as many full
// batches (100 ids) as the queue holds, at once, and a part-full one when the pipeline's flush
// policy says it is due (see flush.go). At-risk erasures go first.
func (p *Pipeline) flushQueues(ctx context.Context, now time.Time) error {
	queues, backlogs, kept, err := p.readForFlush()
	if err != nil {
		return err
	}
	if !kept && !now.Before(p.countAgain) {
		// A failed count must not stop batching: the counts only decide how soon a part-full
		// batch leaves, never past its members' latest safe submit time. The count scans every
		// erasure in one write, so after a failure it is tried again a minute later, not at
		// every round.
		if err := ensureBacklog(ctx, p.db); err != nil {
			p.countAgain = now.Add(time.Minute)
			if ctx.Err() == nil {
				p.log.Error("pipeline: counting the erasures on their way to the queue", "err", err)
			}
		} else if queues, backlogs, _, err = p.readForFlush(); err != nil {
			return err
		}
	}
	for _, g := range queues {
		if p.cfg.Flush == FlushPerErasure {
			if err := p.flushEach(ctx, g, now); err != nil {
				return err
			}
			continue
		}
		s := g.Summarize()
		total, due := s.Total, p.partDue(g, s, backlogs[g.Account], now)
		atRisk := s.AtRisk || (p.cfg.Flush == FlushPack && s.Urgent(now))
		for total >= MaxBatchIDs || due {
			formed, err := p.formBatch(ctx, g.Account, model.TargetKind(g.Kind), atRisk, now)
			if err != nil {
				return err
			}
			if !formed {
				break
			}
			total -= MaxBatchIDs
			due = false
		}
	}
	return nil
}

// formBatch commits one batch's intent for an account and kind: up to 100 unique ids from the
// queue, at-risk and soonest-due erasures first, and a quota unit. Sending is a separate step.
func (p *Pipeline) formBatch(ctx context.Context, account string, kind model.TargetKind, atRisk bool, now time.Time) (bool, error) {
	formed, _, err := p.formBatchOf(ctx, account, kind, atRisk, "", now)
	return formed, err
}

// formBatchOf is formBatch, of the records of erasure only when only is set. blocked reports
// that the quota did not allow the batch (its erasures now wait for the month).
// The batch is planned and sealed outside the committer (prepareBatch); the transaction checks
// the plan still holds and writes it. A plan overtaken by another change is made again.
func (p *Pipeline) formBatchOf(ctx context.Context, account string, kind model.TargetKind, atRisk bool, only string, now time.Time) (formed, blocked bool, err error) {
	for range 3 {
		plan, err := p.prepare(account, kind, atRisk, only, now)
		if err != nil || plan == nil || (!plan.blocked && len(plan.members) == 0 && len(plan.gone) == 0) {
			return false, false, err // nothing to write
		}
		if plan.marked {
			return false, true, nil // spent, and the queue's erasures already say so
		}
		formed, err := p.commitBatch(ctx, plan, account, kind, atRisk, now)
		if errors.Is(err, errStalePlan) {
			continue
		}
		if formed {
			p.Wake()
		}
		return formed, plan.blocked && !formed, err
	}
	return false, false, nil // overtaken each time: the next pass forms it
}

// commitBatch writes a plan in one transaction: the queue entries of erasures gone, each
// member's targets and change, the batch, its key, a quota unit, the sequence and the batch's
// task. It returns errStalePlan, having written nothing, when what the plan was read from has
// changed. When the quota no longer allows a batch the queue's erasures wait for the month.
func (p *Pipeline) commitBatch(ctx context.Context, plan *batchPlan, account string, kind model.TargetKind, atRisk bool, now time.Time) (bool, error) {
	formed := false
	err := p.db.Update(ctx, func(tx store.Tx) error {
		formed = false
		month := Month(now)
		q, err := GetQuota(tx, account, month)
		if err != nil {
			return err
		}
		if !p.quotaAllows(q, account, atRisk, now) {
			if q.Allows(p.cfg.Quota(account), p.cfg.Reserve, atRisk) {
				return nil // held back by the month's pace, not spent: the queue waits as it is
			}
			g, err := QueueOf(tx, account, int32(kind))
			if err != nil || g == nil {
				return err
			}
			if err := p.blockOnQuota(tx, g, now); err != nil {
				return err
			}
			return tx.OnCommit(func() { p.planned.setSpent(account, g.Kind, month, g.IDs) })
		}
		// Every check comes before the first write.
		seq := uint64(0)
		if v := tx.Get(schema.Ledger, schema.BatchSeqKey); v != nil {
			if seq, err = store.ParseU64(v); err != nil {
				return err
			}
		}
		if plan.blocked || seq != plan.seq {
			return errStalePlan
		}
		for _, r := range plan.gone {
			if !r.unchanged(tx) {
				return errStalePlan
			}
		}
		for _, m := range plan.members {
			if !m.unchanged(tx) {
				return errStalePlan
			}
		}
		for _, r := range plan.gone {
			if err := Dequeue(tx, account, r.id, int32(kind)); err != nil {
				return err
			}
		}
		for _, m := range plan.members {
			r := new(model.Record) // decoded afresh: the store may run this function more than once
			if err := json.Unmarshal(m.raw, r); err != nil {
				return fmt.Errorf("decode erasure %s: %w", m.id, err)
			}
			prev := r.State
			r.SealedTargets, r.TargetCounts = m.sealed, model.CountTargets(m.targets)
			ts, linked := m.targets, []model.Target(nil) // linked nil: the targets as sealed in the plan
			if m.link {
				ts = slices.Clone(m.targets) // the plan's stay as made: this may run again
				if _, err := p.ch.linkQueued(tx, r, ts, now); err != nil {
					return err
				}
				linked = ts
				if r.State = joinedState(prev, deriveState(r, ts)); r.State == model.StateVerifying || movesOn(r, ts) {
					if err := SetNext(tx, &r.Erasure, now); err != nil {
						return err
					}
				}
			}
			if err := p.ch.enqueueTargets(tx, r, ts, now); err != nil {
				return err
			}
			r.BlockedOn = model.BlockedNone
			if model.HasStatus(m.targets, model.TargetDeferredOpen) {
				r.BlockedOn = model.BlockedOpenConversations // the rest still waits for its conversation to close
			}
			r.BlockedOn = model.HeldFirst(&r.Erasure, r.BlockedOn)
			if err := p.d.Transition(tx, r, prev, linked, now); err != nil { // targets set above, sealed
				return err
			}
		}
		if len(plan.ids) == 0 {
			return nil // only links: no batch
		}
		b := plan.batch
		if !p.d.Committable(tx, plan.wrapped) {
			return errStalePlan
		}
		if err := tx.Put(schema.Keys, schema.BatchKeyName(b.ID), plan.wrapped); err != nil {
			return err
		}
		q.Used++
		if err := PutQuota(tx, account, month, q); err != nil {
			return err
		}
		if err := tx.Put(schema.Ledger, schema.BatchSeqKey, store.U64(b.ID)); err != nil {
			return err
		}
		b.NextPoll = now
		if err := Reschedule(tx, TaskBatch+strconv.FormatUint(b.ID, 10), time.Time{}, now); err != nil {
			return err
		}
		formed = true
		return PutBatch(tx, &b)
	})
	if err == nil && formed {
		p.linkBatch(ctx, &plan.batch, plan.ids)
	}
	return formed, err
}

// blockOnQuota marks the queue's erasures as waiting for quota until the month turns.
func (p *Pipeline) blockOnQuota(tx store.Tx, g *Queue, now time.Time) error {
	for _, id := range g.IDs {
		r, err := model.GetRecord(tx, id)
		// A held erasure keeps showing its hold: only an operator moves it on, and marking it
		// again on every flush would write an event each time.
		if err != nil || r == nil || r.BlockedOn == model.BlockedQuota || len(r.HeldBatches) > 0 {
			if err != nil {
				return err
			}
			continue
		}
		prev := r.State
		r.BlockedOn = model.BlockedQuota
		r.LastError = "LivePerson deletion quota for this month is spent"
		if err := SetNext(tx, &r.Erasure, time.Time{}); err != nil {
			return err
		}
		r.NextAttemptTime = NextMonth(now)
		if err := p.d.Transition(tx, r, prev, nil, now); err != nil {
			return err
		}
	}
	return nil
}

// batchPlan is a batch prepared outside the committer, from a read of the store: which erasures
// give which ids, their targets sealed anew, the batch's ids sealed and its key wrapped. The
// transaction that commits it (formBatch) does none of that work: it checks cheaply that nothing
// the plan was made from has changed (the batch sequence, and each record read, byte for byte),
// then writes.
type batchPlan struct {
	blocked bool     // the quota did not allow a batch: the queue's erasures wait for the month
	marked  bool     // blocked, and the queue as it is was marked so this month: nothing to write
	seq     uint64   // the batch sequence when read; the batch's id is seq+1
	batch   Batch    // the batch to store (ID, Account, Kind, AtRisk, Erasures, Sealed, Created)
	ids     []string // the batch's ids, sorted; sealed into batch.Sealed
	wrapped []byte   // the batch's key, wrapped
	members []batchMember
	gone    []seenRecord // queued erasures found gone or final: their queue entries are dropped
}

// batchMember is one erasure of a plan: the targets it gives the batch, marked, and sealed.
type batchMember struct {
	seenRecord
	targets []model.Target // all its targets, those taken carrying the batch's id
	sealed  []byte         // targets, sealed with the erasure's data key
	// link: some of its targets' ids are held by another live batch, which they join when the
	// plan is committed (their targets are then sealed again, in the transaction).
	link bool
}

// seenRecord is a record as the plan read it (raw nil: there was none).
type seenRecord struct {
	id  string
	raw []byte
}

// errStalePlan says a batch plan was made from a state that has changed since: it is made again.
var errStalePlan = errors.New("batch plan is stale")

// unchanged reports whether the record is still stored as it was read.
func (r seenRecord) unchanged(tx store.Tx) bool {
	return slices.Equal(tx.Get(schema.Erasures, []byte(r.id)), r.raw)
}

// prepareBatch plans one batch for an account and kind: up to 100 unique ids from the queue,
// at-risk and soonest-due erasures first. nil: the queue is empty.
func (p *Pipeline) prepareBatch(account string, kind model.TargetKind, atRisk bool, now time.Time) (*batchPlan, error) {
	return p.prepare(account, kind, atRisk, "", now)
}

// prepare is prepareBatch, of the records of erasure only when only is set.
func (p *Pipeline) prepare(account string, kind model.TargetKind, atRisk bool, only string, now time.Time) (*batchPlan, error) {
	var plan *batchPlan
	sealers := map[string]func([]model.Target) ([]byte, error){} // each member's, with its data key
	err := p.db.View(func(tx store.Tx) error {
		q, err := GetQuota(tx, account, Month(now))
		if err != nil {
			return err
		}
		g, err := QueueOf(tx, account, int32(kind))
		if err != nil || g == nil {
			return err
		}
		if !p.quotaAllows(q, account, atRisk, now) {
			if !q.Allows(p.cfg.Quota(account), p.cfg.Reserve, atRisk) {
				// Spent: the queue's erasures wait for the month (marked, unless this very
				// queue was marked so this month).
				plan = &batchPlan{blocked: true, marked: p.planned.spentMarked(account, g.Kind, Month(now), g.IDs)}
			}
			return nil // else held back by the month's pace: nothing to write
		}
		plan = &batchPlan{}
		order := g.Order()
		if v := tx.Get(schema.Ledger, schema.BatchSeqKey); v != nil {
			if plan.seq, err = store.ParseU64(v); err != nil {
				return err
			}
		}
		b := &plan.batch
		*b = Batch{ID: plan.seq + 1, Account: account, Kind: int32(kind), State: BatchIntent, Created: now}
		chosen := map[string]bool{}
		// A full batch still takes, from the erasures after it, the ids it already holds: they
		// cost nothing, and an erasure left behind with one would send it again.
		for _, i := range order {
			if only != "" && g.IDs[i] != only {
				continue
			}
			if len(plan.members)+len(plan.gone) >= p.maxMembers() {
				break // the rest go in the next batch: this one's transaction is full
			}
			seen := seenRecord{id: g.IDs[i], raw: tx.Get(schema.Erasures, []byte(g.IDs[i]))}
			r, err := model.GetRecord(tx, seen.id)
			if err != nil {
				return err
			}
			if r == nil || r.State.Final() {
				plan.gone = append(plan.gone, seen)
				continue
			}
			ts, err := p.d.Targets(tx, r)
			if err != nil {
				return err
			}
			took, link := false, false
			for j := range ts {
				t := &ts[j]
				if t.Kind != kind || t.Status != model.TargetQueued || t.Batch != 0 {
					continue
				}
				if !chosen[t.ID] {
					// An id another live batch holds joins it when the plan is committed.
					if lb, err := p.ch.linkedBatch(tx, account, kind, t.ID); err != nil || lb != nil {
						if err != nil {
							return err
						}
						link = true
						continue
					}
				}
				if !chosen[t.ID] && len(chosen) >= MaxBatchIDs {
					continue
				}
				chosen[t.ID] = true
				t.Batch = b.ID
				took = true
			}
			if !took && !link {
				continue
			}
			if sealers[r.ID], err = p.d.TargetSealer(tx, r); err != nil {
				return err
			}
			if took {
				b.AtRisk = b.AtRisk || r.AtRisk
				b.Erasures = append(b.Erasures, r.ID)
			}
			plan.members = append(plan.members, batchMember{seenRecord: seen, targets: ts, link: link})
		}
		for id := range chosen {
			plan.ids = append(plan.ids, id)
		}
		slices.Sort(plan.ids)
		return nil
	})
	if err != nil || plan == nil || len(plan.members) == 0 {
		return plan, err
	}
	return plan, p.sealPlan(plan, sealers)
}

// sealPlan does a plan's sealing, outside any transaction: each member's targets with its data
// key, and the batch's ids with a new key, wrapped.
func (p *Pipeline) sealPlan(plan *batchPlan, sealers map[string]func([]model.Target) ([]byte, error)) error {
	for i := range plan.members {
		m := &plan.members[i]
		var err error
		if m.sealed, err = sealers[m.id](m.targets); err != nil {
			return err
		}
	}
	b := &plan.batch
	var err error
	b.Sealed, plan.wrapped, err = p.d.SealBatchIDs(b.ID, plan.ids)
	return err
}
