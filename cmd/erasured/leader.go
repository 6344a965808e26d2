package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/erasured/erasured/store"
)

// Every replica serves the API; only the elected leader runs the pipeline. leadPipeline is the
// loop that makes it so: it campaigns for leadership under the replica's id, and for each term
// it wins it waits out the take-over bound (takeoverWait: what the previous leader may still
// have in flight to LivePerson), runs the pipeline under the term's fenced context (every store
// write the pipeline makes commits only while the term holds, every LivePerson request is
// checked by sendGuard), and follows the store's change log so that work accepted by other
// replicas wakes it. When the term ends (its lease lost, the store closed) the pipeline is
// cancelled and waited for, and the loop campaigns again. When the process stops, the term is
// resigned, so that another replica need not wait for the lease to expire.
type leadPipeline struct {
	elector store.Elector
	id      string // the replica's id, campaigned with
	// run is the pipeline: it works until its context ends.
	run func(ctx context.Context) error
	// wake tells the running pipeline there may be new work.
	wake func()
	// watch follows the store's change log from now on (store.DB.Watch(0, "")); nil: no wake
	// through the store (a store that no other process writes).
	watch func() (store.Watcher, error)
	log   *slog.Logger
	// onTerm is told when a term begins (true) and ends (false); nil: nobody.
	onTerm func(leading bool)
	// takeover is the wait before a new term's pipeline starts.
	takeover time.Duration
	// retry is the pause after a failed campaign or a pipeline that stopped by itself.
	retry time.Duration
	// after is time.After, or a test's clock.
	after func(time.Duration) <-chan time.Time
}

// leaderRetry is the pause after a failed campaign, a pipeline that stopped by itself, or a
// failed watch of the store's changes.
const leaderRetry = 2 * time.Second

// resignTimeout bounds the resignation of a term when the process stops: a store that does not
// answer lets the lease expire instead.
const resignTimeout = 5 * time.Second

// Run campaigns and leads until ctx ends, and returns once the pipeline has stopped and the
// term (if one is held) is resigned.
func (p *leadPipeline) Run(ctx context.Context) {
	for ctx.Err() == nil {
		l, err := p.elector.Campaign(ctx, p.id)
		switch {
		case err == nil:
			// A term won as ctx ends is resigned at once by lead.
			if stoppedByItself := p.lead(ctx, l); stoppedByItself {
				p.pause(ctx, p.retry)
			}
		case ctx.Err() != nil, errors.Is(err, store.ErrClosed):
			return
		default:
			p.log.Error("pipeline leadership: campaign failed; trying again", "replica", p.id, "err", err, "retry_in", p.retry.String())
			p.pause(ctx, p.retry)
		}
	}
}

// lead serves one term: it returns when the term has ended, having stopped the pipeline. It
// reports whether the pipeline stopped by itself while the term held (it then resigned it).
func (p *leadPipeline) lead(ctx context.Context, l store.Leadership) (stoppedByItself bool) {
	attrs := []any{"replica", p.id, "term", l.Term()}
	p.log.Info("pipeline leadership acquired", append(attrs, "takeover_wait", p.takeover.String())...)
	if p.onTerm != nil {
		p.onTerm(true)
	}
	reason := "lost"
	defer func() {
		if ctx.Err() != nil {
			reason = "stopping"
			p.resign(l, attrs)
		}
		if p.onTerm != nil {
			p.onTerm(false)
		}
		p.log.Info("pipeline leadership lost", append(attrs, "reason", reason)...)
	}()

	// What the previous leader sent may still be on its way to LivePerson: wait it out before
	// reading LivePerson's answers or sending anything.
	select {
	case <-p.after(p.takeover):
	case <-l.Done():
		return false
	case <-ctx.Done():
		return false
	}

	work, stop := context.WithCancel(l.Fence(ctx))
	var wg sync.WaitGroup
	stopped := make(chan error, 1)
	wg.Go(func() { stopped <- p.run(work) })
	if p.watch != nil {
		wg.Go(func() { p.follow(work) })
	}
	var runErr error
	select {
	case <-l.Done():
	case <-ctx.Done():
	case runErr = <-stopped:
		stoppedByItself = ctx.Err() == nil && !isDone(l.Done())
	}
	stop()
	wg.Wait()
	if stoppedByItself {
		// Another replica may do better: let it lead, and campaign again after a pause.
		reason = "pipeline stopped"
		p.log.Error("pipeline stopped", append(attrs, "err", runErr)...)
		p.resign(l, attrs)
	}
	return stoppedByItself
}

// resign ends the term l at once, within resignTimeout.
func (p *leadPipeline) resign(l store.Leadership, attrs []any) {
	ctx, cancel := context.WithTimeout(context.Background(), resignTimeout)
	defer cancel()
	if err := l.Resign(ctx); err != nil {
		p.log.Warn("pipeline leadership: resigning failed; the lease expires instead", append(attrs, "err", err)...)
	}
}

// follow wakes the pipeline on each batch of changes committed to the store, by this replica
// or another, until ctx ends. A watch that fails (the change log compacted past it, the store
// unreachable) is started again from now, with a wake for what it may have missed.
func (p *leadPipeline) follow(ctx context.Context) {
	for ctx.Err() == nil {
		w, err := p.watch()
		if err != nil {
			if ctx.Err() == nil {
				p.log.Warn("pipeline: following the store's changes failed; trying again", "err", err, "retry_in", p.retry.String())
			}
			p.pause(ctx, p.retry)
			p.wake()
			continue
		}
		for {
			_, err := w.Next(ctx)
			if err != nil {
				break
			}
			p.wake()
		}
		w.Close()
		if ctx.Err() == nil {
			p.pause(ctx, p.retry)
			p.wake()
		}
	}
}

// pause waits d, or until ctx ends.
func (p *leadPipeline) pause(ctx context.Context, d time.Duration) {
	select {
	case <-p.after(d):
	case <-ctx.Done():
	}
}

func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
