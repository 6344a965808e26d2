package service

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/erasured/erasured/service/pipeline"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// batchPlan is a batch prepared outside the committer, from a read of the store: which erasures
// give which ids, their targets sealed anew, the batch's ids sealed and its key wrapped. The
// transaction that commits it (formBatch) does none of that work: it checks cheaply that nothing
// the plan was made from has changed (the batch sequence, and each record read, byte for byte),
// then writes.
type batchPlan struct {
	blocked bool     // the quota did not allow a batch: the queue's erasures wait for the month
	seq     uint64   // the batch sequence when read; the batch's id is seq+1
	batch   batch    // the batch to store (ID, Account, Kind, AtRisk, Erasures, Sealed, Created)
	ids     []string // the batch's ids, sorted; sealed into batch.Sealed
	wrapped []byte   // the batch's key, wrapped
	members []batchMember
	gone    []seenRecord // queued erasures found gone or final: their queue entries are dropped
}

// batchMember is one erasure of a plan: the targets it gives the batch, marked, and sealed.
type batchMember struct {
	seenRecord
	targets []Target // all its targets, those taken carrying the batch's id
	sealed  []byte   // targets, sealed with the erasure's data key
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
func (p *Pipeline) prepareBatch(account string, kind TargetKind, atRisk bool, now time.Time) (*batchPlan, error) {
	var plan *batchPlan
	keys := map[string][]byte{} // each member's data key
	err := p.s.db.View(func(tx store.Tx) error {
		q, err := pipeline.GetQuota(tx, account, pipeline.Month(now))
		if err != nil {
			return err
		}
		g, err := pipeline.QueueOf(tx, account, int32(kind))
		if err != nil || g == nil {
			return err
		}
		plan = &batchPlan{}
		if !q.Allows(p.cfg.Quota(account), p.cfg.Reserve, atRisk) {
			plan.blocked = true
			return nil
		}
		order := g.Order()
		if v := tx.Get(schema.Ledger, schema.BatchSeqKey); v != nil {
			if plan.seq, err = store.ParseU64(v); err != nil {
				return err
			}
		}
		b := &plan.batch
		*b = batch{ID: plan.seq + 1, Account: account, Kind: int32(kind), State: batchIntent, Created: now}
		chosen := map[string]bool{}
		for _, i := range order {
			if len(chosen) >= maxBatchIDs {
				break
			}
			seen := seenRecord{id: g.IDs[i], raw: tx.Get(schema.Erasures, []byte(g.IDs[i]))}
			r, err := getRecord(tx, seen.id)
			if err != nil {
				return err
			}
			if r == nil || r.State.Final() {
				plan.gone = append(plan.gone, seen)
				continue
			}
			ts, err := p.s.targetsOf(tx, r)
			if err != nil {
				return err
			}
			took := false
			for j := range ts {
				t := &ts[j]
				if t.Kind != kind || t.Status != TargetQueued || t.Batch != 0 {
					continue
				}
				if !chosen[t.ID] && len(chosen) >= maxBatchIDs {
					continue
				}
				chosen[t.ID] = true
				t.Batch = b.ID
				took = true
			}
			if !took {
				continue
			}
			if keys[r.ID], err = p.s.dataKeyOf(tx, r); err != nil {
				return err
			}
			b.AtRisk = b.AtRisk || r.AtRisk
			b.Erasures = append(b.Erasures, r.ID)
			plan.members = append(plan.members, batchMember{seenRecord: seen, targets: ts})
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
	return plan, p.sealPlan(plan, keys)
}

// sealPlan does a plan's sealing, outside any transaction: each member's targets with its data
// key, and the batch's ids with a new key, wrapped.
func (p *Pipeline) sealPlan(plan *batchPlan, keys map[string][]byte) error {
	for i := range plan.members {
		m := &plan.members[i]
		plain, err := json.Marshal(m.targets)
		if err != nil {
			return err
		}
		if m.sealed, err = seal(keys[m.id], plain, targetsAAD(m.id)); err != nil {
			return err
		}
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	plain, err := json.Marshal(plan.ids)
	if err != nil {
		return err
	}
	b := &plan.batch
	if b.Sealed, err = seal(key, plain, batchAAD(b.ID)); err != nil {
		return err
	}
	plan.wrapped, err = p.s.keys.wrapKey(string(schema.BatchKeyName(b.ID)), key)
	return err
}
