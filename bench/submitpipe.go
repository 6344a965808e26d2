package bench

import (
	"context"
	"errors"
	"io"
)

// submitPipelineScenario: Submit to the erasured binary with its pipeline running, next to a raw etcd Put. Not built yet.
var submitPipelineScenario = Scenario{
	Name:  "submitpipe",
	About: "Submit to the erasured binary with its pipeline running, next to a raw etcd Put",
	Run: func(ctx context.Context, cfg Config, out io.Writer) error {
		return errors.New("the submitpipe scenario is not built yet")
	},
}
