package service

import (
	"time"

	"github.com/erasured/erasured/service/pipeline"
	"github.com/erasured/erasured/store"
)

// queuedKinds are the record kinds the queue holds: each has a queue per account (see package
// pipeline), and a batch holds records of one kind.
var queuedKinds = []int32{int32(KindEngagement), int32(KindConversation), int32(KindConsumer)}

// enqueueTargets puts every QUEUED target of r that is not in a batch yet in the queue,
// refreshing the erasure's entry for each kind (or removing it when none waits).
func (s *Service) enqueueTargets(tx store.Tx, r *record, ts []Target, now time.Time) error {
	counts := map[TargetKind]int{}
	for _, t := range ts {
		if t.Status == TargetQueued && t.Batch == 0 {
			counts[t.Kind]++
		}
	}
	safe := r.DueTime.Add(-(s.cfg.CancelWindow + s.cfg.DeletionWindow + s.cfg.Margin))
	for _, kind := range queuedKinds {
		e := pipeline.QueueEntry{Enqueued: now, SafeBy: safe, AtRisk: r.AtRisk, Count: counts[TargetKind(kind)]}
		if err := pipeline.Enqueue(tx, r.AccountID, kind, r.ID, e); err != nil {
			return err
		}
	}
	return nil
}

// dequeueErasure removes every queue entry of an erasure (it is final).
func dequeueErasure(tx store.Tx, account, id string) error {
	return pipeline.Dequeue(tx, account, id, queuedKinds...)
}
