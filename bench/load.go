package bench

import (
	"context"
	"sync"
	"time"
)

// Load is the shape of a closed-loop measurement.
type Load struct {
	Concurrency int           // callers, each issuing its next operation as soon as the last returns
	Warmup      time.Duration // run but not counted: connections, page cache, bbolt's first splits
	Duration    time.Duration // the measurement window
}

// drive runs l.Concurrency workers calling op back to back until the warm-up and the window have
// passed. An operation counts, with its latency, when it completes inside the window: that keeps
// throughput exact (no operation is counted twice or missed at the edges). The first error stops
// every worker and is returned: a benchmark that measures failures measures nothing.
func drive(parent context.Context, l Load, op func(ctx context.Context, worker, seq int) error) (Point, error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	start := time.Now()
	from, until := start.Add(l.Warmup), start.Add(l.Warmup+l.Duration)

	lats := make([][]time.Duration, l.Concurrency)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for w := range l.Concurrency {
		wg.Go(func() {
			var mine []time.Duration
			for seq := 0; ; seq++ {
				t0 := time.Now()
				if !t0.Before(until) || ctx.Err() != nil {
					break
				}
				if err := op(ctx, w, seq); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					break
				}
				t1 := time.Now()
				if !t1.Before(from) && !t1.After(until) {
					mine = append(mine, t1.Sub(t0))
				}
			}
			lats[w] = mine
		})
	}
	wg.Wait()
	if firstErr != nil {
		return Point{}, firstErr
	}
	if err := parent.Err(); err != nil {
		return Point{}, err
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	return Point{Concurrency: l.Concurrency, Ops: len(all), Window: l.Duration, Latency: Summarize(all)}, nil
}
