package pipeline

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// TestCommitRefusedJumpWritesNothing: a step's change that jumps from SCHEDULED to COMPLETED
// comes back from commit as the domain's refusal, and nothing of it is written: not the record,
// not the schedule entry the change made in the same transaction.
func TestCommitRefusedJumpWritesNothing(t *testing.T) {
	db := openSchedule(t, nil)
	d := &fakeDomain{}
	p := New(Config{DB: db, Domain: d, Now: func() time.Time { return t0 }, Wake: make(chan struct{}, 1)})
	d.seed(t, db, &model.Record{Erasure: model.Erasure{ID: "a", AccountID: "1234", State: model.StateScheduled}},
		[]model.Target{{Kind: model.KindEngagement, ID: "1234000001", Status: model.TargetQueued}})
	var before []byte
	db.View(func(tx store.Tx) error { before = bytes.Clone(tx.Get(schema.Erasures, []byte("a"))); return nil })

	snap, err := p.load("a")
	if err != nil || snap == nil {
		t.Fatalf("load = %v, %v", snap, err)
	}
	later := t0.Add(time.Hour)
	err = p.commit(context.Background(), snap, func(tx store.Tx, r *model.Record, ts []model.Target) ([]model.Target, error) {
		r.State = model.StateCompleted
		return ts, SetNext(tx, &r.Erasure, later)
	})
	if !errors.Is(err, ErrTransitionRefused) {
		t.Errorf("commit of SCHEDULED → COMPLETED = %v, want the refusal (ErrTransitionRefused)", err)
	}
	db.View(func(tx store.Tx) error {
		if got := tx.Get(schema.Erasures, []byte("a")); !bytes.Equal(got, before) {
			t.Errorf("stored erasure after the refused commit:\n%s\nwant it unchanged:\n%s", got, before)
		}
		if tx.Get(schema.Schedule, schema.ScheduleKey(later, TaskErasure+"a")) != nil {
			t.Error("the refused commit scheduled the erasure's next step")
		}
		return nil
	})
}
