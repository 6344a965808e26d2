package service

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/erasured/erasured/service/pipeline"
)

// toDeleting submits an erasure of customer ABC-123 and runs it until its two LivePerson
// requests (one for chats, one for conversations) are IN_PROGRESS and the erasure DELETING; it
// returns the erasure's name.
func (e *pipeEnv) toDeleting() string {
	e.t.Helper()
	e.seedCustomer()
	name := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123"))).Erasure.Name()
	e.settle()
	e.advance(e.cfg.BatchMaxWait)
	e.wantState(name, StateSubmitted)
	e.lp.advance(LPNotStarted, LPInProgress)
	e.advance(e.svc.cfg.PollInterval)
	e.wantState(name, StateDeleting)
	return name
}

// gets returns how many times LivePerson was asked for a request since the last call.
func (e *pipeEnv) getsSince(last *int) int {
	e.lp.mu.Lock()
	defer e.lp.mu.Unlock()
	n := e.lp.gets - *last
	*last = e.lp.gets
	return n
}

// tableGap removes the move from → to from the transition table until the test ends (or the
// returned restore runs), as a gap in the table would.
func tableGap(t *testing.T, from, to State) (restore func()) {
	saved := transitions[from]
	transitions[from] = slices.DeleteFunc(slices.Clone(saved), func(s State) bool { return s == to })
	restore = func() { transitions[from] = saved }
	t.Cleanup(restore)
	return restore
}

// TestCanceledAfterInProgressRequeues: LivePerson reports CANCELED for a request last seen
// IN_PROGRESS. The erasure moves from DELETING back to SCHEDULED, its records are sent again in
// a new request, and it completes; LivePerson is polled a bounded number of times (a refused
// move used to retry at once, polling thousands of times until the pipeline gave up).
func TestCanceledAfterInProgressRequeues(t *testing.T) {
	e := newPipeEnv(t)
	name := e.toDeleting()
	gets := 0
	e.getsSince(&gets)
	e.lp.advance(LPInProgress, LPCanceled)
	e.advance(e.svc.cfg.PollInterval)
	e.wantState(name, StateScheduled)
	if n := e.getsSince(&gets); n != 2 {
		t.Errorf("the poll that saw both requests CANCELED asked LivePerson %d times, want 2", n)
	}
	e.advance(e.cfg.BatchMaxWait)
	e.wantState(name, StateSubmitted)
	if bodies := e.lp.createdBodies(); len(bodies) != 4 || !slices.Equal(bodies[:2], bodies[2:]) {
		t.Errorf("created requests = %q, want the same two sent twice", bodies)
	}
	e.lp.advance(LPNotStarted, LPDone)
	e.advance(5 * 24 * time.Hour)
	e.wantState(name, StateCompleted)
}

// TestBackwardPollKeepsDeleting: a poll that reports NOT_STARTED for a request last seen
// IN_PROGRESS changes nothing: the erasure stays DELETING with its requests IN_PROGRESS, is
// polled at the usual interval with nothing refused, and completes once the request is DONE.
func TestBackwardPollKeepsDeleting(t *testing.T) {
	e := newPipeEnv(t)
	name := e.toDeleting()
	l := watchIncidents(e)
	before := e.status(name)
	gets := 0
	e.getsSince(&gets)
	e.lp.advance(LPInProgress, LPNotStarted)
	for range 3 {
		e.advance(e.svc.cfg.PollInterval)
	}
	got := e.wantState(name, StateDeleting)
	if got.Revision != before.Revision {
		t.Errorf("after the backward polls the erasure is at revision %d, want %d (unchanged)", got.Revision, before.Revision)
	}
	for _, q := range got.LPRequests {
		if q.Status != LPInProgress {
			t.Errorf("request %d shows %s, want IN_PROGRESS (a status does not go back)", q.ID, q.Status)
		}
	}
	wantIncidents(t, l, IncidentTransitionRefused, nil)
	if n := e.getsSince(&gets); n != 6 {
		t.Errorf("3 poll intervals asked LivePerson %d times about 2 requests, want 6", n)
	}
	e.lp.advance(LPNotStarted, LPDone)
	e.advance(e.svc.cfg.PollInterval)
	e.advance(5 * 24 * time.Hour)
	e.wantState(name, StateCompleted)
}

// TestRefusedPollBacksOff: when the table refuses the move a poll calls for (here a gap:
// DELETING → VERIFYING removed), the poll backs off instead of retrying at once, and the
// refusal is reported as an incident without personal data. Once the table allows the move
// again, the erasure goes on.
func TestRefusedPollBacksOff(t *testing.T) {
	e := newPipeEnv(t)
	name := e.toDeleting()
	l := watchIncidents(e)
	restore := tableGap(t, StateDeleting, StateVerifying)
	gets := 0
	e.getsSince(&gets)
	e.lp.advance(LPInProgress, LPDone)
	e.advance(e.svc.cfg.PollInterval)
	e.wantState(name, StateDeleting)
	// Each request is asked once; the first DONE leaves the erasure DELETING (the other request
	// is still IN_PROGRESS), the second calls for VERIFYING, which is refused.
	if n := e.getsSince(&gets); n != 2 {
		t.Errorf("polls of 2 requests, one refused, asked LivePerson %d times, want 2", n)
	}
	refused := Incident{Kind: IncidentTransitionRefused, Account: "1234", Step: "poll", Reason: "state_transition_not_allowed"}
	wantIncidents(t, l, IncidentTransitionRefused, []Incident{refused}, "ABC-123", "1234000001", "c-0001")
	// Backing off: the refused poll is retried 5, 10, 15 s … apart, so a minute in 5 s steps
	// sees about five retries (at 5, 15, 30, 45 and 60 s), each refused again.
	for range 12 {
		e.advance(5 * time.Second)
	}
	if n := e.getsSince(&gets); n < 3 || n > 6 {
		t.Errorf("a minute of backing off asked LivePerson %d times, want 3 to 6", n)
	}
	restore()
	e.advance(e.svc.cfg.PollInterval)
	e.advance(5 * 24 * time.Hour)
	e.wantState(name, StateCompleted)
}

// TestRefusedCreateHoldsBatch: when the table refuses the move the answer to our own create
// calls for (a gap: SCHEDULED → SUBMITTED removed), the batch does not keep its account's send
// turn while it retries: it is held with the request it created as its one candidate, the
// refusal is reported, and an operator's SettleBatch with that request moves it on once the
// table allows it.
func TestRefusedCreateHoldsBatch(t *testing.T) {
	e := newPipeEnv(t)
	e.seedCustomer()
	l := watchIncidents(e)
	restore := tableGap(t, StateScheduled, StateSubmitted)
	name := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123"))).Erasure.Name()
	e.settle()
	e.advance(e.cfg.BatchMaxWait)
	got := e.wantState(name, StateScheduled)
	// The chats' batch is sent first; its request leaves the erasure SCHEDULED (the
	// conversations still wait). The conversations' request would make it SUBMITTED: refused.
	if len(e.lp.createdBodies()) != 2 {
		t.Fatalf("created %d requests, want 2", len(e.lp.createdBodies()))
	}
	if got.BlockedOn != BlockedDeletionOutcomeUnknown || len(got.HeldBatches) != 1 {
		t.Fatalf("erasure blocked %d, held %+v; want one batch held", got.BlockedOn, got.HeldBatches)
	}
	if lpID := e.lp.requests[1].ID; !slices.Equal(got.HeldBatches[0].Candidates, []int64{lpID}) {
		t.Errorf("held batch has candidates %v, want the request it created, %d", got.HeldBatches[0].Candidates, lpID)
	}
	refused := Incident{Kind: IncidentTransitionRefused, Account: "1234", Step: "submit", Reason: "state_transition_not_allowed"}
	wantIncidents(t, l, IncidentTransitionRefused, []Incident{refused}, "ABC-123", "1234000001", "c-0001")
	err := e.db.View(func(tx storeTx) error {
		_, held, err := pipeline.GetSendTurn(tx, "1234")
		if err == nil && held {
			return errors.New("the account's send turn is still held")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	e.advance(e.svc.cfg.PollInterval)
	if len(e.lp.createdBodies()) != 2 {
		t.Errorf("created %d requests while held, want 2", len(e.lp.createdBodies()))
	}
	restore()
	for _, h := range got.HeldBatches {
		if _, err := e.svc.SettleBatch(WithPrincipal(context.Background(), "operator"), "1234", h.BatchID, h.Candidates[0], false); err != nil {
			t.Fatal(err)
		}
	}
	e.wantState(name, StateSubmitted)
}

// TestTransitionChecksStoredState: a change whose stated previous state is not the state
// stored is refused and writes nothing, so that a caller that read a stale record cannot write
// a false previous_state into the history.
func TestTransitionChecksStoredState(t *testing.T) {
	e := newPipeEnv(t)
	e.seedCustomer()
	name := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123"))).Erasure.Name()
	e.settle()
	before := e.wantState(name, StateScheduled)
	rev := e.db.Rev()
	err := e.db.Update(context.Background(), func(tx storeTx) error {
		r, err := getRecord(tx, before.ID)
		if err != nil {
			return err
		}
		r.State = StateDeleting // SUBMITTED → DELETING is allowed, but the erasure is SCHEDULED
		return e.svc.transition(tx, r, erasureChange{from: StateSubmitted, now: e.clock.Now()})
	})
	if !transitionRefused(err) {
		t.Errorf("a change from SUBMITTED of a SCHEDULED erasure = %v, want STATE_TRANSITION_NOT_ALLOWED", err)
	}
	if got := e.status(name); got.State != StateScheduled || got.Revision != before.Revision || e.db.Rev() != rev {
		t.Errorf("after the refused change the erasure is %s at revision %d (store at %d), want SCHEDULED at %d (store at %d)",
			got.State, got.Revision, e.db.Rev(), before.Revision, rev)
	}
}
