package main

import (
	"context"
	"time"

	"github.com/erasured/erasured/service"
)

// checkHistory reads the whole change history, from revision 1, the way a watcher does (over the
// service's Watch), and fails the test if any event is a move the transition table does not
// allow: a jump, a skip that is not declared or does not name the states it skips, an event that
// does not start where the erasure's previous one left it. finalChecks runs it after every e2e
// test, once the pipeline has stopped.
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
	var evs []service.Event
	for len(evs) == 0 || evs[len(evs)-1].Revision < last {
		got, err := w.Next(ctx)
		if err != nil {
			t.Errorf("history check: reading the change history up to revision %d: %v", last, err)
			return
		}
		evs = append(evs, got...)
	}
	if err := service.CheckHistory(evs); err != nil {
		t.Errorf("the Watch history holds a move the transition table does not allow: %v", err)
	}
}
