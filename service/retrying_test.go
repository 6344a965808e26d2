package service

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// outageLP is a LivePerson whose chat searches, while down, retry within the call as the real
// client does (5, 10, 15 s, each announced with RetryingCall) and then give up; seen records the
// erasure after each announcement, and lastCtx keeps the context of the latest search.
type outageLP struct {
	*fakeLivePerson
	status func() Erasure

	mu      sync.Mutex
	down    bool
	seen    []Erasure
	lastCtx context.Context
}

func (f *outageLP) SearchChats(ctx context.Context, account string, from, to time.Time, kw string) ([]ChatRecord, error) {
	f.mu.Lock()
	down := f.down
	f.lastCtx = ctx
	f.mu.Unlock()
	if !down {
		return f.fakeLivePerson.SearchChats(ctx, account, from, to, kw)
	}
	cause := fmt.Errorf("%w: 503", ErrUnavailable)
	for i, wait := range []time.Duration{5 * time.Second, 10 * time.Second, 15 * time.Second} {
		RetryingCall(ctx, CallRetry{Service: "engHistDomain", Attempt: i + 1, Wait: wait, Err: cause})
		got := f.status()
		f.mu.Lock()
		f.seen = append(f.seen, got)
		f.mu.Unlock()
	}
	return nil, cause
}

// TestRetriesWithinAStep: a call retrying inside a step shows the outage from its first retry
// (blocked on LivePerson, the next attempt when the call retries), logs the first retry of the
// step once with the service and attempt, and writes one event for it, none for the retries
// after. The step's own backoff goes on from its failure count: the retries within the call
// neither reset nor advance it.
func TestRetriesWithinAStep(t *testing.T) {
	e := newPipeEnv(t)
	l := watchIncidents(e)
	e.seedCustomer()
	lp := &outageLP{fakeLivePerson: e.lp, down: true}
	e.p = e.svc.NewPipeline(lp, e.cfg)
	name := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123"))).Erasure.Name()
	lp.status = func() Erasure { return e.status(name) }

	for run, wantBackoff := range []time.Duration{5 * time.Second, 10 * time.Second} {
		lp.mu.Lock()
		lp.seen = nil
		lp.mu.Unlock()
		if run == 0 {
			e.settle()
		} else {
			e.advance(5 * time.Second)
		}
		now := e.clock.Now()
		lp.mu.Lock()
		seen := lp.seen
		lp.mu.Unlock()
		if len(seen) < 3 {
			t.Fatalf("run %d: %d retries seen, want at least 3", run, len(seen))
		}
		for i, want := range []time.Duration{5 * time.Second, 10 * time.Second, 15 * time.Second} {
			got := seen[i]
			if got.BlockedOn != BlockedLivePersonUnavailable || got.LastError != "LivePerson unavailable" ||
				!got.NextAttemptTime.Equal(now.Add(want)) {
				t.Errorf("run %d, retry %d: blocked %d, error %q, next %v; want LIVEPERSON_UNAVAILABLE, now+%v",
					run, i+1, got.BlockedOn, got.LastError, got.NextAttemptTime, want)
			}
			if i > 0 && got.Revision != seen[0].Revision {
				t.Errorf("run %d, retry %d wrote an event (revision %d after %d)", run, i+1, got.Revision, seen[0].Revision)
			}
		}
		after := e.status(name)
		if after.State != StateResolving || !after.NextAttemptTime.Equal(now.Add(wantBackoff)) {
			t.Errorf("run %d: after the step failed: %s, next %v; want RESOLVING, now+%v (the step's backoff)",
				run, after.State, after.NextAttemptTime, wantBackoff)
		}
		text := l.text()
		if n := strings.Count(text, `msg="LivePerson call failed; retrying within the step"`); n != run+1 {
			t.Errorf("run %d: %d warnings of a retry within the step, want one per step run", run, n)
		}
	}
	text := l.text()
	for _, want := range []string{
		`level=WARN msg="LivePerson call failed; retrying within the step" erasure=` + strings.TrimPrefix(name, NamePrefix) +
			` account=1234 step=resolve reason="LivePerson unavailable" next_attempt_time=`,
		`service=engHistDomain attempt=1 retry_in=5s`,
		`level=DEBUG msg="LivePerson call failed again; retrying within the step"`,
		`service=engHistDomain attempt=3 retry_in=15s`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("log lacks %s:\n%s", want, text)
		}
	}
	blocked := 0
	for _, ev := range eventsOf(t, e, name) {
		if ev.Erasure.BlockedOn == BlockedLivePersonUnavailable {
			blocked++
		}
	}
	if blocked != 1 {
		t.Errorf("%d events blocked on LivePerson for two failed steps of three retries each, want 1", blocked)
	}

	// LivePerson is back: the step goes on, and a retry announced late on a context of a step
	// that has ended changes nothing.
	lp.mu.Lock()
	lp.down = false
	lp.mu.Unlock()
	e.advance(10 * time.Second)
	done := e.status(name)
	if done.BlockedOn == BlockedLivePersonUnavailable || done.LastError != "" {
		t.Fatalf("after LivePerson came back: blocked %d, last error %q", done.BlockedOn, done.LastError)
	}
	lp.mu.Lock()
	late := lp.lastCtx
	lp.mu.Unlock()
	RetryingCall(late, CallRetry{Service: "engHistDomain", Attempt: 1, Wait: time.Minute, Err: ErrUnavailable})
	if got := e.status(name); got.Revision != done.Revision || got.BlockedOn != done.BlockedOn ||
		!got.NextAttemptTime.Equal(done.NextAttemptTime) {
		t.Errorf("a late retry notice changed the erasure: revision %d → %d, blocked %d → %d, next %v → %v",
			done.Revision, got.Revision, done.BlockedOn, got.BlockedOn, done.NextAttemptTime, got.NextAttemptTime)
	}
}
