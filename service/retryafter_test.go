package service

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// tenMinutes is the wait LivePerson asks for in these tests: longer than any call waits in
// place, so the call gives up and the pipeline must honour it.
const tenMinutes = 10 * time.Minute

// slowDown is LivePerson unavailable, asking to be left alone for ten minutes.
func slowDown() error {
	return WithRetryAfter(fmt.Errorf("%w: 429", ErrUnavailable), tenMinutes)
}

// TestStepHonoursRetryAfter: a search fails unavailable with a ten-minute Retry-After. The
// step's next attempt is not before then, though its own backoff would come back in 5 s.
func TestStepHonoursRetryAfter(t *testing.T) {
	e := newPipeEnv(t)
	e.seedCustomer()
	e.lp.searchErr = slowDown()
	name := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123"))).Erasure.Name()
	e.settle()
	got := e.wantState(name, StateResolving)
	if want := e.clock.Now().Add(tenMinutes); got.NextAttemptTime.Before(want) {
		t.Errorf("next attempt %v, want at least %v (LivePerson's Retry-After)", got.NextAttemptTime, want)
	}
	if got.BlockedOn != BlockedLivePersonUnavailable || got.LastError != "LivePerson unavailable" {
		t.Errorf("blocked %d, last error %q; want LIVEPERSON_UNAVAILABLE, %q", got.BlockedOn, got.LastError, "LivePerson unavailable")
	}
}

// listDown is LivePerson whose list of deletion requests fails with err while it is set.
type listDown struct {
	*fakeLivePerson
	mu  sync.Mutex
	err error
}

func (f *listDown) set(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *listDown) ListDeletions(ctx context.Context, account string, from, to time.Time) ([]Deletion, error) {
	f.mu.Lock()
	err := f.err
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return f.fakeLivePerson.ListDeletions(ctx, account, from, to)
}

// TestBatchHonoursRetryAfter: a batch's create fails unavailable with a ten-minute Retry-After
// (the retry path), and then its reconciliation's list does too (the list-failed path). Neither
// is tried again before LivePerson's wait has passed, and the batch is sent once in the end.
func TestBatchHonoursRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name           string
		createErr, lst error
	}{
		{"create", slowDown(), nil},
		{"reconcile list", ErrOutcomeUnknown, slowDown()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newPipeEnv(t)
			lp := &listDown{fakeLivePerson: e.lp}
			e.p = e.svc.NewPipeline(lp, e.cfg)
			e.seedCustomer()
			e.lp.createErr = tc.createErr
			req := submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123"))
			req.Channels = []Channel{ChannelChat}
			name := e.submit(req).Erasure.Name()
			e.settle()
			if tc.lst != nil {
				lp.set(tc.lst)
				e.advance(e.cfg.BatchMaxWait) // sent, answer lost
				e.advance(time.Minute)        // reconciled: the list fails
			} else {
				e.advance(e.cfg.BatchMaxWait) // the create fails
			}
			e.wantState(name, StateScheduled)
			lp.set(nil)
			e.advance(tenMinutes - 2*time.Minute)
			e.wantState(name, StateScheduled) // LivePerson's wait has not passed
			e.advance(2 * time.Minute)
			e.wantState(name, StateSubmitted)
			if n := len(e.lp.createdBodies()); n != 1 {
				t.Errorf("%d deletion requests created, want 1", n)
			}
		})
	}
}
