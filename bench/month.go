package bench

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/erasured/erasured/service/pipeline"
)

// MonthConfig shapes the month scenario: a month of arrivals on one account, at each demand
// level, run once with each flush policy on a fresh store and simulator, erasured and the
// simulator on one clock running Speed times faster than real time from the start of a UTC
// month, until every erasure is final or the clock reaches Bound after that start.
type MonthConfig struct {
	Quota      int       // monthly deletion-request quota, LivePerson's and erasured's (default 100; the flag's 40)
	Levels     []float64 // demand as shares of what the quota carries (default 0.5, 1, 1.5)
	Policies   []pipeline.FlushPolicy
	Speed      float64       // clock speed (default 200000: two months in 26 s)
	SearchRate float64       // requests/s the simulator allows per search service, and the client is told (default 5000)
	Latency    time.Duration // added to every search call (default none)
	Workers    int           // pipeline workers (default 16)
	Background int           // generated consumers whose records fill the account (default 200)
	Bound      time.Duration // stop this long after the month's start (default 61 days: past the last deadline)
	Runs       int           // repetitions (default 1)
	// StoreDir holds each run's store ("": the scratch directory). A memory file system keeps
	// the run's real time down; the month's clock does not count the store's syncs either way.
	StoreDir string
	// HoldSearches stops the clock while a search call is answered and while a store write
	// commits (see holdDuringSearches and holdingDB).
	HoldSearches bool
	Seed         uint64
}

func (c MonthConfig) withDefaults() MonthConfig {
	if c.Quota <= 0 {
		c.Quota = 100
	}
	if len(c.Levels) == 0 {
		c.Levels = []float64{0.5, 1, 1.5}
	}
	if len(c.Policies) == 0 {
		c.Policies = []pipeline.FlushPolicy{pipeline.FlushPack, pipeline.FlushPerErasure, pipeline.FlushMaxWait}
	}
	if c.Speed <= 0 {
		c.Speed = 200_000
	}
	if c.SearchRate <= 0 {
		c.SearchRate = 5000
	}
	if c.Workers <= 0 {
		c.Workers = 16
	}
	if c.Background < 0 {
		c.Background = 0
	} else if c.Background == 0 {
		c.Background = 200
	}
	if c.Bound <= 0 {
		c.Bound = 61 * 24 * time.Hour
	}
	if c.Runs <= 0 {
		c.Runs = 1
	}
	if c.Seed == 0 {
		c.Seed = 13
	}
	return c
}

// policyName is how the report names a flush policy.
func policyName(p pipeline.FlushPolicy) string {
	switch p {
	case pipeline.FlushPack:
		return "FlushPack"
	case pipeline.FlushPerErasure:
		return "FlushPerErasure"
	case pipeline.FlushMaxWait:
		return "FlushMaxWait 6h"
	}
	return fmt.Sprintf("policy %d", p)
}

// monthFlags is what the scenario's flags set.
var monthFlags struct {
	cfg      MonthConfig
	levels   string
	policies string
}

// monthPolicies are the -month-policies names.
var monthPolicies = map[string]pipeline.FlushPolicy{"pack": pipeline.FlushPack,
	"per-erasure": pipeline.FlushPerErasure, "max-wait": pipeline.FlushMaxWait}

var monthScenario = Scenario{
	Name:  "month",
	About: "a month of arrivals on a fast clock: the flush policy and planner against two naive policies",
	Flags: func(fs *flag.FlagSet) {
		c := &monthFlags.cfg
		fs.IntVar(&c.Quota, "month-quota", 40, "month: the account's monthly deletion-request quota (LivePerson's is 100); demand scales with it, and the run's time with demand (40: 92, 296 and 498 subjects at 50, 100 and 150%; below 20 the sparse kinds alone fill most of the quota)")
		fs.StringVar(&monthFlags.levels, "month-levels", "0.5,1,1.5", "month: demand levels, as shares of what the quota carries")
		fs.StringVar(&monthFlags.policies, "month-policies", "pack,per-erasure,max-wait", "month: flush policies to run (pack, per-erasure, max-wait: batch_max_wait 6h)")
		fs.Float64Var(&c.Speed, "month-speed", 200_000, "month: how much faster than real time the clock runs")
		fs.Float64Var(&c.SearchRate, "month-lp-rate", 5000, "month: requests/s the simulator allows per search service; the client is told")
		fs.IntVar(&c.Workers, "month-workers", 16, "month: erasured pipeline workers")
		fs.BoolVar(&c.HoldSearches, "month-hold-searches", true, "month: stop the clock while a search call is answered and while a store write commits, so that this machine's speed takes no simulated time")
		fs.StringVar(&c.StoreDir, "month-store-dir", defaultMonthStoreDir(), "month: directory of each run's store (default /dev/shm when there is one: syncs there cost no real time)")
		fs.IntVar(&c.Runs, "month-runs", 1, "month: repetitions of the whole scenario")
		fs.Uint64Var(&c.Seed, "month-seed", 13, "month: seed of the arrivals and records")
	},
	Run: func(ctx context.Context, cfg Config, out io.Writer) error {
		mc := monthFlags.cfg
		for _, f := range strings.Split(monthFlags.levels, ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			v, err := strconv.ParseFloat(f, 64)
			if err != nil || v <= 0 {
				return fmt.Errorf("-month-levels: %q is not a positive number", f)
			}
			mc.Levels = append(mc.Levels, v)
		}
		for _, f := range strings.Split(monthFlags.policies, ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			p, ok := monthPolicies[f]
			if !ok {
				return fmt.Errorf("-month-policies: %q is not pack, per-erasure or max-wait", f)
			}
			mc.Policies = append(mc.Policies, p)
		}
		return RunMonthScenario(ctx, cfg.Dir, mc, cfg.Progress, out)
	},
}

// RunMonthScenario runs every demand level with every policy, mc.Runs times, and writes each
// run's report to out.
func RunMonthScenario(ctx context.Context, dir string, mc MonthConfig, progress, out io.Writer) error {
	mc = mc.withDefaults()
	if progress == nil {
		progress = io.Discard
	}
	for run := 1; run <= mc.Runs; run++ {
		began := time.Now()
		var results []monthResult
		for _, level := range mc.Levels {
			d := monthArrivals(mc.Seed+uint64(run-1), mc.Quota, level)
			for _, p := range mc.Policies {
				rdir, err := os.MkdirTemp(cmp.Or(mc.StoreDir, dir), "erasured-month-")
				if err != nil {
					return err
				}
				o, err := runMonth(ctx, rdir, mc, &d, p)
				_ = os.RemoveAll(rdir)
				if err != nil {
					return fmt.Errorf("month %.0f%% %s: %w", 100*level, policyName(p), err)
				}
				r := analyzeMonth(o)
				fmt.Fprintf(progress, "month run %d: demand %.0f%%, %s: %d subjects, %d erased, %d requests, %d missed (%.1fs)\n",
					run, 100*level, policyName(p), r.Subjects, r.Completed, r.Used, r.Missed, o.Real.Seconds())
				results = append(results, r)
			}
		}
		writeMonthReport(out, mc, run, results, time.Since(began))
	}
	return nil
}

// defaultMonthStoreDir is /dev/shm when it is a directory, else "" (the scratch directory).
func defaultMonthStoreDir() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		return "/dev/shm"
	}
	return ""
}
