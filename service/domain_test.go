package service

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/erasured/erasured/service/pipeline"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// TestCompleteRefusesAnOpenErasure: the Service's Domain.Complete attaches a receipt only to
// an erasure its caller has moved to COMPLETED. Called on a SCHEDULED one (with targets that
// would otherwise allow a receipt), it errors and writes nothing, even when the transaction
// commits: no receipt in the chain, no chain head, none on the record.
func TestCompleteRefusesAnOpenErasure(t *testing.T) {
	e := newPipeEnv(t)
	e.seedCustomer()
	name := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123"))).Erasure.Name()
	e.settle()
	id := e.wantState(name, StateScheduled).ID
	var completeErr error
	var after *record
	err := e.db.Update(context.Background(), func(tx storeTx) error {
		r, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		ts, err := e.svc.targetsOf(tx, r)
		if err != nil {
			return err
		}
		for i := range ts {
			ts[i].Status = TargetVerified
		}
		completeErr = domain{e.svc}.Complete(tx, r, ts, e.clock.Now())
		after = r
		return nil // commit whatever Complete wrote
	})
	if err != nil {
		t.Fatal(err)
	}
	if completeErr == nil {
		t.Error("Complete of a SCHEDULED erasure = nil, want an error")
	}
	if after.Receipt != nil {
		t.Error("Complete of a SCHEDULED erasure attached a receipt to the record")
	}
	e.db.View(func(tx storeTx) error {
		if n := tx.Count(schema.Receipts); n != 0 {
			t.Errorf("%d receipts stored after Complete of a SCHEDULED erasure, want 0", n)
		}
		if tx.Get(schema.Ledger, schema.ReceiptHeadKey) != nil {
			t.Error("Complete of a SCHEDULED erasure moved the receipt chain's head")
		}
		return nil
	})
	e.wantState(name, StateScheduled)
}

// TestBatchPlanOvertakenByCancel: a batch is planned and sealed outside the committer; an
// erasure of the plan cancelled just before the plan's transaction commits takes no part in the
// batch. The plan's commit writes nothing (no quota unit, no batch number), the batch made
// again holds only the other erasure's chat, and that erasure is sent.
//
// The cancel comes through the Service, which dequeues the erasure, between a first run of the
// batch commit's transaction function (rolled back) and the run that commits: the first store
// write after the clock moves past the batching wait is that commit, as the pipeline's step
// forms the due batches (reads, a plan, then its commit) before anything else.
func TestBatchPlanOvertakenByCancel(t *testing.T) {
	e := newPipeEnv(t)
	ctx := context.Background()
	e.lp.chats = []ChatRecord{
		{EngagementID: "1234000001", Start: e.ago(40 * 24 * time.Hour), CustomerIDs: []string{"A-1"}},
		{EngagementID: "1234000002", Start: e.ago(30 * 24 * time.Hour), CustomerIDs: []string{"B-2"}},
	}
	a := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("A-1"))).Erasure
	b := e.submit(submitReq("00000000-0000-4000-8000-000000000002", "1234", customer("B-2"))).Erasure
	e.settle() // both resolved; their chats wait in the queue for a fuller batch
	e.wantState(a.Name(), StateScheduled)
	e.wantState(b.Name(), StateScheduled)

	// From here the service and its pipeline write through a store that runs each transaction
	// function twice; the cancel comes between the two runs of the next one.
	racing := &rerunStore{DB: e.db}
	e.svc.db = racing
	e.p = e.svc.NewPipeline(e.lp, e.cfg)
	rev := e.db.Rev()
	cancelled := false
	racing.setBetween(func() {
		if e.db.Rev() != rev {
			t.Error("a store write came before the batch commit")
		}
		if _, err := e.svc.Cancel(ctx, a.Name(), "withdrawn"); err != nil {
			t.Error(err)
		}
		cancelled = true
	})
	e.advance(e.cfg.BatchMaxWait)
	if !cancelled {
		t.Fatal("the pipeline made no store write after the batching wait")
	}

	e.wantState(a.Name(), StateCancelled)
	e.wantState(b.Name(), StateSubmitted)
	if left, err := e.svc.QuotaLeft("1234", DefaultMonthlyQuota); err != nil || left != DefaultMonthlyQuota-1 {
		t.Errorf("quota left = %d, %v; want %d (one unit, for B's batch alone)", left, err, DefaultMonthlyQuota-1)
	}
	var got *batch
	var ids []string
	err := e.db.View(func(tx storeTx) (err error) {
		if v := tx.Get(schema.Ledger, schema.BatchSeqKey); v == nil {
			return errors.New("no batch sequence")
		} else if seq, err := store.ParseU64(v); err != nil || seq != 1 {
			return errors.New("batch sequence is not 1: the overtaken plan took a number")
		}
		if got, err = pipeline.GetBatch(tx, 1); err != nil || got == nil {
			return errors.Join(err, errors.New("no batch 1"))
		}
		ids, err = e.svc.batchIDs(tx, got)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Erasures, []string{b.ID}) || !slices.Equal(ids, []string{"1234000002"}) {
		t.Errorf("batch erasures %v ids %v; want only %s's chat 1234000002", got.Erasures, ids, b.ID)
	}
	if bodies := e.lp.createdBodies(); len(bodies) != 1 {
		t.Errorf("created %d LivePerson requests, want 1 (B's chat)", len(bodies))
	}
}
