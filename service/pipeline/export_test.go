package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/erasured/erasured/service/model"
)

// What the tests of package pipeline_test use, which reach LivePerson through the simulator and
// liveperson/port (it imports service, and so this package).

// ListWaitEnv is a pipeline over a fake domain with one erasure whose batch 1 is due.
type ListWaitEnv struct{ e *listWaitEnv }

// NewListWaitEnv builds a ListWaitEnv over lp, its clock at t0 and its LivePerson call timeout
// TestCallTimeout.
func NewListWaitEnv(t *testing.T, lp model.LivePerson) ListWaitEnv {
	return ListWaitEnv{newListWaitEnv(t, lp)}
}

// T0 is when a ListWaitEnv starts.
var T0 = t0

// TestCallTimeout is a ListWaitEnv's LivePerson call timeout.
const TestCallTimeout = testCallTimeout

// Step runs batch 1's step under ctx.
func (w ListWaitEnv) Step(ctx context.Context) error { return w.e.stepIn(ctx) }

// Restart replaces the pipeline by a new one over the same store.
func (w ListWaitEnv) Restart() { w.e.restart() }

// SetNow moves the pipeline's clock.
func (w ListWaitEnv) SetNow(t time.Time) { w.e.now = t }

// Batch returns batch 1 and the last_error of its erasure.
func (w ListWaitEnv) Batch(t *testing.T) (*Batch, string) { return w.e.batch(t) }
