package service

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/boltstore"
)

// countedEnv is a key environment whose service reports state changes to a tally kept across
// restarts, as the metrics do, and logs into a buffer.
type countedEnv struct {
	*keyEnv
	mu      sync.Mutex
	changes map[State]int // by the state hook: +1 for each move to a state, -1 for each move out
	log     bytes.Buffer
}

func newCountedEnv(t *testing.T) *countedEnv {
	e := &countedEnv{keyEnv: newKeyEnv(t), changes: map[State]int{}}
	e.close()
	e.reopen()
	return e
}

// reopen is keyEnv.reopen with the state hook and the log.
func (e *countedEnv) reopen() {
	e.t.Helper()
	db, err := boltstore.Open(e.path, boltstore.Options{Buckets: schema.Buckets})
	if err != nil {
		e.t.Fatal(err)
	}
	if e.keys, err = OpenKeyring(e.masterID, e.master, e.keyDir, testPeriod, e.clock.Now()); err != nil {
		e.t.Fatal(err)
	}
	hook := func(from, to State) {
		e.mu.Lock()
		defer e.mu.Unlock()
		if from != StateUnspecified {
			e.changes[from]--
		}
		e.changes[to]++
	}
	svc, err := New(db, e.keys, Config{Now: e.clock.Now, Retention: testRetention, OnStateChange: hook,
		Logger: slog.New(slog.NewTextHandler(&e.log, nil))})
	if err != nil {
		e.t.Fatal(err)
	}
	e.db, e.svc = db, svc
	e.p = svc.NewPipeline(e.lp, e.cfg)
}

func (e *countedEnv) restart() {
	e.t.Helper()
	e.close()
	e.reopen()
}

// recounted is what a full read of the erasure records counts: the oracle.
func (e *countedEnv) recounted() Stats {
	e.t.Helper()
	var st Stats
	if err := e.db.View(func(tx store.Tx) (err error) {
		st, err = recount(tx)
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	return st
}

// check fails unless the kept counts, and the state hook's tally, equal a recount; it returns
// the counts.
func (e *countedEnv) check(when string) Stats {
	e.t.Helper()
	got, err := e.svc.Stats()
	if err != nil {
		e.t.Fatalf("%s: Stats: %v", when, err)
	}
	want := e.recounted()
	if !got.equal(want) {
		e.t.Errorf("%s: counts %s, a recount %s", when, got, want)
	}
	e.mu.Lock()
	hooked := maps.Clone(e.changes)
	e.mu.Unlock()
	maps.DeleteFunc(hooked, func(_ State, n int) bool { return n == 0 })
	if !maps.Equal(hooked, want.ByState) {
		e.t.Errorf("%s: the state hook tallied %v, a recount %v", when, hooked, want.ByState)
	}
	return got
}

func (e *countedEnv) wantCounts(when string, byState map[State]int, atRisk int) {
	e.t.Helper()
	got := e.check(when)
	if !got.equal(Stats{ByState: byState, AtRisk: atRisk}) {
		e.t.Errorf("%s: counts %s, want %s", when, got, Stats{ByState: byState, AtRisk: atRisk})
	}
}

// TestCountsFollowEveryChange runs a mixed workload — Submits, a deduplicated Submit, every
// transition up to COMPLETED, a plan rejected, a cancel, a failure, at-risk flags set at Submit
// and flipped while an erasure waits, restarts, and the shredding of final erasures past the
// retention — and checks after each step that the counts kept with the changes, and the tally
// of the state hook the metrics count changes with, equal a full recount of the records.
func TestCountsFollowEveryChange(t *testing.T) {
	e := newCountedEnv(t)
	ctx := context.Background()
	e.seedCustomer()
	e.lp.convs = append(e.lp.convs, ConversationRecord{ConversationID: "open-1", Open: true, Start: e.ago(5 * time.Hour),
		ConsumerIDs: []string{"k"}, CustomerIDs: []string{"OPEN-1"}})
	for i, c := range []string{"MAN-1", "CAN-1", "LATE-1"} {
		e.lp.chats = append(e.lp.chats, ChatRecord{EngagementID: fmt.Sprint(1234000100 + i), Start: e.ago(30 * time.Hour), CustomerIDs: []string{c}})
	}
	e.wantCounts("empty", map[State]int{}, 0)

	done := e.submit(submitReq(rid(1), "1234", customer("ABC-123"))).Erasure.Name()
	if d := e.submit(submitReq(rid(2), "1234", customer("ABC-123"))); !d.Deduplicated {
		t.Fatal("the second Submit for ABC-123 was not deduplicated")
	}
	manual := submitReq(rid(3), "1234", customer("MAN-1"))
	manual.Confirmation = ConfirmationManual
	rejected := e.submit(manual).Erasure.Name()
	cancelled := e.submit(submitReq(rid(4), "1234", customer("CAN-1"))).Erasure.Name()
	late := submitReq(rid(5), "1234", customer("LATE-1")) // received 20 days ago: at risk from the start
	late.ReceivedTime, late.ReceivedTimeSet = e.ago(20*24*time.Hour), true
	e.submit(late)
	open := submitReq(rid(6), "1234", customer("OPEN-1")) // held on an open conversation
	open.Channels = []Channel{ChannelMessaging}
	openName := e.submit(open).Erasure.Name()
	e.wantCounts("after the Submits", map[State]int{StateReceived: 5}, 1)

	e.settle()
	e.wantState(rejected, StateAwaitingConfirmation)
	e.check("resolved")
	if _, err := e.svc.Resolve(ctx, rejected, &Decision{Reject: true, Reason: "not ours"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Cancel(ctx, cancelled, "withdrawn"); err != nil {
		t.Fatal(err)
	}
	e.check("after a reject and a cancel")
	e.restart()
	e.check("after a restart")

	// One erasure fails: every search is refused until it gives up.
	e.lp.searchErr = fmt.Errorf("%w: 400", ErrRejected)
	failed := e.submit(submitReq(rid(7), "1234", customer("FAIL-1"))).Erasure.Name()
	e.settle()
	for range maxRejections {
		e.advance(time.Minute)
	}
	e.wantState(failed, StateFailed)
	e.lp.searchErr = nil
	e.check("after a failure")

	e.advance(e.cfg.BatchMaxWait)
	e.wantState(done, StateSubmitted)
	e.runLivePersonTimeline()
	e.wantState(done, StateCompleted)
	e.check("after a completion")

	// The held erasure turns at risk while it waits, without changing state.
	if e.status(openName).AtRisk {
		t.Fatal("the held erasure is at risk from the start")
	}
	for i := 0; !e.status(openName).AtRisk; i++ {
		if i > 24*20 {
			t.Fatal("the held erasure never turned at risk")
		}
		e.advance(e.svc.cfg.PollInterval)
	}
	e.wantState(openName, StateScheduled)
	atRisk := e.check("after an at-risk flip").AtRisk
	if _, err := e.svc.Cancel(ctx, openName, "withdrawn"); err != nil {
		t.Fatal(err)
	}
	if got := e.check("after cancelling an erasure at risk").AtRisk; got != atRisk-1 {
		t.Errorf("at risk after cancelling one at risk: %d, want %d", got, atRisk-1)
	}
	e.restart()
	before := e.check("after a second restart")

	// Past the retention the final erasures are shredded: they stay, in their final states.
	e.clock.Advance(testRetention + time.Hour)
	if st := e.keep(); st.Shredded == 0 {
		t.Fatalf("the keeper shredded nothing: %+v", st)
	}
	if got := e.status(done); !got.Purged || got.State != StateCompleted {
		t.Errorf("%s after the retention: purged %v, state %s", done, got.Purged, got.State)
	}
	if got := e.check("after the shredding"); !got.equal(before) {
		t.Errorf("shredding changed the counts: %s, before %s", got, before)
	}
	if strings.Contains(e.log.String(), "disagreed") {
		t.Errorf("the keeper found the counts wrong:\n%s", e.log.String())
	}
}

// TestCountsCountedOnceForAnOlderStore: a store without counts (written before they were kept)
// is counted when it is opened, and counts from then on.
func TestCountsCountedOnceForAnOlderStore(t *testing.T) {
	e := newCountedEnv(t)
	e.submit(submitReq(rid(1), "1234", customer("A")))
	late := submitReq(rid(2), "1234", customer("B"))
	late.ReceivedTime, late.ReceivedTimeSet = e.ago(20*24*time.Hour), true
	name := e.submit(late).Erasure.Name()
	if _, err := e.svc.Cancel(context.Background(), name, "test"); err != nil {
		t.Fatal(err)
	}
	e.submit(submitReq(rid(3), "1234", customer("C")))
	want := e.check("before")
	if err := e.db.Update(context.Background(), func(tx store.Tx) error { return tx.Delete(schema.Ledger, schema.CountsKey) }); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Stats(); err == nil {
		t.Error("Stats without stored counts: no error")
	}
	e.restart()
	if got := e.check("reopened"); !got.equal(want) {
		t.Errorf("counted at open: %s, want %s", got, want)
	}
	if !strings.Contains(e.log.String(), "counted the stored erasures once") {
		t.Errorf("the count at open was not logged:\n%s", e.log.String())
	}
	e.submit(submitReq(rid(4), "1234", customer("D")))
	e.check("a Submit later")
}

// TestKeeperCorrectsCountsThatDrifted: counts changed behind the service's back (by a binary that
// did not keep them) are found wrong by the next keeper run, logged and corrected.
func TestKeeperCorrectsCountsThatDrifted(t *testing.T) {
	e := newCountedEnv(t)
	e.submit(submitReq(rid(1), "1234", customer("A")))
	e.submit(submitReq(rid(2), "1234", customer("B")))
	want := e.check("before")
	wrong := Stats{ByState: map[State]int{StateCompleted: 7}, AtRisk: 3}
	if err := e.db.Update(context.Background(), func(tx store.Tx) error { return putCounts(tx, wrong) }); err != nil {
		t.Fatal(err)
	}
	e.keep()
	if got, err := e.svc.Stats(); err != nil || !got.equal(want) {
		t.Errorf("after the keeper: %s, %v; want %s", got, err, want)
	}
	if !strings.Contains(e.log.String(), "disagreed") {
		t.Errorf("the correction was not logged:\n%s", e.log.String())
	}
}
