package pipeline

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// unanswered is a LivePerson whose first create's answer is lost before LivePerson records it;
// it records every later create and lists what it recorded.
type unanswered struct {
	model.LivePerson
	mu      sync.Mutex
	creates int // create calls
	lists   int
	made    []model.Deletion
}

func (l *unanswered) CreateDeletion(_ context.Context, _ string, kind model.TargetKind, ids []string) (model.Deletion, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.creates++
	if l.creates == 1 {
		return model.Deletion{}, model.ErrOutcomeUnknown
	}
	d := model.Deletion{ID: int64(1000 + len(l.made)), Kind: kind, IDs: ids, Status: model.LPNotStarted}
	l.made = append(l.made, d)
	return d, nil
}

func (l *unanswered) ListDeletions(context.Context, string, time.Time, time.Time) ([]model.Deletion, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lists++
	return slices.Clone(l.made), nil
}

// listWaitEnv is a pipeline with one erasure ("a", one chat) whose batch 1 is formed and due at
// t0, over lp, with a clock the test moves.
type listWaitEnv struct {
	db  DB
	cfg Config
	p   *Pipeline
	now time.Time
}

const testCallTimeout = 30 * time.Second

func newListWaitEnv(t *testing.T, lp model.LivePerson) *listWaitEnv {
	t.Helper()
	e := &listWaitEnv{db: openSchedule(t, nil), now: t0}
	d := &fakeDomain{}
	e.cfg = Config{DB: e.db, Domain: d, LP: lp, Now: func() time.Time { return e.now }, Wake: make(chan struct{}, 1),
		Timing: Timing{PollInterval: time.Hour}, Quota: func(string) int { return 100 }, Reserve: 0.1,
		CallTimeout: testCallTimeout}
	e.p = New(e.cfg)
	err := e.db.Update(context.Background(), func(tx store.Tx) error {
		r := &model.Record{Erasure: model.Erasure{ID: "a", AccountID: "1234", State: model.StateScheduled}}
		ts := []model.Target{{Kind: model.KindEngagement, ID: "1234000001", Status: model.TargetQueued}}
		if err := d.Transition(tx, r, model.StateUnspecified, ts, t0); err != nil {
			return err
		}
		return e.p.ch.enqueueTargets(tx, r, ts, t0)
	})
	if err != nil {
		t.Fatal(err)
	}
	if formed, err := e.p.formBatch(context.Background(), "1234", model.KindEngagement, false, t0); err != nil || !formed {
		t.Fatalf("formBatch = %v, %v; want batch 1", formed, err)
	}
	return e
}

// step runs batch 1's step at the env's time.
func (e *listWaitEnv) step(t *testing.T) {
	t.Helper()
	if err := e.stepIn(context.Background()); err != nil {
		t.Fatalf("batch step at %v: %v", e.now, err)
	}
}

// stepIn runs batch 1's step under ctx.
func (e *listWaitEnv) stepIn(ctx context.Context) error { return e.p.step(ctx, TaskBatch+"1") }

// restart replaces the pipeline by a new one over the same store, as a process started again
// after a crash would.
func (e *listWaitEnv) restart() { e.p = New(e.cfg) }

// batch reads batch 1 and erasure a's last_error.
func (e *listWaitEnv) batch(t *testing.T) (*Batch, string) {
	t.Helper()
	var b *Batch
	var lastError string
	err := e.db.View(func(tx store.Tx) error {
		var err error
		if b, err = GetBatch(tx, 1); err != nil || b == nil {
			t.Fatalf("GetBatch(1) = %v, %v", b, err)
		}
		r, err := model.GetRecord(tx, "a")
		if r != nil {
			lastError = r.LastError
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b, lastError
}

// TestLostCreateWaitsForListing: a create whose answer is lost may still be processed by
// LivePerson, which lists it only once done. A reconciliation that finds nothing before the
// last send plus the call timeout and the allowance does not send: it schedules the next
// reconciliation for that moment, and the erasure says why it waits. Only then does an empty
// list mean that nothing was created, and the batch is sent: one request in all.
func TestLostCreateWaitsForListing(t *testing.T) {
	lp := &unanswered{}
	e := newListWaitEnv(t, lp)
	e.step(t) // the first send; its answer is lost
	b, _ := e.batch(t)
	if lp.creates != 1 || b.Sends != 1 || !b.LastSend.Equal(t0) || !b.NextPoll.After(t0) {
		t.Fatalf("after the lost send: %d creates, batch sends %d, last send %v, next step %v; want 1, 1, %v, later",
			lp.creates, b.Sends, b.LastSend, b.NextPoll, t0)
	}

	listedBy := t0.Add(testCallTimeout + ListingAllowance)
	e.now = b.NextPoll // the retry, well before listedBy
	if !e.now.Before(listedBy) {
		t.Fatalf("the retry comes at %v, not before %v: the test proves nothing", e.now, listedBy)
	}
	e.step(t)
	b, lastError := e.batch(t)
	if lp.lists != 1 || lp.creates != 1 {
		t.Fatalf("reconciliation before %v: %d lists, %d creates; want 1 list and no new create", listedBy, lp.lists, lp.creates)
	}
	if b.State != BatchIntent || !b.NextPoll.Equal(listedBy) || !b.ListWait.Equal(listedBy) || lastError != ListingWaitError {
		t.Errorf("batch after the early reconciliation: state %s, next step %v, list wait %v, erasure last_error %q; want INTENT, %v, %v, %q",
			b.State, b.NextPoll, b.ListWait, lastError, listedBy, listedBy, ListingWaitError)
	}
	e.db.View(func(tx store.Tx) error {
		if tx.Get(schema.Schedule, schema.ScheduleKey(listedBy, TaskBatch+"1")) == nil {
			t.Errorf("no schedule entry for the batch at %v", listedBy)
		}
		return nil
	})

	e.now = listedBy
	e.step(t)
	b, lastError = e.batch(t)
	if lp.lists != 2 || lp.creates != 2 || len(lp.made) != 1 {
		t.Fatalf("reconciliation at %v: %d lists, %d creates, %d requests made; want 2, 2, 1", listedBy, lp.lists, lp.creates, len(lp.made))
	}
	if b.LPID != lp.made[0].ID || b.State != model.LPNotStarted || !b.ListWait.IsZero() || lastError == ListingWaitError {
		t.Errorf("batch after the send: request %d, state %s, list wait %v, erasure last_error %q; want %d, NOT_STARTED, none, not the wait",
			b.LPID, b.State, b.ListWait, lastError, lp.made[0].ID)
	}
}

// TestStoredBatchWithoutLastSend: a batch stored before its last send was recorded has its
// sends long past; an empty list sends it at once.
func TestStoredBatchWithoutLastSend(t *testing.T) {
	lp := &unanswered{creates: 1} // its first create's answer was lost before this run
	e := newListWaitEnv(t, lp)
	err := e.db.Update(context.Background(), func(tx store.Tx) error {
		b, err := GetBatch(tx, 1)
		if err != nil {
			return err
		}
		b.Sends, b.FirstSend = 1, t0 // as an older version stored it: no last send
		return PutBatch(tx, b)
	})
	if err != nil {
		t.Fatal(err)
	}
	e.step(t)
	if b, _ := e.batch(t); lp.lists != 1 || len(lp.made) != 1 || b.LPID != lp.made[0].ID {
		t.Errorf("old batch reconciled: %d lists, %d requests made, batch follows %d; want 1, 1, the new request",
			lp.lists, len(lp.made), b.LPID)
	}
}
