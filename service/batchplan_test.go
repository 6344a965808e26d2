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

// TestBatchPlanOvertakenIsMadeAgain: a batch is planned and sealed outside the committer; when
// one of its erasures changes before the plan commits (here it is cancelled), the commit writes
// nothing (no batch, no quota unit, no sequence step) and the batch formed next leaves that
// erasure out, its ids and events those of the others alone.
func TestBatchPlanOvertakenIsMadeAgain(t *testing.T) {
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
	now := e.clock.Now()

	plan, err := e.p.prepareBatch("1234", KindEngagement, false, now)
	if err != nil || plan == nil || len(plan.members) != 2 {
		t.Fatalf("prepareBatch = %+v, %v; want a plan of both erasures", plan, err)
	}
	if _, err := e.svc.Cancel(ctx, a.Name(), "withdrawn"); err != nil {
		t.Fatal(err)
	}
	if formed, err := e.p.commitBatch(ctx, plan, "1234", KindEngagement, false, now); !errors.Is(err, errStalePlan) || formed {
		t.Fatalf("commit of an overtaken plan = %v, %v; want errStalePlan", formed, err)
	}
	if left, err := e.svc.QuotaLeft("1234", DefaultMonthlyQuota); err != nil || left != DefaultMonthlyQuota {
		t.Errorf("quota left after the refused commit = %d, %v; want %d (no unit taken)", left, err, DefaultMonthlyQuota)
	}
	e.wantState(b.Name(), StateScheduled)

	formed, err := e.p.formBatch(ctx, "1234", KindEngagement, false, now)
	if err != nil || !formed {
		t.Fatalf("formBatch = %v, %v; want a batch", formed, err)
	}
	var got *batch
	var ids []string
	err = e.db.View(func(tx store.Tx) error {
		if v := tx.Get(schema.Ledger, schema.BatchSeqKey); v == nil {
			return errors.New("no batch sequence")
		} else if seq, err := store.ParseU64(v); err != nil || seq != 1 {
			return errors.New("batch sequence is not 1: the refused plan took a number")
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
	if st := e.status(b.Name()); st.State != StateScheduled || len(st.TargetCounts) == 0 {
		t.Errorf("B after its batch formed: %s, counts %+v", st.State, st.TargetCounts)
	}
	e.wantState(a.Name(), StateCancelled)
	// The batch goes out and B completes as before.
	e.advance(time.Minute)
	e.wantState(b.Name(), StateSubmitted)
}
