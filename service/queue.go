package service

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// The queue holds, per account and record kind, the erasures that have targets waiting for a
// LivePerson deletion request. Key: account \x00 kind \x00 erasure id. The batcher packs the
// targets of many erasures of one account and kind into shared requests.
type queueEntry struct {
	Enqueued time.Time `json:"enqueued"` // when the oldest waiting target was queued
	SafeBy   time.Time `json:"safe_by"`  // the latest time a submit still meets the deadline
	AtRisk   bool      `json:"at_risk,omitempty"`
	Count    int       `json:"count"` // waiting targets of this kind
}

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
	for _, kind := range []TargetKind{KindEngagement, KindConversation, KindConsumer} {
		key := schema.QueueKey(r.AccountID, int32(kind), r.ID)
		if counts[kind] == 0 {
			if err := tx.Delete(schema.Queue, key); err != nil {
				return err
			}
			continue
		}
		e := queueEntry{Enqueued: now, SafeBy: safe, AtRisk: r.AtRisk, Count: counts[kind]}
		if v := tx.Get(schema.Queue, key); v != nil {
			var old queueEntry
			if err := json.Unmarshal(v, &old); err == nil && old.Enqueued.Before(now) {
				e.Enqueued = old.Enqueued
			}
		}
		v, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := tx.Put(schema.Queue, key, v); err != nil {
			return err
		}
	}
	return nil
}

// dequeueErasure removes every queue entry of an erasure (it is final).
func dequeueErasure(tx store.Tx, account, id string) error {
	for _, kind := range []TargetKind{KindEngagement, KindConversation, KindConsumer} {
		if err := tx.Delete(schema.Queue, schema.QueueKey(account, int32(kind), id)); err != nil {
			return err
		}
	}
	return nil
}

// queueGroup is the queue of one account and kind.
type queueGroup struct {
	account string
	kind    TargetKind
	ids     []string // erasure ids, in queue-key order
	entries []queueEntry
}

// readQueues reads the whole queue, grouped by account and kind.
func readQueues(tx store.Tx) ([]*queueGroup, error) {
	var groups []*queueGroup
	err := tx.Scan(schema.Queue, nil, func(k, v []byte) (bool, error) {
		parts := bytes.SplitN(k, []byte{0}, 3)
		if len(parts) != 3 {
			return false, fmt.Errorf("malformed queue key")
		}
		var kind TargetKind
		if _, err := fmt.Sscan(string(parts[1]), &kind); err != nil {
			return false, fmt.Errorf("malformed queue key kind: %w", err)
		}
		var e queueEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return false, err
		}
		if n := len(groups); n == 0 || groups[n-1].account != string(parts[0]) || groups[n-1].kind != kind {
			groups = append(groups, &queueGroup{account: string(parts[0]), kind: kind})
		}
		g := groups[len(groups)-1]
		g.ids = append(g.ids, string(parts[2]))
		g.entries = append(g.entries, e)
		return true, nil
	})
	return groups, err
}
