package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
)

// Watch streams changes. The first message is a heartbeat confirming the watch started (its
// progress_revision is the revision before the first one to come); then batches of events, and
// heartbeats whenever nothing happened for the heartbeat interval. On shutdown the stream ends
// with UNAVAILABLE so the watcher resumes elsewhere or later from its last revision.
func (h *handler) Watch(req *erasurev1.WatchRequest, stream erasurev1.ErasureService_WatchServer) error {
	// The watch runs until the client goes away or the server starts shutting down.
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	stop := context.AfterFunc(h.srv.closing, cancel)
	defer stop()

	w, err := h.svc.Watch(ctx, req.GetName(), uint64(req.GetStartRevision()))
	if err != nil {
		return toStatus(err)
	}
	defer w.Close()
	h.srv.watchers.Add(1)
	defer h.srv.watchers.Add(-1)

	if err := stream.Send(&erasurev1.WatchResponse{ProgressRevision: int64(w.Progress())}); err != nil {
		return err
	}
	for {
		wait, cancelWait := context.WithTimeout(ctx, h.srv.opts.Heartbeat)
		evs, err := w.Next(wait)
		cancelWait()
		switch {
		case err == nil:
		case h.srv.closing.Err() != nil:
			return statusError(codes.Unavailable, "server shutting down; resume from the last revision received", "SHUTTING_DOWN", nil)
		case ctx.Err() != nil:
			// The client went away (or its deadline passed): CANCELED or DEADLINE_EXCEEDED, not the
			// UNKNOWN a bare context error becomes, which the call log reports as a server error.
			return status.FromContextError(ctx.Err()).Err()
		case errors.Is(err, context.DeadlineExceeded):
			if err := stream.Send(&erasurev1.WatchResponse{ProgressRevision: int64(w.Progress())}); err != nil {
				return err
			}
			continue
		default:
			return toStatus(err)
		}
		if len(evs) == 0 {
			continue
		}
		resp := &erasurev1.WatchResponse{Events: make([]*erasurev1.WatchEvent, 0, len(evs))}
		for _, ev := range evs {
			resp.Events = append(resp.Events, eventToProto(ev))
		}
		resp.ProgressRevision = int64(evs[len(evs)-1].Revision)
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}
