package pipeline

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/erasured/erasured/store"
)

func TestEnqueue(t *testing.T) {
	db := openSchedule(t, nil)
	update := func(fn func(tx store.Tx) error) {
		t.Helper()
		if err := db.Update(context.Background(), fn); err != nil {
			t.Fatal(err)
		}
	}
	update(func(tx store.Tx) error {
		for _, w := range []struct {
			account string
			kind    int32
			id      string
			at      time.Time
		}{
			{"5678", 1, "e-3", t0}, {"1234", 2, "e-2", t0}, {"1234", 1, "e-2", t0}, {"1234", 1, "e-1", t0.Add(time.Hour)},
		} {
			if err := Enqueue(tx, w.account, w.kind, w.id, QueueEntry{Enqueued: w.at, Count: 1}); err != nil {
				return err
			}
		}
		// A later refresh keeps the first wait; a refresh to no records removes the entry.
		if err := Enqueue(tx, "1234", 1, "e-2", QueueEntry{Enqueued: t0.Add(2 * time.Hour), Count: 3}); err != nil {
			return err
		}
		return Enqueue(tx, "1234", 2, "e-2", QueueEntry{Enqueued: t0.Add(2 * time.Hour)})
	})
	var queues []*Queue
	db.View(func(tx store.Tx) (err error) { queues, err = ReadQueues(tx); return err })
	var got []string
	for _, q := range queues {
		for i, id := range q.IDs {
			got = append(got, q.Account+"/"+string(rune('0'+q.Kind))+"/"+id+"@"+q.Entries[i].Enqueued.Sub(t0).String())
		}
	}
	want := []string{"1234/1/e-1@1h0m0s", "1234/1/e-2@0s", "5678/1/e-3@0s"}
	if !slices.Equal(got, want) {
		t.Errorf("queues = %v, want %v", got, want)
	}
	var q *Queue
	db.View(func(tx store.Tx) (err error) { q, err = QueueOf(tx, "1234", 1); return err })
	if q == nil || !slices.Equal(q.IDs, []string{"e-1", "e-2"}) || q.Entries[1].Count != 3 {
		t.Errorf("QueueOf(1234, 1) = %+v", q)
	}
	update(func(tx store.Tx) error { return Dequeue(tx, "1234", "e-2", 1, 2, 3) })
	db.View(func(tx store.Tx) (err error) { q, err = QueueOf(tx, "1234", 1); return err })
	if q == nil || !slices.Equal(q.IDs, []string{"e-1"}) {
		t.Errorf("after Dequeue(e-2): %+v, want e-1 alone", q)
	}
	db.View(func(tx store.Tx) (err error) { q, err = QueueOf(tx, "1234", 2); return err })
	if q != nil {
		t.Errorf("QueueOf an emptied queue = %+v, want nil", q)
	}
}

func TestQueueDue(t *testing.T) {
	wait := 6 * time.Hour
	fresh := QueueEntry{Enqueued: t0, SafeBy: t0.Add(48 * time.Hour), Count: 40}
	tests := []struct {
		name        string
		entries     []QueueEntry
		now         time.Time
		total       int
		atRisk, due bool
	}{
		{"fresh", []QueueEntry{fresh, fresh}, t0.Add(time.Hour), 80, false, false},
		{"waited long enough", []QueueEntry{fresh}, t0.Add(wait), 40, false, true},
		{"safe submit time come", []QueueEntry{fresh, {Enqueued: t0, SafeBy: t0.Add(time.Hour), Count: 1}}, t0.Add(time.Hour), 41, false, true},
		{"at risk", []QueueEntry{fresh, {Enqueued: t0, SafeBy: t0.Add(48 * time.Hour), AtRisk: true, Count: 2}}, t0, 42, true, true},
	}
	for _, tt := range tests {
		total, atRisk, due := (&Queue{Entries: tt.entries}).Due(tt.now, wait)
		if total != tt.total || atRisk != tt.atRisk || due != tt.due {
			t.Errorf("%s: Due = %d, %v, %v; want %d, %v, %v", tt.name, total, atRisk, due, tt.total, tt.atRisk, tt.due)
		}
	}
}

func TestQueueOrder(t *testing.T) {
	q := &Queue{IDs: []string{"late", "soon", "risk", "soon-older", "tie"}, Entries: []QueueEntry{
		{Enqueued: t0, SafeBy: t0.Add(9 * time.Hour)},
		{Enqueued: t0.Add(time.Hour), SafeBy: t0.Add(2 * time.Hour)},
		{Enqueued: t0, SafeBy: t0.Add(99 * time.Hour), AtRisk: true},
		{Enqueued: t0, SafeBy: t0.Add(2 * time.Hour)},
		{Enqueued: t0, SafeBy: t0.Add(9 * time.Hour)},
	}}
	var got []string
	for _, i := range q.Order() {
		got = append(got, q.IDs[i])
	}
	if want := []string{"risk", "soon-older", "soon", "late", "tie"}; !slices.Equal(got, want) {
		t.Errorf("order = %v, want %v", got, want)
	}
}
