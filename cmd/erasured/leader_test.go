package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/erasured/erasured/store"
)

// fakeElector hands out the terms a test gives it, one per Campaign.
type fakeElector struct {
	campaigns chan string    // the id of each Campaign, as it begins
	terms     chan *fakeTerm // what the next Campaign wins
	errs      chan error     // or how it fails
	running   *atomic.Bool   // the pipeline is running: Campaign must not be called then
	t         *testing.T
}

func (e *fakeElector) Campaign(ctx context.Context, id string) (store.Leadership, error) {
	if e.running.Load() {
		e.t.Error("Campaign while the pipeline of the last term still runs")
	}
	e.campaigns <- id
	select {
	case l := <-e.terms:
		return l, nil
	case err := <-e.errs:
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (e *fakeElector) Leader(context.Context) (string, error) { return "", nil }

// fakeClock is an after function whose waits the test ends.
type fakeClock struct{ waits chan fakeWait }

type fakeWait struct {
	d    time.Duration
	fire chan time.Time
}

func (c *fakeClock) after(d time.Duration) <-chan time.Time {
	w := fakeWait{d: d, fire: make(chan time.Time, 1)}
	c.waits <- w
	return w.fire
}

// fakeWatcher yields the batches a test sends, and reports when it is closed.
type fakeWatcher struct {
	batches chan []store.Event
	closed  chan struct{}
}

func (w *fakeWatcher) Next(ctx context.Context) ([]store.Event, error) {
	select {
	case b := <-w.batches:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-w.closed:
		return nil, store.ErrClosed
	}
}
func (w *fakeWatcher) Progress() uint64 { return 0 }
func (w *fakeWatcher) Close()           { close(w.closed) }

// leaderHarness is a leadPipeline over fakes: an elector, a clock, a pipeline that reports its
// runs and a watch of the store.
type leaderHarness struct {
	t        *testing.T
	p        *leadPipeline
	elector  *fakeElector
	clock    *fakeClock
	running  atomic.Bool
	runs     chan context.Context // each run of the pipeline, with its context, as it starts
	returned chan struct{}        // each run of the pipeline, as it returns
	release  chan struct{}        // a run whose context ended returns once this is closed
	wakes    chan struct{}
	watchers chan *fakeWatcher
	terms    chan bool // onTerm's reports
}

func newLeaderHarness(t *testing.T) *leaderHarness {
	h := &leaderHarness{t: t, clock: &fakeClock{waits: make(chan fakeWait)},
		runs: make(chan context.Context, 1), returned: make(chan struct{}, 1), release: make(chan struct{}),
		wakes: make(chan struct{}, 16), watchers: make(chan *fakeWatcher, 1), terms: make(chan bool, 4)}
	close(h.release)
	h.elector = &fakeElector{campaigns: make(chan string, 1), terms: make(chan *fakeTerm), errs: make(chan error), running: &h.running, t: t}
	h.p = &leadPipeline{elector: h.elector, id: "replica-a", takeover: takeoverWait, retry: leaderRetry,
		after: h.clock.after, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		run: func(ctx context.Context) error {
			h.running.Store(true)
			h.runs <- ctx
			<-ctx.Done()
			<-h.release
			h.running.Store(false)
			h.returned <- struct{}{}
			return nil
		},
		wake: func() { h.wakes <- struct{}{} },
		watch: func() (store.Watcher, error) {
			w := &fakeWatcher{batches: make(chan []store.Event), closed: make(chan struct{})}
			h.watchers <- w
			return w, nil
		},
		onTerm: func(leading bool) {
			if !leading && h.running.Load() {
				t.Error("the term was reported ended while its pipeline still runs")
			}
			h.terms <- leading
		},
	}
	return h
}

// recv waits for a value of c, failing the test after 10 s.
func recv[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// none fails the test if c holds a value now.
func none[T any](t *testing.T, c <-chan T, what string) {
	t.Helper()
	select {
	case <-c:
		t.Errorf("%s, too early", what)
	default:
	}
}

// TestLeadPipeline: the pipeline runs only during a term, under the term's fenced context, and
// only after the take-over wait; the store's changes wake it while it runs; when the term ends
// it is cancelled and waited for before the term is reported ended and the loop campaigns
// again; stopping the process resigns the term it holds.
func TestLeadPipeline(t *testing.T) {
	h := newLeaderHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.p.Run(ctx) }()

	// First term.
	if id := recv(t, h.elector.campaigns, "the first campaign"); id != "replica-a" {
		t.Errorf("campaigned as %q, want replica-a", id)
	}
	term1 := newFakeTerm(7, time.Now().Add(time.Hour))
	h.elector.terms <- term1
	if !recv(t, h.terms, "the term's start") {
		t.Error("onTerm(false) at a term's start")
	}
	w := recv(t, h.clock.waits, "the take-over wait")
	if w.d != takeoverWait {
		t.Errorf("take-over wait %v, want %v", w.d, takeoverWait)
	}
	none(t, h.runs, "the pipeline started before the take-over wait ended")
	w.fire <- time.Now()
	runCtx := recv(t, h.runs, "the pipeline's start")
	if store.LeadershipOf(runCtx) != store.Leadership(term1) {
		t.Error("the pipeline does not run under the term's fenced context")
	}
	watcher := recv(t, h.watchers, "the watch of the store's changes")
	watcher.batches <- []store.Event{{Rev: 1, Key: "erasures/x"}}
	recv(t, h.wakes, "a wake for a batch of changes")

	// The term ends: the pipeline is cancelled, waited for, and the loop campaigns again. The
	// pipeline returns a moment after its context ended: nothing may go on before it has.
	h.release = make(chan struct{})
	time.AfterFunc(50*time.Millisecond, func() { close(h.release) })
	term1.end()
	recv(t, h.returned, "the pipeline's return")
	if recv(t, h.terms, "the term's end") {
		t.Error("onTerm(true) at a term's end")
	}
	recv(t, watcher.closed, "the watch closed with the term")
	recv(t, h.elector.campaigns, "the campaign after the term")
	if runCtx.Err() == nil {
		t.Error("the pipeline's context is still live after the term ended")
	}

	// Second term, ended by stopping the process before the take-over wait is over: the
	// pipeline never starts, and the term is resigned.
	term2 := newFakeTerm(9, time.Now().Add(time.Hour))
	h.elector.terms <- term2
	recv(t, h.terms, "the second term's start")
	recv(t, h.clock.waits, "the second take-over wait")
	cancel()
	recv(t, done, "Run's return after the stop")
	none(t, h.runs, "the pipeline started")
	if !term2.resigned.Load() {
		t.Error("stopping did not resign the term")
	}
	if term1.resigned.Load() {
		t.Error("a term that ended by itself was resigned")
	}
}

// TestLeadPipelineStopResigns: a process stopped while its pipeline runs cancels the pipeline,
// waits for it, and resigns the term.
func TestLeadPipelineStopResigns(t *testing.T) {
	h := newLeaderHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.p.Run(ctx) }()
	recv(t, h.elector.campaigns, "the campaign")
	term := newFakeTerm(1, time.Now().Add(time.Hour))
	h.elector.terms <- term
	recv(t, h.clock.waits, "the take-over wait").fire <- time.Now()
	recv(t, h.runs, "the pipeline's start")
	cancel()
	recv(t, h.returned, "the pipeline's return")
	recv(t, done, "Run's return")
	if !term.resigned.Load() {
		t.Error("stopping did not resign the term")
	}
}

// TestLeadPipelineStoppedByItself: a pipeline that returns while its term holds gives the term
// up, and the loop campaigns again after a pause.
func TestLeadPipelineStoppedByItself(t *testing.T) {
	h := newLeaderHarness(t)
	quit := make(chan struct{})
	h.p.run = func(ctx context.Context) error {
		h.runs <- ctx
		<-quit
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); h.p.Run(ctx) }()
	recv(t, h.elector.campaigns, "the campaign")
	term := newFakeTerm(1, time.Now().Add(time.Hour))
	h.elector.terms <- term
	recv(t, h.clock.waits, "the take-over wait").fire <- time.Now()
	recv(t, h.runs, "the pipeline's start")
	close(quit)
	recv(t, h.terms, "the term's start")
	if recv(t, h.terms, "the term's end") {
		t.Error("onTerm(true) at the term's end")
	}
	if !term.resigned.Load() {
		t.Error("the term of a pipeline that stopped was not resigned")
	}
	w := recv(t, h.clock.waits, "the pause before campaigning again")
	if w.d != leaderRetry {
		t.Errorf("pause %v, want %v", w.d, leaderRetry)
	}
	none(t, h.elector.campaigns, "campaigned again before the pause ended")
	w.fire <- time.Now()
	recv(t, h.elector.campaigns, "the campaign after the pause")
	cancel()
	recv(t, done, "Run's return")
}

// TestLeadPipelineCampaignFails: a campaign that fails (etcd unreachable) is tried again after
// a pause, and a term won then is served as any other.
func TestLeadPipelineCampaignFails(t *testing.T) {
	h := newLeaderHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); h.p.Run(ctx) }()
	recv(t, h.elector.campaigns, "the campaign")
	h.elector.errs <- errors.New("etcd unreachable")
	w := recv(t, h.clock.waits, "the pause after the failed campaign")
	if w.d != leaderRetry {
		t.Errorf("pause %v, want %v", w.d, leaderRetry)
	}
	none(t, h.elector.campaigns, "campaigned again before the pause ended")
	w.fire <- time.Now()
	recv(t, h.elector.campaigns, "the campaign after the pause")
	h.elector.terms <- newFakeTerm(2, time.Now().Add(time.Hour))
	recv(t, h.clock.waits, "the take-over wait").fire <- time.Now()
	recv(t, h.runs, "the pipeline's start")
	cancel()
	recv(t, done, "Run's return")
}
