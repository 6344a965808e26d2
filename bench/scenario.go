package bench

import (
	"context"
	"flag"
	"io"
)

// Scenario is a benchmark that brings its own flags and prints its own report: `-only <Name>`
// runs it alone, and the full suite runs it after the built-in scenarios.
type Scenario struct {
	Name  string // the -only value
	About string // one line for -only's help
	// Flags registers the scenario's own flags (named with its Name as prefix) on fs.
	Flags func(fs *flag.FlagSet)
	// Run measures, cfg.Runs times where that makes sense, and writes its table to out.
	// cfg.Dir is a scratch directory that outlives Run; cfg.Progress takes progress lines.
	Run func(ctx context.Context, cfg Config, out io.Writer) error
}

// Scenarios are the benchmarks beyond Submit, etcd, Watch and pipeline, in the order the full
// suite runs them.
var Scenarios = []*Scenario{&monthScenario, &restartScenario, &submitPipelineScenario}
