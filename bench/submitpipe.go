package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/erasured/erasured/store/etcdstore/etcdtest"
)

// The submitpipe scenario: Submit to the erasured binary the way a user runs it — real mode, a
// config file, the bbolt store, one account whose LivePerson is an `erasured lpsim` process
// reached through its Domain API with OAuth 2.0 client credentials — with the pipeline running
// on every submitted erasure. The simulator answers every search 429 (--throttle-searches), so
// that resolution waits instead of working: what is measured is Submit plus the pipeline's
// per-erasure cost (waking, scheduling, holding or backing off), not the searches. Next to it,
// in the same run, clientv3 Puts against an embedded single-member etcd of values of Submit's
// stored size: the goal is Submit/Put ≥ 1 at every client count.

// SubmitPipeConfig is the shape of the submitpipe scenario.
type SubmitPipeConfig struct {
	Clients    []int         // Submit callers (and Put writers) per point
	RetryAfter time.Duration // the simulator's Retry-After on every search
}

var submitPipeCfg = SubmitPipeConfig{RetryAfter: 30 * time.Second}

// submitPipelineScenario: Submit to the erasured binary with its pipeline running, next to a raw etcd Put.
var submitPipelineScenario = Scenario{
	Name:  "submitpipe",
	About: "Submit to the erasured binary with its pipeline running, next to a raw etcd Put",
	Flags: func(fs *flag.FlagSet) {
		fs.Func("submitpipe-clients", "submitpipe: comma-separated Submit callers (and etcd Put writers) per point (default 16,64)", func(s string) error {
			n, err := parseClientList(s)
			submitPipeCfg.Clients = n
			return err
		})
		fs.DurationVar(&submitPipeCfg.RetryAfter, "submitpipe-retry-after", submitPipeCfg.RetryAfter, "submitpipe: the Retry-After of the simulator's 429 on every search")
	},
	Run: func(ctx context.Context, cfg Config, out io.Writer) error {
		res, err := RunSubmitPipe(ctx, cfg, submitPipeCfg)
		if err != nil {
			return err
		}
		ReportSubmitPipe(out, cfg, res)
		return nil
	},
}

// SubmitPipeResult is every point of a submitpipe run: by client count, one per run.
type SubmitPipeResult struct {
	Config SubmitPipeConfig
	Bytes  int // what one Submit stores (bbolt), the size of each Put
	Submit map[int][]Point
	Put    map[int][]Point
	// Bolt is the floor of any service that stores each request durably in bbolt: a raw bbolt
	// group commit of one record of Submit's size per write, no gRPC, no service.
	Bolt map[int][]Point
}

// RunSubmitPipe measures the scenario cfg.Runs times. It builds the erasured binary, starts one
// simulator and one etcd member for the whole run, and a fresh erasured (fresh database) per
// Submit point. The points of one client count run back to back, Put first.
func RunSubmitPipe(ctx context.Context, cfg Config, sp SubmitPipeConfig) (SubmitPipeResult, error) {
	if len(sp.Clients) == 0 {
		sp.Clients = DefaultEtcdClients
	}
	res := SubmitPipeResult{Config: sp, Submit: map[int][]Point{}, Put: map[int][]Point{}, Bolt: map[int][]Point{}}
	sb, err := sampleBytes(ctx, cfg)
	if err != nil {
		return res, fmt.Errorf("measure what Submit stores: %w", err)
	}
	res.Bytes = sb.PerSubmit
	bin, err := BuildErasured(ctx, cfg.Dir)
	if err != nil {
		return res, err
	}
	sim, err := StartLPSim(ctx, bin, "--throttle-searches", sp.RetryAfter.String())
	if err != nil {
		return res, err
	}
	defer sim.Close()
	_, err = inDir(cfg.Dir, "submitpipe-etcd", func(dir string) (struct{}, error) {
		cluster, err := etcdtest.New(etcdtest.Config{Dir: dir, Direct: true, MaxTxnOps: DefaultEtcdMaxTxnOps})
		if err != nil {
			return struct{}{}, fmt.Errorf("start etcd: %w", err)
		}
		defer cluster.Close()
		e := &etcdBench{maxTxnOps: DefaultEtcdMaxTxnOps, cluster: cluster}
		if e.admin, err = cluster.Client(); err != nil {
			return struct{}{}, err
		}
		defer e.admin.Close()
		for run := 1; run <= cfg.Runs; run++ {
			for _, c := range sp.Clients {
				l := Load{Concurrency: c, Warmup: cfg.Warmup, Duration: cfg.Duration}
				put, err := e.point(ctx, func(prefix string) (EtcdPoint, error) { return e.runRaw(ctx, prefix, res.Bytes, l) })
				if err != nil {
					return struct{}{}, fmt.Errorf("etcd Put, %d writers: %w", c, err)
				}
				sub, err := inDir(cfg.Dir, "submitpipe", func(dir string) (Point, error) {
					t, err := StartErasuredReal(ctx, bin, dir, sim.Addr())
					if err != nil {
						return Point{}, err
					}
					p, err := RunSubmit(ctx, t, l)
					return p, errors.Join(err, t.Close())
				})
				if err != nil {
					return struct{}{}, fmt.Errorf("Submit with the pipeline, %d callers: %w", c, err)
				}
				bolt, err := inDir(cfg.Dir, "submitpipe-bolt", func(dir string) (Point, error) {
					return RunRaw(ctx, dir, OneRecord(res.Bytes), l)
				})
				if err != nil {
					return struct{}{}, fmt.Errorf("raw bbolt, %d writers: %w", c, err)
				}
				res.Put[c] = append(res.Put[c], put.Point)
				res.Submit[c] = append(res.Submit[c], sub)
				res.Bolt[c] = append(res.Bolt[c], bolt)
				cfg.logf("run %d/%d  submitpipe c=%-3d | Put %.0f/s p50 %v | Submit %.0f/s p50 %v | raw bbolt %.0f/s p50 %v | Submit/Put %.2f",
					run, cfg.Runs, c, put.Rate(), ms(put.Latency.P50), sub.Rate(), ms(sub.Latency.P50),
					bolt.Rate(), ms(bolt.Latency.P50), sub.Rate()/max(put.Rate(), 1))
			}
		}
		return struct{}{}, nil
	})
	return res, err
}

// Ratio is the median over runs of each run's Submit rate over that run's Put rate.
func (r SubmitPipeResult) Ratio(clients int) float64 { return ratio(r.Submit[clients], r.Put[clients]) }

// ReportSubmitPipe prints the scenario's table: medians over runs, and PASS or BELOW against
// the goal of Submit/Put ≥ 1.
func ReportSubmitPipe(w io.Writer, cfg Config, r SubmitPipeResult) {
	fmt.Fprintf(w, "\n## Submit with the pipeline running (erasured binary, real mode, every search 429) vs raw etcd Put\n\n")
	fmt.Fprintf(w, "%d runs, %v warm-up + %v per point; Put values of Submit's stored size (%d B); simulator Retry-After %v\n\n",
		cfg.Runs, cfg.Warmup, cfg.Duration, r.Bytes, r.Config.RetryAfter)
	if r.Config.Clients == nil {
		r.Config.Clients = DefaultEtcdClients
	}
	fmt.Fprintf(w, "| clients | Submit ops/s | p50 | p99 | etcd Put ops/s | p50 | p99 | raw bbolt ops/s | p50 | Submit/Put | raw bbolt/Put | Submit/raw bbolt | goal ≥ 1.0 |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range r.Config.Clients {
		s, p, b := medianOf(r.Submit[c]), medianOf(r.Put[c]), medianOf(r.Bolt[c])
		verdict := "PASS"
		if r.Ratio(c) < 1 {
			verdict = "BELOW"
		}
		fmt.Fprintf(w, "| %d | %.0f | %v | %v | %.0f | %v | %v | %.0f | %v | %.2f | %.2f | %.2f | %s |\n", c, s.rate, ms(s.p50), ms(s.p99),
			p.rate, ms(p.p50), ms(p.p99), b.rate, ms(b.p50), r.Ratio(c), ratio(r.Bolt[c], r.Put[c]), ratio(r.Submit[c], r.Bolt[c]), verdict)
	}
	fmt.Fprintf(w, "\nraw bbolt is a group commit of one record of Submit's size per write, in this process, no gRPC:\n"+
		"what any service that makes each request durable in bbolt before answering can reach at most. bbolt syncs twice\n"+
		"per commit (its pages, then its meta page); etcd once per batch of Puts (its WAL).\n")
}

func parseClientList(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(f), &n); err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}
