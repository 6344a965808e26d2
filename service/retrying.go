package service

import (
	"context"

	"github.com/erasured/erasured/service/pipeline"
)

// CallRetry describes a LivePerson call that failed and is tried again within the same step
// (see pipeline.CallRetry).
type CallRetry = pipeline.CallRetry

// RetryingCall tells the pipeline step that ctx belongs to that a LivePerson call failed and is
// tried again after r.Wait, within the same step (see pipeline.RetryingCall). Outside a step it
// does nothing.
func RetryingCall(ctx context.Context, r CallRetry) { pipeline.RetryingCall(ctx, r) }
