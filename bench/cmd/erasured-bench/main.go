// Command erasured-bench measures erasured against baselines taken in the same run and prints
// medians over several runs: Submit against a raw bbolt group commit, and Watch fan-out. `make
// bench` runs it with the defaults; docs/benchmarks.md explains what is measured and how.
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
		only    = fs.String("only", "", "run only one scenario: submit or watch")
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
	switch *only {
	case "":
	case "submit":
		cfg.SkipWatch = true
	case "watch":
		cfg.SkipSubmit = true
	default:
		return fmt.Errorf("-only must be submit or watch, not %q", *only)
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
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	bench.Report(os.Stdout, cfg, res, header, command(fs))
	return nil
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
