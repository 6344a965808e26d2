package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/liveperson"
)

// WatchConfig is the shape of the fan-out scenario.
type WatchConfig struct {
	Streams        int           // concurrent Watch streams, each watching one erasure by name
	Erasures       int           // erasures watched, stream i watching erasure i mod Erasures; 0: one per stream
	StreamsPerConn int           // streams multiplexed on one client connection
	Rate           int           // Cancels per second in the load phase; each makes one event
	Duration       time.Duration // length of the load phase
	Settle         time.Duration // quiet time before each memory reading
}

// WatchResult is one run of the fan-out scenario.
type WatchResult struct {
	Streams, Erasures int
	Create            time.Duration // submitting the erasures
	Open              time.Duration // opening every stream until each received its erasure's current state
	// MemBefore and MemAfter are the target's memory before the streams were opened and once
	// all of them were open and idle.
	MemBefore, MemAfter uint64
	Cancels             int     // Cancels issued in the load phase
	CancelRate          float64 // Cancels per second achieved
	// Uncancellable counts Cancels refused with FAILED_PRECONDITION: with the real erasured, its
	// pipeline may have taken an erasure past the point of cancelling. They make no event.
	Uncancellable      int
	Expected, Received int // Cancel events due to the streams, and delivered to them
	Duplicates         int // Cancel events a stream received more than once
	Other              int // other events the streams received after their first (the pipeline's)
	// Latency is receive time minus the event's time. The service stamps that time just before
	// queueing the change for commit, so it includes the commit (fsync) as well as the fan-out.
	Latency Summary
}

// PerStream is the memory each idle stream added, in bytes.
func (r WatchResult) PerStream() float64 {
	if r.Streams == 0 {
		return 0
	}
	return (float64(r.MemAfter) - float64(r.MemBefore)) / float64(r.Streams)
}

// Limits of the scenario's waits: long enough for 10,000 streams on a busy two-core machine,
// short enough that a lost event fails the run instead of hanging it.
const (
	openTimeout    = 3 * time.Minute
	deliverTimeout = 15 * time.Second
	openInFlight   = 256 // streams being opened at once
	cancelCallers  = 64
)

// RunWatch runs the fan-out scenario against t: it creates the erasures, opens the streams and
// waits until each has its erasure's current state, reads the target's memory, then cancels
// erasures at cfg.Rate per second and measures how long each change took to reach its streams.
func RunWatch(ctx context.Context, t Target, cfg WatchConfig) (WatchResult, error) {
	if cfg.Streams <= 0 || cfg.StreamsPerConn <= 0 || cfg.Rate <= 0 {
		return WatchResult{}, errors.New("watch: streams, streams per connection and rate must be positive")
	}
	if cfg.Erasures <= 0 || cfg.Erasures > cfg.Streams {
		cfg.Erasures = cfg.Streams
	}
	res := WatchResult{Streams: cfg.Streams, Erasures: cfg.Erasures}

	start := time.Now()
	names, err := RunSubmitCount(ctx, t, cfg.Erasures)
	if err != nil {
		return res, fmt.Errorf("create erasures: %w", err)
	}
	res.Create = time.Since(start)

	if err := sleep(ctx, cfg.Settle); err != nil {
		return res, err
	}
	if res.MemBefore, err = t.Memory(); err != nil {
		return res, err
	}

	streams, err := dialPool(t.Addr(), (cfg.Streams+cfg.StreamsPerConn-1)/cfg.StreamsPerConn)
	if err != nil {
		return res, err
	}
	defer streams.Close()
	ws := newWatchSet(cfg.Streams)
	sctx, stop := context.WithCancel(ctx)
	defer func() {
		stop()
		ws.wg.Wait()
	}()
	start = time.Now()
	for i := range cfg.Streams {
		ws.wg.Go(func() { ws.watch(sctx, i, streams.client(i), names[i%cfg.Erasures]) })
	}
	if err := ws.waitReady(ctx, openTimeout); err != nil {
		return res, fmt.Errorf("open streams: %w", err)
	}
	res.Open = time.Since(start)

	if err := sleep(ctx, cfg.Settle); err != nil {
		return res, err
	}
	if res.MemAfter, err = t.Memory(); err != nil {
		return res, err
	}

	n := min(int(float64(cfg.Rate)*cfg.Duration.Seconds()), cfg.Erasures)
	cancelled, elapsed, err := cancelPaced(ctx, t, names[:n], cfg.Rate)
	if err != nil {
		return res, fmt.Errorf("cancel: %w", err)
	}
	res.Cancels, res.CancelRate = n, float64(n)/elapsed.Seconds()
	for k := range n {
		res.Uncancellable += btoi(!cancelled[k])
	}
	for i := range cfg.Streams {
		if k := i % cfg.Erasures; k < n && cancelled[k] {
			res.Expected++
		}
	}

	deadline := time.Now().Add(deliverTimeout)
	for int(ws.received.Load()) < res.Expected && time.Now().Before(deadline) && ws.err() == nil {
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return res, err
		}
	}
	stop()
	ws.wg.Wait()
	if err := ws.err(); err != nil {
		return res, err
	}
	res.Received, res.Duplicates, res.Other = int(ws.received.Load()), int(ws.duplicates.Load()), int(ws.other.Load())
	var lats []time.Duration
	for _, l := range ws.latency {
		if l != 0 {
			lats = append(lats, l)
		}
	}
	res.Latency = Summarize(lats)
	return res, nil
}

// watchSet is the client side of the streams.
type watchSet struct {
	wg         sync.WaitGroup // one per stream goroutine
	ready      sync.WaitGroup // one per stream until it has its erasure's current state (or failed)
	opening    chan struct{}  // semaphore: streams not yet ready
	latency    []time.Duration
	received   atomic.Int64
	duplicates atomic.Int64
	other      atomic.Int64
	errOnce    sync.Once
	firstErr   atomic.Pointer[error]
}

func newWatchSet(n int) *watchSet {
	ws := &watchSet{opening: make(chan struct{}, openInFlight), latency: make([]time.Duration, n)}
	ws.ready.Add(n)
	return ws
}

func (ws *watchSet) fail(err error) { ws.errOnce.Do(func() { ws.firstErr.Store(&err) }) }

func (ws *watchSet) err() error {
	if p := ws.firstErr.Load(); p != nil {
		return *p
	}
	return nil
}

// watch runs stream i until ctx ends. A by-name watch from revision 0 starts with the erasure's
// latest change, its current state: the stream is ready when that arrives. After that it expects
// the Cancel's event; anything else is counted as other.
func (ws *watchSet) watch(ctx context.Context, i int, c erasurev1.ErasureServiceClient, name string) {
	ws.opening <- struct{}{}
	ready := sync.OnceFunc(func() {
		<-ws.opening
		ws.ready.Done()
	})
	defer ready()
	stream, err := c.Watch(ctx, &erasurev1.WatchRequest{Name: name})
	first := true
	for err == nil {
		var resp *erasurev1.WatchResponse
		if resp, err = stream.Recv(); err != nil {
			break
		}
		now := time.Now()
		for j, ev := range resp.GetEvents() {
			switch {
			case first && j == 0:
				first = false
				ready()
			case ev.GetErasure().GetState() == erasurev1.State_STATE_CANCELLED:
				if ws.latency[i] != 0 {
					ws.duplicates.Add(1)
					continue
				}
				ws.latency[i] = max(now.Sub(ev.GetTime().AsTime()), time.Nanosecond)
				ws.received.Add(1)
			default:
				ws.other.Add(1)
			}
		}
	}
	if ctx.Err() == nil { // not the end of the run: the stream failed
		ws.fail(fmt.Errorf("stream %d: %w", i, err))
	}
}

// waitReady waits until every stream is ready or has failed.
func (ws *watchSet) waitReady(ctx context.Context, timeout time.Duration) error {
	done := make(chan struct{})
	go func() { // ends when every stream is ready or gone; RunWatch's deferred stop ends them all
		ws.ready.Wait()
		close(done)
	}()
	select {
	case <-done:
		return ws.err()
	case <-time.After(timeout):
		return fmt.Errorf("streams not ready after %s", timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// cancelPaced cancels names in order at rate per second (an open loop: the schedule does not wait
// for slow Cancels, up to cancelCallers of them in flight). It reports which erasures it cancelled
// (a FAILED_PRECONDITION refusal is not an error: the erasure was past cancelling) and how long it
// took.
func cancelPaced(ctx context.Context, t Target, names []string, rate int) (cancelled []bool, elapsed time.Duration, err error) {
	p, err := dialPool(t.Addr(), 4)
	if err != nil {
		return nil, 0, err
	}
	defer p.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cancelled = make([]bool, len(names))
	jobs := make(chan int)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for w := range cancelCallers {
		wg.Go(func() {
			for k := range jobs {
				_, err := p.client(w).Cancel(ctx, &erasurev1.CancelRequest{Name: names[k], Reason: "benchmark"})
				switch {
				case err == nil:
					cancelled[k] = true
				case status.Code(err) != codes.FailedPrecondition:
					errOnce.Do(func() { firstErr = fmt.Errorf("%s: %w", names[k], err); cancel() })
				}
			}
		})
	}
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for k := range names {
		if sleep(ctx, time.Until(start.Add(time.Duration(k)*interval))) != nil {
			break
		}
		select {
		case jobs <- k:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	elapsed = time.Since(start)
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return cancelled, elapsed, firstErr
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	return liveperson.SystemClock{}.Sleep(ctx, d)
}
