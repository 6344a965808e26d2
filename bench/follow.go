package bench

import (
	"context"

	"github.com/erasured/erasured/service"
)

// followEvents hands every batch of w's events to fn until ctx ends, resuming the watch from
// its progress when it fell behind (UNAVAILABLE). It closes the watch it last held.
func followEvents(ctx context.Context, svc *service.Service, w *service.Watch, fn func([]service.Event)) error {
	for {
		evs, err := w.Next(ctx)
		if err != nil {
			w.Close()
			if ctx.Err() != nil {
				return nil
			}
			if service.KindOf(err) != service.KindUnavailable {
				return err
			}
			if w, err = svc.Watch(ctx, "", w.Progress()+1); err != nil {
				return err
			}
			continue
		}
		fn(evs)
	}
}
