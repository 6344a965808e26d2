package pipeline

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// The queue holds, per account and record kind, the erasures that have records waiting for a
// LivePerson deletion request (key: account 0 kind 0 erasure id). The batcher packs the waiting
// records of many erasures of one account and kind into shared requests.

// QueueEntry is one erasure's waiting records of one kind.
type QueueEntry struct {
	Enqueued time.Time `json:"enqueued"` // when the oldest waiting record was queued
	SafeBy   time.Time `json:"safe_by"`  // the latest time a submit still meets the deadline
	AtRisk   bool      `json:"at_risk,omitempty"`
	Count    int       `json:"count"` // waiting records of this kind
}

// Queue is the queue of one account and kind, in key order: IDs[i] is the erasure of
// Entries[i].
type Queue struct {
	Account string
	Kind    int32
	IDs     []string
	Entries []QueueEntry
}

// Enqueue sets the entry of erasure id in the queue of account and kind, or removes it when
// e.Count is 0. An entry that replaces one keeps the older one's Enqueued time: a record's wait
// counts from when it was first queued.
func Enqueue(tx store.Tx, account string, kind int32, id string, e QueueEntry) error {
	key := schema.QueueKey(account, kind, id)
	if e.Count == 0 {
		return tx.Delete(schema.Queue, key)
	}
	if v := tx.Get(schema.Queue, key); v != nil {
		var old QueueEntry
		if err := json.Unmarshal(v, &old); err == nil && old.Enqueued.Before(e.Enqueued) {
			e.Enqueued = old.Enqueued
		}
	}
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return tx.Put(schema.Queue, key, v)
}

// Dequeue removes the entries of erasure id from the queues of account and the given kinds.
func Dequeue(tx store.Tx, account, id string, kinds ...int32) error {
	for _, kind := range kinds {
		if err := tx.Delete(schema.Queue, schema.QueueKey(account, kind, id)); err != nil {
			return err
		}
	}
	return nil
}

// ReadQueues reads the whole queue, one Queue per account and kind, in key order.
func ReadQueues(tx store.Tx) ([]*Queue, error) { return scanQueues(tx, nil) }

// scanQueues reads the queue entries whose keys start with prefix (nil: all), one Queue per
// account and kind, in key order.
func scanQueues(tx store.Tx, prefix []byte) ([]*Queue, error) {
	var queues []*Queue
	err := tx.Scan(schema.Queue, prefix, func(k, v []byte) (bool, error) {
		if !bytes.HasPrefix(k, prefix) {
			return false, nil
		}
		parts := bytes.SplitN(k, []byte{0}, 3)
		if len(parts) != 3 {
			return false, fmt.Errorf("malformed queue key")
		}
		var kind int32
		if _, err := fmt.Sscan(string(parts[1]), &kind); err != nil {
			return false, fmt.Errorf("malformed queue key kind: %w", err)
		}
		var e QueueEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return false, err
		}
		if n := len(queues); n == 0 || queues[n-1].Account != string(parts[0]) || queues[n-1].Kind != kind {
			queues = append(queues, &Queue{Account: string(parts[0]), Kind: kind})
		}
		q := queues[len(queues)-1]
		q.IDs = append(q.IDs, string(parts[2]))
		q.Entries = append(q.Entries, e)
		return true, nil
	})
	return queues, err
}

// QueueOf reads the queue of one account and kind; nil when it is empty. It reads only that
// queue's entries.
func QueueOf(tx store.Tx, account string, kind int32) (*Queue, error) {
	queues, err := scanQueues(tx, schema.QueuePrefix(account, kind))
	if err != nil || len(queues) == 0 {
		return nil, err
	}
	return queues[0], nil
}

// Due sums up the queue for the batcher at now as the FlushMaxWait policy does: how many
// records wait, whether one of them is at risk, and whether a batch is due though not full: a
// member is at risk, its latest safe submit time has come, or it has waited maxWait (no bound
// when maxWait is 0 or less).
func (q *Queue) Due(now time.Time, maxWait time.Duration) (total int, atRisk, due bool) {
	for _, e := range q.Entries {
		total += e.Count
		atRisk = atRisk || e.AtRisk
		due = due || e.AtRisk || !now.Before(e.SafeBy) || (maxWait > 0 && !now.Before(e.Enqueued.Add(maxWait)))
	}
	return total, atRisk, due
}

// QueueSummary sums up a queue for the batcher.
type QueueSummary struct {
	Total     int       // records waiting
	AtRisk    bool      // one of its erasures is at risk
	FirstSafe time.Time // the earliest latest safe submit time of its erasures
	Oldest    time.Time // when its longest-waiting record was queued
	Newest    time.Time // when its most recently queued erasure's oldest record was queued
}

// Summarize sums up the queue (zero times when it is empty).
func (q *Queue) Summarize() QueueSummary {
	var s QueueSummary
	for i, e := range q.Entries {
		s.Total += e.Count
		s.AtRisk = s.AtRisk || e.AtRisk
		if i == 0 || e.SafeBy.Before(s.FirstSafe) {
			s.FirstSafe = e.SafeBy
		}
		if i == 0 || e.Enqueued.Before(s.Oldest) {
			s.Oldest = e.Enqueued
		}
		if e.Enqueued.After(s.Newest) {
			s.Newest = e.Enqueued
		}
	}
	return s
}

// Order is the order in which the batcher takes the queue's erasures: those at risk first,
// then by latest safe submit time, then by wait; the queue's key order among equals. It
// returns positions in IDs and Entries.
func (q *Queue) Order() []int {
	order := make([]int, len(q.IDs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		ea, eb := q.Entries[a], q.Entries[b]
		if ea.AtRisk != eb.AtRisk {
			if ea.AtRisk {
				return -1
			}
			return 1
		}
		return cmp.Or(ea.SafeBy.Compare(eb.SafeBy), ea.Enqueued.Compare(eb.Enqueued))
	})
	return order
}
