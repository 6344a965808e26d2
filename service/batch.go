package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/service/pipeline"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// batch is the pipeline's record of one LivePerson deletion request (see pipeline.Batch).
type batch = pipeline.Batch

// Batch states of our own, besides LivePerson's statuses (see package pipeline).
const (
	batchIntent    = pipeline.BatchIntent
	batchRejected  = pipeline.BatchRejected
	batchDissolved = pipeline.BatchDissolved
	batchHeld      = pipeline.BatchHeld
)

const maxBatchIDs = 100

func batchAAD(id uint64) []byte { return []byte("batch\x00" + strconv.FormatUint(id, 10)) }

// batchIDs unseals a batch's ids (sorted).
func (s *Service) batchIDs(tx store.Tx, b *batch) ([]string, error) {
	wrapped := tx.Get(schema.Keys, schema.BatchKeyName(b.ID))
	if wrapped == nil {
		return nil, errShredded
	}
	key, err := s.keys.unwrap(string(schema.BatchKeyName(b.ID)), wrapped)
	if err != nil {
		return nil, err
	}
	plain, err := open(key, b.Sealed, batchAAD(b.ID))
	if err != nil {
		return nil, err
	}
	var ids []string
	return ids, json.Unmarshal(plain, &ids)
}

// QuotaLeft is how many deletion requests the account may still create this month.
func (s *Service) QuotaLeft(account string, limit int) (int, error) {
	var left int
	err := s.db.View(func(tx store.Tx) error {
		q, err := pipeline.GetQuota(tx, account, pipeline.Month(s.now()))
		left = q.Left(limit)
		return err
	})
	return left, err
}

// flushQueues forms a batch for every account and kind whose queue is due: 100 ids waiting,
// the oldest waited batch_max_wait, a member's latest safe submit time has come, or a member is
// at risk. At-risk erasures go first.
func (p *Pipeline) flushQueues(ctx context.Context, now time.Time) error {
	var queues []*pipeline.Queue
	if err := p.s.db.View(func(tx store.Tx) (err error) { queues, err = pipeline.ReadQueues(tx); return err }); err != nil {
		return err
	}
	for _, g := range queues {
		total, atRisk, due := g.Due(now, p.cfg.BatchMaxWait)
		// A full batch goes at once, and as many full ones as the queue holds; a part-full one
		// only when due.
		for total >= maxBatchIDs || due {
			formed, err := p.formBatch(ctx, g.Account, TargetKind(g.Kind), atRisk, now)
			if err != nil {
				return err
			}
			if !formed {
				break
			}
			total -= maxBatchIDs
			due = false
		}
	}
	return nil
}

// formBatch commits one batch's intent for an account and kind: up to 100 unique ids from the
// queue, at-risk and soonest-due erasures first, and a quota unit. Sending is a separate step.
// The batch is planned and sealed outside the committer (prepareBatch); the transaction checks
// the plan still holds and writes it. A plan overtaken by another change is made again.
func (p *Pipeline) formBatch(ctx context.Context, account string, kind TargetKind, atRisk bool, now time.Time) (bool, error) {
	for range 3 {
		plan, err := p.prepareBatch(account, kind, atRisk, now)
		if err != nil || plan == nil || (!plan.blocked && len(plan.members) == 0 && len(plan.gone) == 0) {
			return false, err // nothing to write
		}
		formed, err := p.commitBatch(ctx, plan, account, kind, atRisk, now)
		if errors.Is(err, errStalePlan) {
			continue
		}
		if formed {
			p.Wake()
		}
		return formed, err
	}
	return false, nil // overtaken each time: the next pass forms it
}

// commitBatch writes a plan in one transaction: the queue entries of erasures gone, each
// member's targets and change, the batch, its key, a quota unit, the sequence and the batch's
// task. It returns errStalePlan, having written nothing, when what the plan was read from has
// changed. When the quota no longer allows a batch the queue's erasures wait for the month.
func (p *Pipeline) commitBatch(ctx context.Context, plan *batchPlan, account string, kind TargetKind, atRisk bool, now time.Time) (bool, error) {
	formed := false
	err := p.s.db.Update(ctx, func(tx store.Tx) error {
		formed = false
		month := pipeline.Month(now)
		q, err := pipeline.GetQuota(tx, account, month)
		if err != nil {
			return err
		}
		if !q.Allows(p.cfg.Quota(account), p.cfg.Reserve, atRisk) {
			g, err := pipeline.QueueOf(tx, account, int32(kind))
			if err != nil || g == nil {
				return err
			}
			return p.blockOnQuota(tx, g, now)
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
			if err := pipeline.Dequeue(tx, account, r.id, int32(kind)); err != nil {
				return err
			}
		}
		for _, m := range plan.members {
			r := new(record) // decoded afresh: the store may run this function more than once
			if err := json.Unmarshal(m.raw, r); err != nil {
				return fmt.Errorf("decode erasure %s: %w", m.id, err)
			}
			prev := r.State
			r.SealedTargets, r.TargetCounts = m.sealed, model.CountTargets(m.targets)
			if err := p.s.enqueueTargets(tx, r, m.targets, now); err != nil {
				return err
			}
			r.BlockedOn = BlockedNone
			if hasStatus(m.targets, TargetDeferredOpen) {
				r.BlockedOn = BlockedOpenConversations // the rest still waits for its conversation to close
			}
			r.BlockedOn = heldFirst(r, r.BlockedOn)
			if err := p.s.transition(tx, r, erasureChange{from: prev, now: now}); err != nil { // targets set above, sealed
				return err
			}
		}
		if len(plan.members) == 0 {
			return nil
		}
		b := plan.batch
		if err := tx.Put(schema.Keys, schema.BatchKeyName(b.ID), plan.wrapped); err != nil {
			return err
		}
		q.Used++
		if err := pipeline.PutQuota(tx, account, month, q); err != nil {
			return err
		}
		if err := tx.Put(schema.Ledger, schema.BatchSeqKey, store.U64(b.ID)); err != nil {
			return err
		}
		b.NextPoll = now
		if err := pipeline.Reschedule(tx, taskBatch+strconv.FormatUint(b.ID, 10), time.Time{}, now); err != nil {
			return err
		}
		formed = true
		return pipeline.PutBatch(tx, &b)
	})
	return formed, err
}

// blockOnQuota marks the queue's erasures as waiting for quota until the month turns.
func (p *Pipeline) blockOnQuota(tx store.Tx, g *pipeline.Queue, now time.Time) error {
	for _, id := range g.IDs {
		r, err := getRecord(tx, id)
		// A held erasure keeps showing its hold: only an operator moves it on, and marking it
		// again on every flush would write an event each time.
		if err != nil || r == nil || r.BlockedOn == BlockedQuota || len(r.HeldBatches) > 0 {
			if err != nil {
				return err
			}
			continue
		}
		prev := r.State
		r.BlockedOn = BlockedQuota
		r.LastError = "LivePerson deletion quota for this month is spent"
		if err := setNext(tx, r, time.Time{}); err != nil {
			return err
		}
		r.NextAttemptTime = pipeline.NextMonth(now)
		if err := p.s.transition(tx, r, erasureChange{from: prev, now: now}); err != nil {
			return err
		}
	}
	return nil
}
