package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/erasured/erasured/service/pipeline"
	"github.com/erasured/erasured/store"
)

// TestSettleBatchWithRequest: the operator names B's real request; the batch follows it as if
// its create had answered, the erasure's hold is lifted, and it runs to a receipt.
func TestSettleBatchWithRequest(t *testing.T) {
	e, _, b, ours, _ := holdB(t)
	res, err := e.svc.SettleBatch(WithPrincipal(context.Background(), "operator"), "1234", 2, ours, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.BatchID != 2 || res.LPRequestID != ours || len(res.Erasures) != 1 || res.Erasures[0].Name() != b {
		t.Fatalf("SettleBatch = %+v, want batch 2 following %d with erasure %s", res, ours, b)
	}
	if got := res.Erasures[0]; got.State != StateSubmitted || got.BlockedOn != BlockedNone || len(got.HeldBatches) != 0 || got.LastError != "" {
		t.Errorf("settled erasure: %s, blocked %d, held %+v, last_error %q; want SUBMITTED and no hold",
			got.State, got.BlockedOn, got.HeldBatches, got.LastError)
	}
	e.settle()
	e.wantFollows(b, ours)
	e.runLivePersonTimeline()
	e.wantState(b, StateCompleted)
	e.wantCreates(2)
	if counts, err := e.svc.HeldBatchCounts(); err != nil || counts["1234"] != 0 {
		t.Errorf("HeldBatchCounts() = %v, %v; want none held", counts, err)
	}
}

// TestSettleBatchNotCreated: the operator found nothing at LivePerson; the batch is sent exactly
// once more, without reconciling (which would hold it again: the candidates are still there).
func TestSettleBatchNotCreated(t *testing.T) {
	e, _, b, _, _ := holdB(t)
	res, err := e.svc.SettleBatch(context.Background(), "1234", 2, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if res.LPRequestID != 0 || len(res.Erasures) != 1 {
		t.Fatalf("SettleBatch = %+v, want batch 2 to be sent, with its erasure", res)
	}
	if got := res.Erasures[0]; got.BlockedOn != BlockedNone || len(got.HeldBatches) != 0 {
		t.Errorf("settled erasure: blocked %d, held %+v; want no hold", got.BlockedOn, got.HeldBatches)
	}
	e.settle()
	e.wantCreates(3)
	e.wantFollows(b, e.lastRequest())
	e.advance(e.svc.cfg.PollInterval)
	e.wantCreates(3)
}

// TestSettleBatchNotCreatedLostAgain: skipping reconciliation holds for one send only. The
// resend's answer is lost as well, and that send is reconciled like any other, not repeated.
func TestSettleBatchNotCreatedLostAgain(t *testing.T) {
	e, _, b, _, _ := holdB(t)
	// The operator found that neither old candidate is the batch's: its next reconciliation
	// passes over them, and only the resend's own request can be the batch's.
	e.lp.mu.Lock()
	e.lp.loseAfter = true
	e.lp.mu.Unlock()
	e.clock.Advance(time.Hour)
	if _, err := e.svc.SettleBatch(context.Background(), "1234", 2, 0, true); err != nil {
		t.Fatal(err)
	}
	e.settle()
	e.wantCreates(3)
	e.advance(time.Minute)
	e.wantCreates(3)
	e.wantFollows(b, e.lastRequest())
}

// reserved lists the LivePerson requests held batches reserve against a batch of account 1234
// that is none of theirs.
func (e *docEnv) reserved() []int64 {
	e.t.Helper()
	var reserved []int64
	if err := e.db.View(func(tx storeTx) (err error) { reserved, err = pipeline.Reserved(tx, "1234", 999); return err }); err != nil {
		e.t.Fatal(err)
	}
	return reserved
}

// TestSettleBatchNotCreatedReleasesReservations: while B is held its candidates are reserved;
// settled as not created, they are not: the account's next batch whose answer is lost sees them
// as candidates again (here stamped within its window, so it cannot tell and is held).
func TestSettleBatchNotCreatedReleasesReservations(t *testing.T) {
	e, _, _, ours, other := holdB(t)
	if got := e.reserved(); !slices.Equal(got, []int64{ours, other}) {
		t.Fatalf("reserved while held = %v, want [%d %d]", got, ours, other)
	}
	if _, err := e.svc.SettleBatch(context.Background(), "1234", 2, 0, true); err != nil {
		t.Fatal(err)
	}
	if got := e.reserved(); len(got) != 0 {
		t.Fatalf("reserved after not_created = %v, want none", got)
	}
	e.settle()
	e.wantCreates(3)
	e.lp.chats = append(e.lp.chats, ChatRecord{EngagementID: "31", Start: e.ago(30 * time.Hour), CustomerIDs: []string{"C"}})
	e.lp.mu.Lock()
	e.lp.loseAfter = true
	e.lp.mu.Unlock()
	c := e.sendChat(3, "C")
	mine := e.lastRequest()
	e.lp.mu.Lock()
	e.lp.at[ours], e.lp.at[other] = e.clock.Now(), e.clock.Now()
	e.lp.mu.Unlock()
	e.advance(time.Minute)
	e.wantCreates(4)
	got := e.status(c)
	want := slices.Sorted(slices.Values([]int64{ours, other, mine}))
	if len(got.HeldBatches) != 1 || got.HeldBatches[0].BatchID != 3 || !slices.Equal(got.HeldBatches[0].Candidates, want) {
		t.Fatalf("C's erasure holds %+v, want batch 3 held with candidates %v", got.HeldBatches, want)
	}
}

// TestSettleBatchNotCreatedWaitsForTurn: a batch settled as not created takes its account's send
// turn like any other: while another batch is in flight it waits, then it is sent exactly once.
func TestSettleBatchNotCreatedWaitsForTurn(t *testing.T) {
	e, _, b, ours, other := holdB(t)
	e.lp.chats = append(e.lp.chats, ChatRecord{EngagementID: "31", Start: e.ago(30 * time.Hour), CustomerIDs: []string{"C"}})
	e.lp.mu.Lock()
	e.lp.loseAfter = true
	e.lp.mu.Unlock()
	c := e.sendChat(3, "C") // in flight: its answer is lost
	mine := e.lastRequest()
	e.wantCreates(3)
	// So that C's list can tell, B's old candidates are stamped long before C's first send.
	e.lp.mu.Lock()
	long := e.clock.Now().Add(-requestTimeMargin - time.Hour)
	e.lp.at[ours], e.lp.at[other] = long, long
	e.lp.mu.Unlock()
	if _, err := e.svc.SettleBatch(context.Background(), "1234", 2, 0, true); err != nil {
		t.Fatal(err)
	}
	e.settle()
	e.wantCreates(3)
	if got := e.status(b); got.LastError != turnWaitError {
		t.Errorf("settled erasure waiting: last_error %q, want %q", got.LastError, turnWaitError)
	}
	e.advance(time.Minute) // C claims its request; B goes
	e.wantCreates(4)
	e.wantFollows(c, mine)
	e.wantFollows(b, e.lastRequest())
	e.advance(e.svc.cfg.PollInterval)
	e.wantCreates(4)
}

func TestSettleBatchRefusals(t *testing.T) {
	e, _, _, ours, other := holdB(t)
	e.lp.echo[other] = true // LivePerson echoes this one's body: not B's records
	e.lp.fakeLivePerson.mu.Lock()
	for i := range e.lp.fakeLivePerson.requests {
		if e.lp.fakeLivePerson.requests[i].ID == other {
			e.lp.fakeLivePerson.requests[i].Kind, e.lp.fakeLivePerson.requests[i].IDs = KindEngagement, []string{"99"}
		}
	}
	e.lp.fakeLivePerson.mu.Unlock()
	var idA int64 = 1001 // batch 1's request (A's)
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		account    string
		batch      uint64
		lpID       int64
		notCreated bool
		getErr     error
		kind       ErrorKind
		reason     string
	}{
		{"no outcome given", "1234", 2, 0, false, nil, KindInvalid, "INVALID_OUTCOME"},
		{"both outcomes given", "1234", 2, ours, true, nil, KindInvalid, "INVALID_OUTCOME"},
		{"unknown batch", "1234", 99, ours, false, nil, KindNotFound, "BATCH_NOT_FOUND"},
		{"another account's batch", "9999", 2, ours, false, nil, KindNotFound, "BATCH_NOT_FOUND"},
		{"a batch that is not held", "1234", 1, idA, false, nil, KindFailedPrecondition, "BATCH_NOT_HELD"},
		{"not held, not created", "1234", 1, 0, true, nil, KindFailedPrecondition, "BATCH_NOT_HELD"},
		{"a request another batch follows", "1234", 2, idA, false, nil, KindFailedPrecondition, "LIVEPERSON_REQUEST_CLAIMED"},
		{"a request LivePerson does not have", "1234", 2, 4242, false, nil, KindFailedPrecondition, "LIVEPERSON_REQUEST_NOT_FOUND"},
		{"a request holding other records", "1234", 2, other, false, nil, KindFailedPrecondition, "LIVEPERSON_REQUEST_MISMATCH"},
		{"LivePerson unavailable", "1234", 2, ours, false, fmt.Errorf("%w: 503", ErrUnavailable), KindUnavailable, "LIVEPERSON_UNAVAILABLE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.lp.mu.Lock()
			e.lp.getErr = tc.getErr
			e.lp.mu.Unlock()
			_, err := e.svc.SettleBatch(ctx, tc.account, tc.batch, tc.lpID, tc.notCreated)
			var se *Error
			if !asError(err, &se) || se.Kind != tc.kind || se.Reason != tc.reason {
				t.Fatalf("SettleBatch(%s, %d, %d, %v) = %v, want kind %d reason %s", tc.account, tc.batch, tc.lpID, tc.notCreated, err, tc.kind, tc.reason)
			}
		})
	}
	e.lp.getErr = nil
	// Every refusal left the batch held.
	var b *batch
	if err := e.db.View(func(tx storeTx) (err error) { b, err = pipeline.GetBatch(tx, 2); return err }); err != nil || b.State != batchHeld {
		t.Fatalf("batch 2 after refusals: %+v, %v; want still HELD", b, err)
	}
	e.wantCreates(2)
}

// TestHeldErasureRefusesCancelAndKeepsItsBlock: an erasure whose batch is held cannot be
// cancelled (the request may exist at LivePerson), and a later step that finds something else to
// wait on does not hide the hold from Status.
func TestHeldErasureRefusesCancelAndKeepsItsBlock(t *testing.T) {
	e, _, b, _, _ := holdB(t)
	_, err := e.svc.Cancel(context.Background(), b, "changed our mind")
	var se *Error
	if !errors.As(err, &se) || se.Kind != KindFailedPrecondition || se.Reason != "DELETION_OUTCOME_UNKNOWN" {
		t.Fatalf("Cancel of a held erasure = %v, want FAILED_PRECONDITION DELETION_OUTCOME_UNKNOWN", err)
	}
	id, _ := ParseName(b)
	err = e.svc.db.Update(context.Background(), func(tx store.Tx) error {
		r, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		prev := r.State
		r.BlockedOn = BlockedLivePersonUnavailable
		return e.svc.transition(tx, r, erasureChange{from: prev, now: e.clock.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := e.svc.Status(context.Background(), b); got.BlockedOn != BlockedDeletionOutcomeUnknown || len(got.HeldBatches) != 1 {
		t.Errorf("after another block: blocked %d, held %+v; want the hold shown", got.BlockedOn, got.HeldBatches)
	}
}
