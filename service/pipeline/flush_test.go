package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// backlogDomain is the fake domain with a Transition that keeps the backlog as the service's
// does (CountBacklog in the transaction of each change), and allows any move.
type backlogDomain struct{ fakeDomain }

func (d *backlogDomain) Transition(tx store.Tx, r *model.Record, _ model.State, ts []model.Target, now time.Time) error {
	old, err := model.GetRecord(tx, r.ID)
	if err != nil {
		return err
	}
	if ts != nil {
		v, err := json.Marshal(ts)
		if err != nil {
			return err
		}
		r.SealedTargets, r.TargetCounts = v, model.CountTargets(ts)
	}
	var was *model.Erasure
	if old != nil {
		was = &old.Erasure
	}
	if err := CountBacklog(tx, was, &r.Erasure, now); err != nil {
		return err
	}
	return putRecord(tx, r)
}

// flushEnv is a pipeline over backlogDomain whose flushes the test runs at times it picks.
// Deadlines are 30 days after arrival and the windows leave a latest safe submit time 4 days
// after it.
type flushEnv struct {
	t  *testing.T
	db DB
	d  *backlogDomain
	p  *Pipeline
}

const flushDue = 30 * 24 * time.Hour

// safeAfter is how long after its arrival an erasure's latest safe submit time comes.
const safeAfter = flushDue - (5+20+1)*24*time.Hour

func newFlushEnv(t *testing.T, policy FlushPolicy, maxWait time.Duration) *flushEnv {
	e := &flushEnv{t: t, db: openSchedule(t, nil), d: &backlogDomain{}}
	e.p = New(Config{DB: e.db, Domain: e.d, Now: func() time.Time { return t0 }, Wake: make(chan struct{}, 1),
		Timing:       Timing{PollInterval: time.Hour, CancelWindow: 5 * 24 * time.Hour, DeletionWindow: 20 * 24 * time.Hour, Margin: 24 * time.Hour},
		BatchMaxWait: maxWait, Flush: policy, Quota: func(string) int { return 100 }, Reserve: 0.1})
	return e
}

func (e *flushEnv) update(fn func(tx store.Tx) error) {
	e.t.Helper()
	if err := e.db.Update(context.Background(), fn); err != nil {
		e.t.Fatal(err)
	}
}

// arrive stores a new erasure id of account 1234, RECEIVED at `at`.
func (e *flushEnv) arrive(id string, at time.Time) {
	e.t.Helper()
	e.update(func(tx store.Tx) error {
		r := &model.Record{Erasure: model.Erasure{ID: id, AccountID: "1234", State: model.StateReceived,
			ReceivedTime: at, DueTime: at.Add(flushDue)}}
		return e.d.Transition(tx, r, model.StateUnspecified, nil, at)
	})
}

// resolve plans erasure id's chats at `at`: queued, the erasure SCHEDULED; atRisk marks it at
// risk as a forecast would, its latest safe time still ahead.
func (e *flushEnv) resolve(id string, at time.Time, atRisk bool, chats ...string) {
	e.t.Helper()
	e.update(func(tx store.Tx) error {
		r, err := model.GetRecord(tx, id)
		if err != nil {
			return err
		}
		var ts []model.Target
		for _, c := range chats {
			ts = append(ts, model.Target{Kind: model.KindEngagement, ID: c, Status: model.TargetFound})
		}
		prev := r.State
		if err := e.p.ch.ScheduleTargets(tx, r, ts, at); err != nil {
			return err
		}
		if atRisk {
			r.AtRisk = true
			if err := e.p.ch.enqueueTargets(tx, r, ts, at); err != nil {
				return err
			}
		}
		return e.d.Transition(tx, r, prev, ts, at)
	})
}

// chats names n chats of erasure id.
func chats(id string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s-%03d", id, i))
	}
	return out
}

// flush runs the batcher at `at` and returns every batch formed so far: its erasures, and how
// many ids it holds.
func (e *flushEnv) flush(at time.Time) []formed {
	e.t.Helper()
	if err := e.p.Flush(context.Background(), at); err != nil {
		e.t.Fatal(err)
	}
	var out []formed
	err := e.db.View(func(tx store.Tx) error {
		return tx.Scan(schema.Batches, nil, func(_, v []byte) (bool, error) {
			var b Batch
			if err := json.Unmarshal(v, &b); err != nil {
				return false, err
			}
			ids, err := e.d.BatchIDs(tx, &b)
			out = append(out, formed{erasures: b.Erasures, ids: len(ids)})
			return true, err
		})
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

type formed struct {
	erasures []string
	ids      int
}

func (f formed) String() string { return fmt.Sprintf("%v:%d", f.erasures, f.ids) }

func wantBatches(t *testing.T, when string, got []formed, want ...formed) {
	t.Helper()
	if !slices.EqualFunc(got, want, func(a, b formed) bool { return slices.Equal(a.erasures, b.erasures) && a.ids == b.ids }) {
		t.Errorf("%s: batches %v, want %v", when, got, want)
	}
}

// TestPackWaitsWhileResolving: a part-full batch waits while an erasure of its account is still
// being resolved, however long (no batch_max_wait), and leaves with that erasure's records once
// it is planned and the quiet period has passed. The old rule sends a alone at once.
func TestPackWaitsWhileResolving(t *testing.T) {
	e := newFlushEnv(t, FlushPack, 0)
	e.arrive("a", t0)
	e.arrive("b", t0.Add(30*time.Second))
	e.resolve("a", t0.Add(time.Minute), false, chats("a", 2)...)
	wantBatches(t, "b resolving, a queued 1 s", e.flush(t0.Add(time.Minute+time.Second)))
	wantBatches(t, "b resolving, a queued 2 days", e.flush(t0.Add(2*24*time.Hour)))
	e.resolve("b", t0.Add(2*24*time.Hour), false, chats("b", 1)...)
	wantBatches(t, "nothing on the way", e.flush(t0.Add(2*24*time.Hour)), formed{[]string{"a", "b"}, 3})
}

// TestPackLeavesAtSafeTime: with an erasure of the account resolving for ever, the batch leaves
// sendLead before its first member's latest safe submit time, and not a second before.
func TestPackLeavesAtSafeTime(t *testing.T) {
	e := newFlushEnv(t, FlushPack, 0)
	e.arrive("a", t0)
	e.arrive("b", t0.Add(time.Hour))
	e.arrive("c", t0.Add(2*time.Hour))
	e.resolve("a", t0.Add(time.Minute), false, chats("a", 1)...)
	e.resolve("b", t0.Add(2*time.Hour), false, chats("b", 1)...)
	safe := t0.Add(safeAfter - sendLead)
	wantBatches(t, "a second before a's send time", e.flush(safe.Add(-time.Second)))
	wantBatches(t, "at a's send time, sendLead before its safe time", e.flush(safe), formed{[]string{"a", "b"}, 2})
}

// TestPackLeavesWhenQuiet: once nothing is on its way to the queue, the batch of an account
// whose erasures come in bursts leaves when the account has had no new erasure for its quiet
// period (twice the longest gap between its arrivals), not before. An account whose erasures
// come hours apart, or that has one only, keeps the batch until its send time.
func TestPackLeavesWhenQuiet(t *testing.T) {
	for _, tt := range []struct {
		name     string
		arrivals []time.Duration
		quiet    time.Duration // after the last arrival; 0: not before the send time
	}{
		{"gaps of 10 and 4 minutes", []time.Duration{0, 10 * time.Minute, 14 * time.Minute}, 20 * time.Minute},
		{"a burst at once", []time.Duration{0, 0, time.Millisecond}, quietMin},
		{"one arrival", []time.Duration{0}, 0},
		{"a stream hours apart", []time.Duration{0, 5 * time.Hour, 8 * time.Hour}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newFlushEnv(t, FlushPack, 0)
			var ids []string
			for i, d := range tt.arrivals {
				ids = append(ids, fmt.Sprint("e", i))
				e.arrive(ids[i], t0.Add(d))
			}
			last := t0.Add(tt.arrivals[len(tt.arrivals)-1])
			for _, id := range ids {
				e.resolve(id, last, false, chats(id, 1)...)
			}
			if tt.quiet == 0 {
				send := t0.Add(safeAfter - sendLead) // the first arrival's send time
				wantBatches(t, "three days of silence", e.flush(last.Add(72*time.Hour)))
				wantBatches(t, "a second before the send time", e.flush(send.Add(-time.Second)))
				wantBatches(t, "at the send time", e.flush(send), formed{ids, len(ids)})
				return
			}
			wantBatches(t, "a second before the quiet period ends", e.flush(last.Add(tt.quiet-time.Second)))
			wantBatches(t, "at its end", e.flush(last.Add(tt.quiet)), formed{ids, len(ids)})
		})
	}
}

// TestAtRiskAloneDoesNotFlush: an at-risk erasure whose safe time is still ahead makes its
// batch leave at once under FlushMaxWait (the old rule), not under FlushPack: there it waits
// like any other while more may join.
func TestAtRiskAloneDoesNotFlush(t *testing.T) {
	for _, tt := range []struct {
		policy FlushPolicy
		want   []formed
	}{
		{FlushPack, nil},
		{FlushMaxWait, []formed{{[]string{"a"}, 1}}},
	} {
		e := newFlushEnv(t, tt.policy, 6*time.Hour)
		e.arrive("a", t0)
		e.arrive("b", t0)
		e.resolve("a", t0, true, chats("a", 1)...)
		wantBatches(t, fmt.Sprintf("policy %d, a at risk, b resolving", tt.policy), e.flush(t0.Add(time.Minute)), tt.want...)
	}
}

// TestBatchMaxWaitBounds: set, batch_max_wait bounds a part-full batch's wait under FlushPack.
func TestBatchMaxWaitBounds(t *testing.T) {
	e := newFlushEnv(t, FlushPack, 10*time.Minute)
	e.arrive("a", t0)
	e.arrive("b", t0)
	e.resolve("a", t0, false, chats("a", 1)...)
	wantBatches(t, "a second before batch_max_wait", e.flush(t0.Add(10*time.Minute-time.Second)))
	wantBatches(t, "at batch_max_wait", e.flush(t0.Add(10*time.Minute)), formed{[]string{"a"}, 1})
}

// TestFullBatchLeavesAtOnce: a full batch goes at once while more is on the way; the rest of
// the queue waits.
func TestFullBatchLeavesAtOnce(t *testing.T) {
	e := newFlushEnv(t, FlushPack, 0)
	e.arrive("a", t0)
	e.arrive("b", t0)
	e.arrive("c", t0)
	e.resolve("a", t0, false, chats("a", 60)...)
	e.resolve("b", t0, false, chats("b", 45)...)
	wantBatches(t, "105 queued, c resolving", e.flush(t0), formed{[]string{"a", "b"}, 100})
	wantBatches(t, "again", e.flush(t0.Add(time.Hour)), formed{[]string{"a", "b"}, 100})
}

// TestFlushPerErasure: the naive baseline sends each erasure's records in a request of their
// own as soon as they are queued, even while more is on the way.
func TestFlushPerErasure(t *testing.T) {
	e := newFlushEnv(t, FlushPerErasure, 0)
	e.arrive("a", t0)
	e.arrive("b", t0)
	e.arrive("c", t0)
	e.resolve("a", t0, false, chats("a", 2)...)
	e.resolve("b", t0, false, chats("b", 1)...)
	wantBatches(t, "a and b queued, c resolving", e.flush(t0), formed{[]string{"a"}, 2}, formed{[]string{"b"}, 1})
}

// TestBacklogNeverNegative: a store whose backlog was not kept (written before it was) may see
// an erasure leave the backlog that was never counted in it: the count stays at zero.
func TestBacklogNeverNegative(t *testing.T) {
	e := newFlushEnv(t, FlushPack, 0)
	e.update(func(tx store.Tx) error { // stored without counting
		return putRecord(tx, &model.Record{Erasure: model.Erasure{ID: "a", AccountID: "1234", State: model.StateResolving}})
	})
	e.resolve("a", t0, false, chats("a", 1)...)
	e.db.View(func(tx store.Tx) error {
		b, err := GetBacklog(tx, "1234")
		if err != nil || b.Resolving != 0 || b.Open != 0 {
			t.Errorf("backlog = %+v, %v; want no erasure on the way, not a negative count", b, err)
		}
		return nil
	})
}

// TestEnsureBacklogCounts: the first flush of a store without the backlog marker counts every
// stored erasure once (RECEIVED, RESOLVING and AWAITING_CONFIRMATION as resolving, an open one
// holding records on open conversations as open, final and scheduled ones not at all), replaces
// whatever counts the store held, keeps the arrivals seen, and sets the marker: later changes
// count from there.
func TestEnsureBacklogCounts(t *testing.T) {
	e := newFlushEnv(t, FlushPack, 0)
	open := []model.TargetCount{{Kind: model.KindConversation, Status: model.TargetDeferredOpen, Count: 2}}
	e.update(func(tx store.Tx) error {
		for _, r := range []model.Erasure{
			{ID: "a", AccountID: "1234", State: model.StateReceived},
			{ID: "b", AccountID: "1234", State: model.StateResolving},
			{ID: "c", AccountID: "1234", State: model.StateAwaitingConfirmation}, // waits for a person
			{ID: "h", AccountID: "1234", State: model.StateResolving, BlockedOn: model.BlockedIdentifierUnsearchable},
			{ID: "d", AccountID: "1234", State: model.StateScheduled, TargetCounts: open},
			{ID: "e", AccountID: "1234", State: model.StateScheduled},
			{ID: "f", AccountID: "1234", State: model.StateCompleted, TargetCounts: open},
			{ID: "g", AccountID: "5678", State: model.StateSubmitted},
		} {
			if err := putRecord(tx, &model.Record{Erasure: r}); err != nil {
				return err
			}
		}
		// Counts that are wrong: what a store changed before the marker may hold.
		if err := putBacklog(tx, "1234", Backlog{Resolving: 9, Arrivals: 3, Last: t0, Gap: time.Minute}); err != nil {
			return err
		}
		return putBacklog(tx, "5678", Backlog{Resolving: 2})
	})
	e.flush(t0)
	want := map[string]Backlog{"1234": {Resolving: 2, Open: 1, Arrivals: 3, Last: t0, Gap: time.Minute}, "5678": {}}
	check := func(when string) {
		t.Helper()
		e.db.View(func(tx store.Tx) error {
			for account, w := range want {
				if b, err := GetBacklog(tx, account); err != nil || b != w {
					t.Errorf("%s: backlog of %s = %+v, %v; want %+v", when, account, b, err, w)
				}
			}
			if tx.Get(schema.Ledger, backlogMarkerKey) == nil {
				t.Errorf("%s: no backlog marker", when)
			}
			return nil
		})
	}
	check("after the first flush")
	e.resolve("a", t0.Add(time.Second), false, chats("a", 1)...)
	e.flush(t0.Add(2 * time.Second)) // counts nothing again
	want["1234"] = Backlog{Resolving: 1, Open: 1, Arrivals: 3, Last: t0, Gap: time.Minute}
	check("after a was planned")
}

// TestBacklogArrivals: each new erasure is an arrival; Gap keeps the longest recent gap,
// decaying by half a week.
func TestBacklogArrivals(t *testing.T) {
	var b Backlog
	b.arrive(t0)
	if b.Arrivals != 1 || !b.Last.Equal(t0) || b.Gap != 0 || b.Quiet() != quietMax {
		t.Fatalf("after one arrival: %+v (quiet %v), want no gap known and the longest quiet", b, b.Quiet())
	}
	b.arrive(t0.Add(time.Hour))
	b.arrive(t0.Add(time.Hour + time.Minute))
	if b.Gap < time.Hour-time.Second || b.Gap > time.Hour || b.Quiet() != 2*b.Gap {
		t.Fatalf("after gaps of 1h and 1m: gap %v quiet %v, want 1h (less a minute's decay) and twice that", b.Gap, b.Quiet())
	}
	b.arrive(t0.Add(time.Hour + time.Minute + gapHalfLife))
	if b.Gap != gapHalfLife || b.Quiet() != quietMax { // the hour decayed to half an hour
		t.Fatalf("after a gap of a week: gap %v quiet %v, want a week and the longest quiet", b.Gap, b.Quiet())
	}
	b.arrive(t0.Add(time.Hour + time.Minute + 2*gapHalfLife + 24*time.Hour))
	if want := gapHalfLife + 24*time.Hour; b.Gap != want {
		t.Fatalf("gap %v, want the last gap %v (the week before decayed to half a week)", b.Gap, want)
	}
}

// TestSpentQuotaMarksNewcomers: with the month's quota spent, a due queue's erasures are marked
// waiting for quota once; the queue unchanged is not marked again (no write at each round), and
// an erasure that joins it is marked at the next flush.
func TestSpentQuotaMarksNewcomers(t *testing.T) {
	e := newFlushEnv(t, FlushPack, 0)
	e.update(func(tx store.Tx) error { return PutQuota(tx, "1234", Month(t0), Quota{Used: 100}) })
	blocked := func(id string) bool {
		t.Helper()
		var r *model.Record
		err := e.db.View(func(tx store.Tx) (err error) { r, err = model.GetRecord(tx, id); return err })
		if err != nil {
			t.Fatal(err)
		}
		return r.BlockedOn == model.BlockedQuota
	}
	e.arrive("a", t0)
	e.resolve("a", t0, false, chats("a", 1)...)
	send := t0.Add(safeAfter - sendLead)
	wantBatches(t, "a's send time, quota spent", e.flush(send))
	if !blocked("a") {
		t.Fatal("a is not marked waiting for quota")
	}
	if !e.p.planned.spentMarked("1234", int32(model.KindEngagement), Month(send), []string{"a"}) {
		t.Fatal("the marked queue is not remembered")
	}
	e.arrive("b", send)
	e.resolve("b", send, false, chats("b", 1)...)
	wantBatches(t, "b joined", e.flush(send.Add(time.Minute)))
	if !blocked("b") {
		t.Fatal("b, joining a queue marked before, is not marked waiting for quota")
	}
}

// TestBatchFitsTheStoresTransaction: on a store that bounds a transaction's operations (etcd's
// --max-txn-ops), a batch takes no more erasures than its transaction can write; the others go
// in the next one, at the next round. Without the bound the first batch's transaction would be refused at every
// round and nothing would ever be sent.
func TestBatchFitsTheStoresTransaction(t *testing.T) {
	e := newFlushEnv(t, FlushPack, 0)
	e.p.cfg.MaxTxnOps = batchTxnOps + 2*memberTxnOps // two erasures a batch
	ids := []string{"a", "b", "c", "d", "e"}
	for _, id := range ids {
		e.arrive(id, t0)
	}
	for _, id := range ids {
		e.resolve(id, t0, false, chats(id, 1)...)
	}
	at := t0.Add(safeAfter)
	var got []formed
	for range 3 { // a round forms one batch of a queue that is not full
		got = e.flush(at)
	}
	var members []string
	for _, b := range got {
		if len(b.erasures) > 2 {
			t.Errorf("batch of %v: more erasures than its transaction holds (2)", b.erasures)
		}
		members = append(members, b.erasures...)
	}
	if len(got) != 3 || len(members) != len(ids) {
		t.Errorf("batches %v, want every erasure's record sent, in 3 batches of at most 2 erasures", got)
	}
}
