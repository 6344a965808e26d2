package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
)

// ctlWatchRetries is how many times in a row a watch reconnects after UNAVAILABLE without
// receiving anything before it gives up.
const ctlWatchRetries = 5

// ctlWatchPause is the wait before the first reconnection; it doubles with each further one.
var ctlWatchPause = time.Second

func ctlWatchCmd(fs *flag.FlagSet) (func() error, ctlRun) {
	from := fs.Int64("from", 0, "")
	check := func() error {
		if *from < 0 {
			return errors.New("--from must be 0 (from now on) or a revision")
		}
		return nil
	}
	return check, func(ctx context.Context, c *ctl, args []string) error {
		name := ""
		if len(args) == 1 {
			name = erasureName(args[0])
		}
		return c.watch(ctx, name, *from)
	}
}

// watch streams changes from revision from (0: from now on). A named watch without --from
// first prints the erasure as it is and goes on from its revision, so that no change is missed
// between the two; it ends when the erasure reaches a final state. After UNAVAILABLE (a server
// shutting down, or the connection lost) it resumes from the revision after the last one
// received, as the API asks. Ctrl-C ends it without an error.
func (c *ctl) watch(ctx context.Context, name string, from int64) error {
	if name != "" && from == 0 {
		cctx, cancel := c.call(ctx)
		resp, err := c.client.Status(cctx, &erasurev1.StatusRequest{Name: name})
		cancel()
		if err != nil {
			return err
		}
		e := resp.Erasure
		if err := c.printEvent(&erasurev1.WatchEvent{Revision: e.GetRevision(), Erasure: e, Time: e.GetUpdateTime()}, true); err != nil {
			return err
		}
		if finalState(e.GetState()) {
			return nil
		}
		from = e.GetRevision() + 1
	}
	failures := 0
	for {
		done, progressed, err := c.watchOnce(ctx, name, &from)
		if done || ctx.Err() != nil {
			return nil
		}
		if progressed {
			failures = 0
		}
		if status.Code(err) != codes.Unavailable || failures >= ctlWatchRetries {
			return err
		}
		pause := ctlWatchPause << failures
		failures++
		fmt.Fprintf(c.errOut, "watch: %s; resuming from revision %d in %s\n", status.Convert(err).Message(), from, pause)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pause):
		}
	}
}

// watchOnce runs one Watch stream, advancing *from past every revision the stream covered.
// done is true when a named erasure reached a final state.
func (c *ctl) watchOnce(ctx context.Context, name string, from *int64) (done, progressed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.client.Watch(ctx, &erasurev1.WatchRequest{Name: name, StartRevision: *from})
	if err != nil {
		return false, false, err
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return false, progressed, err
		}
		progressed = true
		for _, ev := range resp.Events {
			if err := c.printEvent(ev, false); err != nil {
				return false, progressed, err
			}
			*from = ev.Revision + 1
			if name != "" && finalState(ev.GetErasure().GetState()) {
				return true, progressed, nil
			}
		}
		if resp.ProgressRevision >= *from {
			*from = resp.ProgressRevision + 1
		}
	}
}

// finalState reports whether an erasure in state s will not change state again.
func finalState(s erasurev1.State) bool {
	switch s {
	case erasurev1.State_STATE_COMPLETED, erasurev1.State_STATE_FAILED, erasurev1.State_STATE_CANCELLED, erasurev1.State_STATE_REJECTED:
		return true
	}
	return false
}
