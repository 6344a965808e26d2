package main

import (
	"context"
	"strings"
	"testing"
	"time"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
	"github.com/erasured/erasured/service"
)

// checkHistory reads the whole change history, from revision 1, the way a watcher does (over the
// service's Watch), and fails the test if any event is a move the transition table does not
// allow (see checkWatchedHistory). finalChecks runs it after every e2e test, once the pipeline
// has stopped.
func (e *e2eEnv) checkHistory() {
	t := e.t
	// Every event is a change of one erasure, and its record keeps the revision of its latest
	// event: the newest of those is the end of the history.
	var last uint64
	req := service.ListRequest{PageSize: service.MaxPageSize}
	for {
		page, err := e.svc.List(context.Background(), req)
		if err != nil {
			t.Errorf("history check: List = %v", err)
			return
		}
		for _, x := range page.Erasures {
			last = max(last, x.Revision)
		}
		if req.PageToken = page.NextPageToken; req.PageToken == "" {
			break
		}
	}
	if last == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := e.svc.Watch(ctx, "", 1)
	if err != nil {
		t.Errorf("history check: Watch from revision 1 = %v", err)
		return
	}
	defer w.Close()
	checkWatchedHistory(t, ctx, last, func(ctx context.Context) ([]service.Event, uint64, error) {
		evs, err := w.Next(ctx)
		if err != nil || len(evs) == 0 {
			return evs, w.Progress(), err
		}
		return evs, evs[len(evs)-1].Revision, nil
	})
}

// checkHistoryOver is checkHistory for an erasured reached over gRPC (the binary, or realMain
// serving): ctx carries the caller's credentials, which need the viewer role. It finds the end
// of the history in List, Watches from revision 1 until a response's progress reaches it, and
// checks the events. A server without erasures passes.
func checkHistoryOver(t testing.TB, ctx context.Context, client erasurev1.ErasureServiceClient) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	all, err := listAll(ctx, client)
	if err != nil {
		t.Errorf("history check: List = %v", err)
		return
	}
	var last uint64
	for _, x := range all {
		last = max(last, uint64(x.GetRevision()))
	}
	if last == 0 {
		return
	}
	w, err := client.Watch(ctx, &erasurev1.WatchRequest{StartRevision: 1})
	if err != nil {
		t.Errorf("history check: Watch from revision 1 = %v", err)
		return
	}
	checkWatchedHistory(t, ctx, last, func(context.Context) ([]service.Event, uint64, error) {
		res, err := w.Recv()
		if err != nil {
			return nil, 0, err
		}
		evs := make([]service.Event, 0, len(res.GetEvents()))
		for _, ev := range res.GetEvents() {
			evs = append(evs, eventFromProto(ev))
		}
		return evs, uint64(res.GetProgressRevision()), nil
	})
}

// eventFromProto is what CheckHistory reads of a Watch event: its revision, the erasure's name
// and state, the state before and the states it declares skipped. The service's states and the
// API's share their numbers.
func eventFromProto(ev *erasurev1.WatchEvent) service.Event {
	out := service.Event{
		Revision:      uint64(ev.GetRevision()),
		Erasure:       service.Erasure{ID: strings.TrimPrefix(ev.GetErasure().GetName(), "erasures/"), State: service.State(ev.GetErasure().GetState())},
		PreviousState: service.State(ev.GetPreviousState()),
	}
	for _, s := range ev.GetSkippedStates() {
		out.Skipped = append(out.Skipped, service.State(s))
	}
	return out
}

// checkWatchedHistory reads a change history from next (a Watch from revision 1: each call
// gives the events it read and the progress revision up to which every change was sent) until
// the progress reaches last, and fails the test if any event is a move the transition table
// does not allow: a jump, a skip that is not declared or does not name the states it skips, an
// event that does not start where the erasure's previous one left it (service.CheckHistory).
func checkWatchedHistory(t testing.TB, ctx context.Context, last uint64, next func(context.Context) ([]service.Event, uint64, error)) {
	t.Helper()
	var evs []service.Event
	for progress := uint64(0); progress < last; {
		got, p, err := next(ctx)
		if err != nil {
			t.Errorf("history check: reading the change history up to revision %d: %v", last, err)
			return
		}
		evs, progress = append(evs, got...), p
	}
	if err := service.CheckHistory(evs); err != nil {
		t.Errorf("the Watch history holds a move the transition table does not allow: %v", err)
	}
}
