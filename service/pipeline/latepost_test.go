package pipeline

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/store"
)

// lateLP: the first create's POST leaves only `delay` after the call began (a rate-limit
// wait, a 429 answered and retried, a token refresh after a 401), LivePerson then takes
// `process` to record it, and the process dies before any answer. Later creates are recorded
// at once. The list shows what is recorded by the env's clock.
type lateLP struct {
	model.LivePerson
	env            *listWaitEnv
	crash          func()
	delay, process time.Duration
	mu             sync.Mutex
	creates        int
	made           []model.Deletion
	listedAt       []time.Time
}

func (l *lateLP) CreateDeletion(ctx context.Context, _ string, kind model.TargetKind, ids []string) (model.Deletion, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.creates++
	d := model.Deletion{ID: int64(1000 + len(l.made)), Kind: kind, IDs: ids, Status: model.LPNotStarted}
	if l.creates == 1 {
		l.env.now = l.env.now.Add(l.delay) // the POST leaves now
		l.made = append(l.made, d)
		l.listedAt = append(l.listedAt, l.env.now.Add(l.process))
		l.crash() // the process dies here
		return model.Deletion{}, context.Canceled
	}
	l.made = append(l.made, d)
	l.listedAt = append(l.listedAt, l.env.now)
	return d, nil
}

func (l *lateLP) ListDeletions(context.Context, string, time.Time, time.Time) ([]model.Deletion, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []model.Deletion
	for i, d := range l.made {
		if !l.env.now.Before(l.listedAt[i]) {
			out = append(out, d)
		}
	}
	return slices.Clone(out), nil
}

// TestLatePostThenCrashWaits: a create call whose POST leaves 20 s after the call began (a
// rate-limit wait, a 429 retried, a token refreshed) and which LivePerson records 25 s later,
// in a process that dies before any answer. The restart at 40 s finds nothing listed; since
// the POST may have left as late as the call's cut-off, it waits until that plus the call
// timeout and finds the request instead of creating a second one.
func TestLatePostThenCrashWaits(t *testing.T) {
	lp := &lateLP{delay: 20 * time.Second, process: 25 * time.Second}
	e := newListWaitEnv(t, lp)
	lp.env = e
	ctx, cancel := context.WithCancel(context.Background())
	lp.crash = cancel
	_ = e.stepIn(ctx)
	b, _ := e.batch(t)
	if b.Sends != 1 || b.LastSend.Before(t0.Add(20*time.Second)) {
		t.Fatalf("stored before the call: sends %d, last send %v after the start; want 1, no earlier than the POST could leave", b.Sends, b.LastSend.Sub(t0))
	}
	e.restart()
	e.now = t0.Add(40 * time.Second) // restart; LivePerson lists the first create at t0+45s
	e.step(t)
	b, _ = e.batch(t)
	if len(lp.made) != 1 || b.ListWait.IsZero() {
		t.Fatalf("reconciled at 40 s: %d requests, list wait %v; want 1, waiting", len(lp.made), b.ListWait)
	}
	e.now = b.ListWait
	e.step(t)
	if b, _ := e.batch(t); len(lp.made) != 1 || b.LPID != lp.made[0].ID {
		t.Errorf("LivePerson holds %d deletion requests for one batch, the batch follows %d; want 1, the first", len(lp.made), b.LPID)
	}
}

// TestSettledNotCreatedWaitsForListing: an operator settles a batch as not created seconds after
// its create's answer was lost. A create LivePerson is still processing was in no list they could
// check, so the resend waits until such a create would be listed; only then is it sent.
func TestSettledNotCreatedWaitsForListing(t *testing.T) {
	lp := &unanswered{creates: 1} // the first create's answer was lost before this run
	e := newListWaitEnv(t, lp)
	err := e.db.Update(context.Background(), func(tx store.Tx) error {
		b, err := GetBatch(tx, 1)
		if err != nil {
			return err
		}
		// Sent at t0 (its call cut at t0 + the timeout), then held and settled "not created".
		b.Sends, b.FirstSend, b.LastSend, b.Resend = 1, t0, t0.Add(testCallTimeout), true
		return PutBatch(tx, b)
	})
	if err != nil {
		t.Fatal(err)
	}
	e.now = t0.Add(10 * time.Second)
	e.step(t)
	b, _ := e.batch(t)
	until := t0.Add(2*testCallTimeout + ListingAllowance)
	if len(lp.made) != 0 || !b.NextPoll.Equal(until) {
		t.Fatalf("resend at +10s: %d requests made, next attempt %v; want none, at %v", len(lp.made), b.NextPoll, until)
	}
	e.now = until
	e.step(t)
	if b, _ := e.batch(t); len(lp.made) != 1 || b.LPID != lp.made[0].ID {
		t.Errorf("resend once a create would be listed: %d requests, batch follows %d; want 1, it", len(lp.made), b.LPID)
	}
}
