package bench

import (
	"context"
	"errors"
	"io"
)

// restartScenario: start-up time and memory with a large store. Not built yet.
var restartScenario = Scenario{
	Name:  "restart",
	About: "start-up time and memory with a large store",
	Run: func(ctx context.Context, cfg Config, out io.Writer) error {
		return errors.New("the restart scenario is not built yet")
	},
}
