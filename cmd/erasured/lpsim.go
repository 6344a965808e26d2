package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/erasured/erasured/liveperson/lpsim"
)

// lpsimMain is `erasured lpsim`: the LivePerson simulator as a standalone server, for running
// erasured with a config file against it.
func lpsimMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := lpsimOptions(args, stderr)
	if err != nil {
		return err
	}
	return lpsim.Serve(ctx, opts, stdout)
}

// lpsimOptions reads the flags of `erasured lpsim`.
func lpsimOptions(args []string, stderr io.Writer) (lpsim.ServeOptions, error) {
	fs := flag.NewFlagSet("lpsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts lpsim.ServeOptions
	fs.StringVar(&opts.Listen, "listen", "127.0.0.1:0", "address to listen on")
	fs.Uint64Var(&opts.Seed, "seed", 1, "seed of the generated data and of probabilistic faults")
	fs.Float64Var(&opts.Speed, "speed", 1, "how many times faster than real time the simulator's clock runs")
	accounts := fs.String("accounts", lpsim.DemoAccount+":us", "comma-separated accounts as id:region")
	fs.IntVar(&opts.Consumers, "consumers", 2000, "generated consumers per account")
	fs.BoolVar(&opts.Demo, "demo", true, "add the documented demo subjects to the first account")
	fs.Float64Var(&opts.LoseCreateAnswers, "lose-create-answers", 0, "share of deletion creates whose answer is lost (503) after LivePerson created the request")
	fs.DurationVar(&opts.SlowCreates, "slow-creates", 0, "how long LivePerson takes to record each deletion create (real time): list and get show it only then")
	throttle := fs.Duration("throttle-searches", 0, "answer every Engagement History and Messaging History call 429 with this Retry-After (whole seconds; 0: off), as a LivePerson over its search limit does")
	variants := fs.Uint64("variants-seed", 0, "seed choosing which of the readings LivePerson's documentation allows the simulator serves (0: the defaults)")
	deleteJSON := fs.String("delete-json", "", "where deletion requests carry delete_json, whatever --variants-seed chose: "+
		lpsim.DeleteJSONEcho+" (create, get and list) or "+lpsim.DeleteJSONCreateOnly+" (the create answer only)")
	if err := fs.Parse(args); err != nil {
		return opts, err
	}
	if *throttle < 0 {
		return opts, fmt.Errorf("lpsim: --throttle-searches must not be negative")
	}
	if *throttle > 0 {
		opts.Faults = append(opts.Faults, lpsim.ThrottleSearches(*throttle)...)
	}
	if *variants != 0 {
		opts.Variants = lpsim.VariantsFromSeed(*variants)
	}
	switch *deleteJSON {
	case "":
	case lpsim.DeleteJSONEcho, lpsim.DeleteJSONCreateOnly:
		opts.Variants.DeleteJSON = *deleteJSON
	default:
		return opts, fmt.Errorf("lpsim: --delete-json must be %s or %s, not %q", lpsim.DeleteJSONEcho, lpsim.DeleteJSONCreateOnly, *deleteJSON)
	}
	for _, spec := range strings.Split(*accounts, ",") {
		id, region, _ := strings.Cut(strings.TrimSpace(spec), ":")
		if id == "" {
			return opts, fmt.Errorf("lpsim: bad --accounts entry %q", spec)
		}
		if region == "" {
			region = "us"
		}
		opts.Accounts = append(opts.Accounts, lpsim.DefaultAccount(id, region))
	}
	if opts.Speed <= 0 {
		return opts, fmt.Errorf("lpsim: --speed must be positive")
	}
	return opts, nil
}
