// Command erasured-bench measures erasured against baselines taken in the same run and prints
// medians over several runs: Submit against a raw bbolt group commit, Submit on the etcd backend
// against a raw etcd Put, Watch fan-out, and the
// erasure pipeline against the LivePerson simulator's limits. `make bench` runs it with the
// defaults; docs/benchmarks.md explains what is measured and how.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/erasured/erasured/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := realMain(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "erasured-bench:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("erasured-bench", flag.ContinueOnError)
	var (
		cfg     bench.Config
		clients = fs.String("clients", "1,16,64", "comma-separated Submit callers (and raw writers) per point")
		only    = fs.String("only", "", "run only one scenario: submit, etcd, watch, pipeline, or "+scenarioNames())
		etcdCli = fs.String("etcd-clients", "16,64", "comma-separated Submit callers (and raw Put writers) per etcd point")
		etcdOps = fs.String("etcd-max-txn-ops", fmt.Sprint(bench.DefaultEtcdMaxTxnOps), "etcd: comma-separated --max-txn-ops of the embedded etcd, told to the store, each measured on a member of its own (128 is etcd's default)")
		cpuprof = fs.String("cpuprofile", "", "write a CPU profile of this process (clients, and the server when in-process) to `file`")
	)
	fs.IntVar(&cfg.Runs, "runs", 3, "repetitions of every scenario; the table shows medians")
	fs.DurationVar(&cfg.Duration, "duration", 3*time.Second, "measurement window per Submit and raw point")
	fs.DurationVar(&cfg.Warmup, "warmup", 500*time.Millisecond, "uncounted warm-up before each point")
	fs.IntVar(&cfg.SampleSubmits, "sample", 500, "Submits whose stored bytes size the raw baseline's record")
	fs.IntVar(&cfg.Watch.Streams, "streams", 10_000, "concurrent Watch streams")
	fs.IntVar(&cfg.Watch.Erasures, "erasures", 0, "erasures they watch (0: one per stream)")
	fs.IntVar(&cfg.Watch.StreamsPerConn, "streams-per-conn", 250, "Watch streams per client connection")
	fs.IntVar(&cfg.Watch.Rate, "rate", 1000, "Cancels (so change events) per second during the Watch load phase")
	fs.DurationVar(&cfg.Watch.Duration, "watch-duration", 10*time.Second, "length of the Watch load phase")
	fs.DurationVar(&cfg.Watch.Settle, "settle", 2*time.Second, "quiet time before each Watch memory reading")
	fs.StringVar(&cfg.WatchServer, "watch-server", "child", "Watch server: child (a process of its own, without the pipeline), erasured (the real binary, pipeline included) or inprocess")
	fs.IntVar(&cfg.PipelineRuns, "pipeline-runs", 0, "repetitions of the pipeline scenario (0: one in the full suite, -runs with -only pipeline)")
	fs.IntVar(&cfg.Pipeline.Subjects, "subjects", 1000, "pipeline: data subjects submitted at once, one erasure each")
	fs.Float64Var(&cfg.Pipeline.SearchRate, "lp-rate", 500, "pipeline: requests/s the simulator allows per search service (engHistDomain, msgHist); the client is told")
	fs.DurationVar(&cfg.Pipeline.Latency, "lp-latency", 80*time.Millisecond, "pipeline: latency the simulator adds to every search call")
	fs.DurationVar(&cfg.Pipeline.DeletionLatency, "lp-deletion-latency", 150*time.Millisecond, "pipeline: latency the simulator adds to every deletion API call")
	fs.Float64Var(&cfg.Pipeline.Speed, "lp-speed", 86400, "pipeline: how much faster the simulator's clock runs (86400: LivePerson's 5 + 20 days in 25 s)")
	fs.IntVar(&cfg.Pipeline.Workers, "workers", 0, "pipeline: erasured pipeline workers (0: 2 × lp-rate × lp-latency, enough to use both search limits)")
	fs.IntVar(&cfg.Pipeline.Concurrency, "lp-concurrency", 0, "pipeline: client requests in flight per search service (0: as many as workers)")
	fs.DurationVar(&cfg.Pipeline.BatchMaxWait, "batch-max-wait", 0, "pipeline: pipeline.batch_max_wait, an upper bound on a part-full batch's wait (0: none)")
	fs.DurationVar(&cfg.Pipeline.PollInterval, "poll-interval", time.Second, "pipeline: pipeline.poll_interval")
	fs.DurationVar(&cfg.Pipeline.Timeout, "pipeline-timeout", 10*time.Minute, "pipeline: give up when not every erasure has ended after this long")
	for _, sc := range bench.Scenarios {
		if sc.Flags != nil {
			sc.Flags(fs)
		}
	}
	serveChild := fs.String(bench.ChildFlag, "", "internal: serve a store in `dir` for a Watch run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *serveChild != "" {
		return bench.ServeChild(ctx, *serveChild)
	}
	var err error
	if cfg.Clients, err = parseInts(*clients); err != nil {
		return fmt.Errorf("-clients: %w", err)
	}
	if cfg.EtcdClients, err = parseInts(*etcdCli); err != nil {
		return fmt.Errorf("-etcd-clients: %w", err)
	}
	if cfg.EtcdMaxTxnOps, err = parseInts(*etcdOps); err != nil {
		return fmt.Errorf("-etcd-max-txn-ops: %w", err)
	}
	var extra *bench.Scenario // the one scenario of -only, when it names one of bench.Scenarios
	for _, sc := range bench.Scenarios {
		if sc.Name == *only {
			extra = sc
		}
	}
	switch {
	case extra != nil:
	case *only == "":
	case *only == "submit":
		cfg.SkipEtcd, cfg.SkipWatch, cfg.SkipPipeline = true, true, true
	case *only == "etcd":
		cfg.SkipSubmit, cfg.SkipWatch, cfg.SkipPipeline = true, true, true
	case *only == "watch":
		cfg.SkipSubmit, cfg.SkipEtcd, cfg.SkipPipeline = true, true, true
	case *only == "pipeline":
		cfg.SkipSubmit, cfg.SkipEtcd, cfg.SkipWatch = true, true, true
	default:
		return fmt.Errorf("-only must be submit, etcd, watch, pipeline or %s, not %q", scenarioNames(), *only)
	}
	// The pipeline scenario takes about two minutes a run: once in the full suite, unless asked.
	if cfg.PipelineRuns <= 0 {
		cfg.PipelineRuns = 1
		if *only == "pipeline" {
			cfg.PipelineRuns = cfg.Runs
		}
	}
	if cfg.Runs < 1 {
		return errors.New("-runs must be at least 1")
	}

	if cfg.Dir, err = os.MkdirTemp("", "erasured-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(cfg.Dir)
	cfg.Progress = os.Stdout

	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	header := fmt.Sprintf("erasured-bench — %s %s/%s, %d CPUs, GOMAXPROCS %d",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0))
	fmt.Println(header)
	if extra != nil {
		return extra.Run(ctx, cfg, os.Stdout)
	}
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	bench.Report(os.Stdout, cfg, res, header, command(fs))
	if *only != "" {
		return nil // one built-in scenario only
	}
	for _, sc := range bench.Scenarios {
		if err := sc.Run(ctx, cfg, os.Stdout); err != nil {
			return fmt.Errorf("%s: %w", sc.Name, err)
		}
	}
	return nil
}

// scenarioNames lists the -only names of bench.Scenarios.
func scenarioNames() string {
	var names []string
	for _, sc := range bench.Scenarios {
		names = append(names, sc.Name)
	}
	return strings.Join(names, ", ")
}

// command is how to repeat this run: the go run line with the flags that were set.
func command(fs *flag.FlagSet) string {
	parts := []string{"go run ./bench/cmd/erasured-bench"}
	fs.Visit(func(f *flag.Flag) { parts = append(parts, "-"+f.Name+"="+f.Value.String()) })
	return strings.Join(parts, " ")
}

func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}
