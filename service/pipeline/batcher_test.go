package pipeline

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// TestBatchPlanOvertakenIsMadeAgain: a batch is planned and sealed outside the committer; when
// one of its erasures changes before the plan commits (here it is cancelled), the commit writes
// nothing (no batch, no quota unit, no sequence step) and the batch formed next leaves that
// erasure out, its ids those of the others alone. The fake's cancel leaves a's queue entry, so
// the plan made again finds erasure a final and drops the entry; a Cancel through the service, which
// dequeues, is tested in package service (TestBatchPlanOvertakenByCancel).
func TestBatchPlanOvertakenIsMadeAgain(t *testing.T) {
	db := openSchedule(t, nil)
	d := &fakeDomain{}
	p := New(Config{DB: db, Domain: d, Now: func() time.Time { return t0 }, Wake: make(chan struct{}, 1),
		Quota: func(string) int { return 100 }, Reserve: 0.1})
	ctx := context.Background()
	update := func(fn func(tx store.Tx) error) {
		t.Helper()
		if err := db.Update(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}
	// Two erasures of one account, each with one chat queued.
	for id, chat := range map[string]string{"a": "1234000001", "b": "1234000002"} {
		update(func(tx store.Tx) error {
			r := &model.Record{Erasure: model.Erasure{ID: id, AccountID: "1234", State: model.StateScheduled}}
			ts := []model.Target{{Kind: model.KindEngagement, ID: chat, Status: model.TargetQueued}}
			if err := d.Transition(tx, r, model.StateUnspecified, ts, t0); err != nil {
				return err
			}
			return p.ch.enqueueTargets(tx, r, ts, t0)
		})
	}

	plan, err := p.prepareBatch("1234", model.KindEngagement, false, t0)
	if err != nil || plan == nil || len(plan.members) != 2 {
		t.Fatalf("prepareBatch = %+v, %v; want a plan of both erasures", plan, err)
	}
	update(func(tx store.Tx) error { // a is cancelled meanwhile
		r, err := model.GetRecord(tx, "a")
		if err != nil {
			return err
		}
		r.State = model.StateCancelled
		return d.Transition(tx, r, model.StateScheduled, nil, t0)
	})
	if formed, err := p.commitBatch(ctx, plan, "1234", model.KindEngagement, false, t0); !errors.Is(err, errStalePlan) || formed {
		t.Fatalf("commit of an overtaken plan = %v, %v; want errStalePlan", formed, err)
	}
	db.View(func(tx store.Tx) error {
		if q, _ := GetQuota(tx, "1234", Month(t0)); q.Used != 0 {
			t.Errorf("quota used after the refused commit = %d, want 0 (no unit taken)", q.Used)
		}
		if v := tx.Get(schema.Ledger, schema.BatchSeqKey); v != nil {
			t.Error("the refused plan took a batch number")
		}
		return nil
	})

	formed, err := p.formBatch(ctx, "1234", model.KindEngagement, false, t0)
	if err != nil || !formed {
		t.Fatalf("formBatch = %v, %v; want a batch", formed, err)
	}
	var got *Batch
	var ids []string
	err = db.View(func(tx store.Tx) error {
		if v := tx.Get(schema.Ledger, schema.BatchSeqKey); v == nil {
			return errors.New("no batch sequence")
		} else if seq, err := store.ParseU64(v); err != nil || seq != 1 {
			return errors.New("batch sequence is not 1: the refused plan took a number")
		}
		if got, err = GetBatch(tx, 1); err != nil || got == nil {
			return errors.Join(err, errors.New("no batch 1"))
		}
		ids, err = d.BatchIDs(tx, got)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Erasures, []string{"b"}) || !slices.Equal(ids, []string{"1234000002"}) {
		t.Errorf("batch erasures %v ids %v; want only b's chat 1234000002", got.Erasures, ids)
	}
	db.View(func(tx store.Tx) error {
		r, _ := model.GetRecord(tx, "b")
		ts, _ := d.Targets(tx, r)
		if len(ts) != 1 || ts[0].Batch != 1 {
			t.Errorf("b's targets after its batch formed: %+v, want its chat in batch 1", ts)
		}
		return nil
	})
}
