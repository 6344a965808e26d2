package pipeline

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/store"
)

// fakeClock is a settable clock whose timers fire only when the test fires them.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
}

type fakeTimer struct {
	d  time.Duration
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.timers = append(c.timers, fakeTimer{d, ch})
	return ch
}

// fire fires every pending timer of at most d.
func (c *fakeClock) fire(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	keep := c.timers[:0]
	for _, t := range c.timers {
		if t.d <= d {
			t.ch <- c.now
		} else {
			keep = append(keep, t)
		}
	}
	c.timers = keep
}

// countingDB counts the pipeline's writes.
type countingDB struct {
	Viewer
	mu      sync.Mutex
	updates int
}

func (d *countingDB) Update(ctx context.Context, fn func(store.Tx) error) error {
	d.mu.Lock()
	d.updates++
	d.mu.Unlock()
	return fmt.Errorf("the test writes nothing")
}

// TestSearchGateHoldsResolveSteps: a search answered with a wait (a 429's Retry-After) closes
// that account's service: the resolve steps of erasures needing it are held until the wait has
// passed, with no store write, and then run; an erasure of another service or account is not
// held.
func TestSearchGateHoldsResolveSteps(t *testing.T) {
	clk := &fakeClock{now: t0}
	throttled := model.WithRetryAfter(fmt.Errorf("%w: 429", model.ErrUnavailable), 30*time.Second)
	lp := &stubSearches{chatErr: throttled}
	g := GateSearches(lp, clk.Now)
	if _, err := g.SearchChats(context.Background(), "A", t0.Add(-time.Hour), t0, "x"); err == nil {
		t.Fatal("the throttled search succeeded")
	}
	db := &countingDB{}
	p := &Pipeline{lp: g, now: clk.Now, db: db}
	s := NewScheduler(SchedulerConfig{DB: openSchedule(t, map[string]time.Time{"e/x": t0}), Now: clk.Now, Wake: make(chan struct{}, 1)})
	for _, tc := range []struct {
		name     string
		account  string
		channels []model.Channel
		at       time.Duration // after the 429
		held     bool
	}{
		{"chat, same account", "A", []model.Channel{model.ChannelChat}, 0, true},
		{"chat and messaging", "A", []model.Channel{model.ChannelMessaging, model.ChannelChat}, 29 * time.Second, true},
		{"messaging only", "A", []model.Channel{model.ChannelMessaging}, 0, false},
		{"another account", "B", []model.Channel{model.ChannelChat}, 0, false},
		{"after the Retry-After", "A", []model.Channel{model.ChannelChat}, 30 * time.Second, false},
	} {
		clk.now = t0.Add(tc.at)
		snap := &snapshot{r: model.Record{Erasure: model.Erasure{ID: "x", AccountID: tc.account, Channels: tc.channels}}}
		ctx := withHolder(context.Background(), s, "e/x")
		if got := p.holdSearch(ctx, snap); got != tc.held {
			t.Errorf("%s: held = %v, want %v", tc.name, got, tc.held)
		}
		due, _, err := s.Due(clk.now, 10)
		if err != nil {
			t.Fatal(err)
		}
		if (len(due) == 0) != tc.held {
			t.Errorf("%s: due %v, want the task due: %v", tc.name, due, !tc.held)
		}
		if tc.held {
			if due, _, _ := s.Due(t0.Add(30*time.Second), 10); len(due) != 1 {
				t.Errorf("%s: due once the wait has passed = %v, want e/x", tc.name, due)
			}
			HoldTask(ctx, t0) // release for the next case
		}
	}
	if db.updates != 0 {
		t.Errorf("holding wrote %d times, want none", db.updates)
	}
	if calls := lp.chatCalls; calls != 1 {
		t.Errorf("LivePerson got %d chat searches, want the 1 that was throttled", calls)
	}
}

// stubSearches answers the searches with fixed errors.
type stubSearches struct {
	model.LivePerson
	chatErr   error
	chatCalls int
}

func (s *stubSearches) SearchChats(context.Context, string, time.Time, time.Time, string) ([]model.ChatRecord, error) {
	s.chatCalls++
	return nil, s.chatErr
}

// TestRunCoalescesWakes: many wake-ups in a burst make a few rounds, not one each, and a
// pipeline woken after a quiet spell starts its round at once, without waiting out a gap.
func TestRunCoalescesWakes(t *testing.T) {
	clk := &fakeClock{now: t0}
	rounds := make(chan struct{}, 100)
	wake := make(chan struct{}, 1)
	s := NewScheduler(SchedulerConfig{DB: openSchedule(t, nil), Now: clk.Now, After: clk.After, Wake: wake,
		Step:  func(context.Context, string) error { return nil },
		Round: func(context.Context, time.Time, func(func())) { rounds <- struct{}{} }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitRound := func(what string) {
		t.Helper()
		select {
		case <-rounds:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no round", what)
		}
	}
	waitRound("start")
	for range 100 { // a burst, as from Submits, while the clock stands still
		select {
		case wake <- struct{}{}:
		default:
		}
		time.Sleep(100 * time.Microsecond)
	}
	select {
	case <-rounds:
		t.Fatal("a round ran before the gap had passed")
	case <-time.After(50 * time.Millisecond):
	}
	n := 0
	for range 3 { // let the gap pass, as often as the loop asks for it
		clk.advance(RoundGap)
		clk.fire(RoundGap)
		select {
		case <-rounds:
			n++
		case <-time.After(50 * time.Millisecond):
		}
	}
	if n == 0 || n > 2 {
		t.Errorf("100 wake-ups in a burst made %d rounds, want 1 or 2", n)
	}
	clk.advance(time.Second) // quiet
	wake <- struct{}{}
	waitRound("a wake-up after a quiet second, no timer fired")
}
