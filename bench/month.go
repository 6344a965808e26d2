package bench

import (
	"context"
	"errors"
	"io"
)

// monthScenario: a month of arrivals on a fast clock: the flush policy and planner against two naive policies. Not built yet.
var monthScenario = Scenario{
	Name:  "month",
	About: "a month of arrivals on a fast clock: the flush policy and planner against two naive policies",
	Run: func(ctx context.Context, cfg Config, out io.Writer) error {
		return errors.New("the month scenario is not built yet")
	},
}
