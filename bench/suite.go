package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/erasured/erasured/service"
)

// Config selects what a suite run measures.
type Config struct {
	Runs          int   // repetitions of every scenario; the report gives medians
	Clients       []int // Submit callers and raw writers per point
	Warmup        time.Duration
	Duration      time.Duration // measurement window per Submit and raw point
	SampleSubmits int           // Submits whose stored bytes size the raw baseline's record
	Watch         WatchConfig
	WatchServer   string // "child" (default), "erasured" or "inprocess": see watchTarget
	Pipeline      PipelineConfig
	PipelineRuns  int   // repetitions of the pipeline scenario (0: Runs)
	EtcdClients   []int // Submit callers and raw Put writers per etcd point (nil: DefaultEtcdClients)
	EtcdMaxTxnOps []int // etcd's --max-txn-ops, told to the store too, one etcd member each (nil: etcd's default, 128)
	SkipSubmit    bool
	SkipEtcd      bool
	SkipWatch     bool
	SkipPipeline  bool
	Dir           string    // scratch directory; every database lives and dies under it
	Progress      io.Writer // a line per finished measurement
}

// System is what a Submit-scenario point measured.
type System int

// The systems, from the whole service down to bare bbolt.
const (
	SysSubmit System = iota // Submit over gRPC: server, service, store, bbolt
	SysFloor                // a gRPC call through the same server that writes nothing: what gRPC alone allows
	SysStore                // store.Update writing Submit's layout
	SysLayout               // raw bbolt group commit writing Submit's layout
	SysRaw                  // raw bbolt group commit writing one record: the baseline
	numSystems
)

func (s System) String() string {
	return [...]string{"Submit over gRPC", "Status over gRPC, no write", "store.Update, Submit's layout", "raw bbolt, Submit's layout", "raw bbolt, one record"}[s]
}

// Results are every measurement of a suite run.
type Results struct {
	Bytes      SubmitBytes
	Points     [numSystems]map[int][]Point // by system, then concurrency: one per run
	Watch      []WatchResult
	MemoryKind string // what the Watch memory figures count
	Pipeline   []PipelineResult
	Etcd       []EtcdResult // by --max-txn-ops setting, in the order measured
}

// Run measures everything cfg asks for.
func Run(ctx context.Context, cfg Config) (Results, error) {
	var res Results
	if err := checkWatchServer(cfg.WatchServer); err != nil { // first: a typo should not cost the Submit scenario's minutes
		return res, err
	}
	for i := range res.Points {
		res.Points[i] = map[int][]Point{}
	}
	if !cfg.SkipSubmit {
		if err := runSubmit(ctx, cfg, &res); err != nil {
			return res, err
		}
	}
	if !cfg.SkipEtcd {
		if err := runEtcd(ctx, cfg, &res); err != nil {
			return res, fmt.Errorf("etcd: %w", err)
		}
	}
	if !cfg.SkipWatch {
		if err := runWatch(ctx, cfg, &res); err != nil {
			return res, err
		}
	}
	if !cfg.SkipPipeline {
		if err := runPipeline(ctx, cfg, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// runSubmit measures Submit and its baselines. The points of one concurrency run back to back
// (raw 1, layout 1, store 1, Submit 1, raw 16, ...), so that a noisy neighbour on the shared
// machine hits both sides of a ratio alike.
func runSubmit(ctx context.Context, cfg Config, res *Results) error {
	var err error
	if res.Bytes, err = sampleBytes(ctx, cfg); err != nil {
		return fmt.Errorf("measure what Submit stores: %w", err)
	}
	cfg.logf("Submit stores %d bytes per call (%s), measured over %d Submits", res.Bytes.PerSubmit, bucketBytes(res.Bytes), res.Bytes.Erasures)
	one, shaped := OneRecord(res.Bytes.PerSubmit), SubmitLayout(res.Bytes)
	measure := [numSystems]func(dir string, l Load) (Point, error){
		SysRaw:    func(dir string, l Load) (Point, error) { return RunRaw(ctx, dir, one, l) },
		SysLayout: func(dir string, l Load) (Point, error) { return RunRaw(ctx, dir, shaped, l) },
		SysStore:  func(dir string, l Load) (Point, error) { return RunStore(ctx, dir, shaped, l) },
		SysSubmit: func(dir string, l Load) (Point, error) {
			return withInProcess(dir, func(t *InProcess) (Point, error) { return RunSubmit(ctx, t, l) })
		},
		SysFloor: func(dir string, l Load) (Point, error) {
			return withInProcess(dir, func(t *InProcess) (Point, error) { return RunStatusMiss(ctx, t, l) })
		},
	}
	for run := 1; run <= cfg.Runs; run++ {
		for _, c := range cfg.Clients {
			l := Load{Concurrency: c, Warmup: cfg.Warmup, Duration: cfg.Duration}
			line := fmt.Sprintf("run %d/%d  c=%-3d", run, cfg.Runs, c)
			for sys := numSystems - 1; sys >= 0; sys-- {
				p, err := inDir(cfg.Dir, "point", func(dir string) (Point, error) { return measure[sys](dir, l) })
				if err != nil {
					return fmt.Errorf("%s, %d callers: %w", sys, c, err)
				}
				res.Points[sys][c] = append(res.Points[sys][c], p)
				line += fmt.Sprintf(" | %s %.0f/s p50 %v", [...]string{"Submit", "Status", "store", "layout", "raw"}[sys], p.Rate(), ms(p.Latency.P50))
			}
			cfg.logf("%s", line)
		}
	}
	return nil
}

// runWatch runs the fan-out scenario cfg.Runs times, each on a fresh target.
func runWatch(ctx context.Context, cfg Config, res *Results) error {
	start, kind, err := watchTarget(ctx, cfg)
	if err != nil {
		return err
	}
	res.MemoryKind = kind
	for run := 1; run <= cfg.Runs; run++ {
		w, err := inDir(cfg.Dir, "watch", func(dir string) (WatchResult, error) {
			t, err := start(dir)
			if err != nil {
				return WatchResult{}, err
			}
			w, err := RunWatch(ctx, t, cfg.Watch)
			return w, errors.Join(err, t.Close())
		})
		if err != nil {
			return fmt.Errorf("watch: %w", err)
		}
		res.Watch = append(res.Watch, w)
		cfg.logf("run %d/%d  watch: %d streams open in %v (erasures created in %v); %d/%d events, p50 %v p99 %v max %v; %.1f kB per idle stream; %.0f cancels/s",
			run, cfg.Runs, w.Streams, w.Open.Round(time.Millisecond), w.Create.Round(time.Millisecond),
			w.Received, w.Expected, ms(w.Latency.P50), ms(w.Latency.P99), ms(w.Latency.Max),
			w.PerStream()/1000, w.CancelRate)
	}
	return nil
}

// runPipeline runs the pipeline scenario cfg.PipelineRuns times (default cfg.Runs), each on a
// fresh store and simulator.
func runPipeline(ctx context.Context, cfg Config, res *Results) error {
	runs := cfg.PipelineRuns
	if runs <= 0 {
		runs = cfg.Runs
	}
	for run := 1; run <= runs; run++ {
		p, err := inDir(cfg.Dir, "pipeline", func(dir string) (PipelineResult, error) { return RunPipeline(ctx, dir, cfg.Pipeline) })
		if err != nil {
			return fmt.Errorf("pipeline: %w", err)
		}
		res.Pipeline = append(res.Pipeline, p)
		cfg.logf("run %d/%d  pipeline: %d erasures, %d COMPLETED, end to end %v (ideal %v) = %.2f (for the calls made: %v = %.2f); "+
			"resolution %v, %s %.0f/s, %s %.0f/s (limit %.0f), %d×429; LP requests %d (ideal %d) = %.2f, %.1f ids each; %d duplicates",
			run, runs, p.Config.Subjects, p.ByState[service.StateCompleted], p.EndToEnd.Round(100*time.Millisecond),
			p.Ideal().Round(100*time.Millisecond), p.TimeRatio(), p.IdealAsRun().Round(100*time.Millisecond), p.TimeRatioAsRun(),
			p.ResolvePhase.Round(100*time.Millisecond), searchServices[0], p.SearchRate(searchServices[0]),
			searchServices[1], p.SearchRate(searchServices[1]), p.Config.SearchRate,
			p.Calls.Throttled[searchServices[0]]+p.Calls.Throttled[searchServices[1]],
			p.UsedRequests(0), p.IdealRequests(0), p.QuotaRatio(0), p.IDsPerRequest(0), p.Duplicates)
	}
	return nil
}

// sampleBytes measures what one Submit stores, on a server of its own.
func sampleBytes(ctx context.Context, cfg Config) (SubmitBytes, error) {
	return inDir(cfg.Dir, "sample", func(dir string) (SubmitBytes, error) {
		return withInProcess(dir, func(t *InProcess) (SubmitBytes, error) {
			return MeasureSubmitBytes(ctx, t, cfg.SampleSubmits)
		})
	})
}

// watchTarget returns how to start a Watch target in a directory, and what its memory figure
// counts:
//
//   - child: this executable serving what StartInProcess serves, in a process of its own, so that
//     the memory read is the server's alone. The default.
//   - erasured: the real cmd/erasured, built here, in sandbox mode. Its pipeline and simulated
//     LivePerson act on the benchmark's erasures: their events and CPU are measured too.
//   - inprocess: in this process; memory then includes the client side of every stream.
func watchTarget(ctx context.Context, cfg Config) (start func(dir string) (Target, error), kind string, err error) {
	switch cfg.WatchServer {
	case "", "child":
		return func(dir string) (Target, error) { return StartChild(ctx, dir) }, (&Subprocess{}).MemoryKind(), nil
	case "erasured":
		bin, err := BuildErasured(ctx, cfg.Dir)
		if err != nil {
			return nil, "", err
		}
		return func(dir string) (Target, error) { return StartErasured(ctx, bin, dir) }, (&Subprocess{}).MemoryKind(), nil
	case "inprocess":
		return func(dir string) (Target, error) { return StartInProcess(dir) }, (&InProcess{}).MemoryKind(), nil
	}
	return nil, "", checkWatchServer(cfg.WatchServer)
}

func checkWatchServer(s string) error {
	switch s {
	case "", "child", "erasured", "inprocess":
		return nil
	}
	return fmt.Errorf("unknown Watch server %q: want child, erasured or inprocess", s)
}

// inDir runs fn in a fresh directory under root and removes it afterwards: every measurement
// starts from an empty database, and from a collected heap, so that it does not pay for the
// garbage of the one before.
func inDir[T any](root, prefix string, fn func(dir string) (T, error)) (T, error) {
	runtime.GC()
	dir, err := os.MkdirTemp(root, prefix+"-")
	if err != nil {
		var zero T
		return zero, err
	}
	v, err := fn(dir)
	return v, errors.Join(err, os.RemoveAll(dir))
}

// withInProcess runs fn against an in-process server over dir and closes it afterwards.
func withInProcess[T any](dir string, fn func(*InProcess) (T, error)) (T, error) {
	t, err := StartInProcess(dir)
	if err != nil {
		var zero T
		return zero, err
	}
	v, err := fn(t)
	return v, errors.Join(err, t.Close())
}

func (c Config) logf(format string, args ...any) {
	if c.Progress != nil {
		fmt.Fprintf(c.Progress, format+"\n", args...)
	}
}

// ms rounds d for display: to 10 µs below 10 ms, to 0.1 ms above.
func ms(d time.Duration) time.Duration {
	if d < 10*time.Millisecond {
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(100 * time.Microsecond)
}
