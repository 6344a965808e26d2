package service

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestWatchDeliversChangesInOrder(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1", customer("a")))
	w, err := e.svc.Watch(ctx, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := e.svc.Cancel(ctx, a.Erasure.Name(), "r"); err != nil {
		t.Fatal(err)
	}
	var got []Event
	for len(got) < 2 {
		evs, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		got = append(got, evs...)
	}
	if got[0].Revision != 1 || got[0].PreviousState != StateUnspecified || got[0].Erasure.State != StateReceived {
		t.Errorf("event 1 = rev %d %s→%s, want rev 1 UNSPECIFIED→RECEIVED", got[0].Revision, got[0].PreviousState, got[0].Erasure.State)
	}
	if got[1].Revision != 2 || got[1].PreviousState != StateReceived || got[1].Erasure.State != StateCancelled || got[1].Erasure.Revision != 2 {
		t.Errorf("event 2 = rev %d %s→%s (snapshot rev %d), want rev 2 RECEIVED→CANCELLED", got[1].Revision, got[1].PreviousState, got[1].Erasure.State, got[1].Erasure.Revision)
	}
}

func TestWatchOneErasureStartsWithItsLatestChange(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var target SubmitResult
	for i := range 5 {
		r := e.submit(submitReq(fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1), "1", customer(fmt.Sprint(i))))
		if i == 2 {
			target = r
		}
	}
	w, err := e.svc.Watch(ctx, target.Erasure.Name(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	evs, err := w.Next(ctx)
	if err != nil || len(evs) != 1 || evs[0].Erasure.ID != target.Erasure.ID || evs[0].Revision != target.Erasure.Revision {
		t.Fatalf("first batch = %+v, %v; want the erasure's creation event only", evs, err)
	}
	if _, err := e.svc.Watch(ctx, "erasures/unknown", 0); KindOf(err) != KindNotFound {
		t.Errorf("Watch unknown erasure: %v, want NotFound", err)
	}
}

func TestWatchCompactedAndFuture(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for i := range 10 {
		e.submit(submitReq(fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1), "1", customer(fmt.Sprint(i))))
	}
	if err := e.svc.Compact(ctx, 4); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Watch(ctx, "", 2)
	var se *Error
	if KindOf(err) != KindOutOfRange || !asError(err, &se) || se.Metadata["oldest_revision"] != "7" {
		t.Errorf("Watch(2) after keeping 4 of 10: %v, want OutOfRange naming oldest 7", err)
	}
	if _, err := e.svc.Watch(ctx, "", 50); KindOf(err) != KindOutOfRange {
		t.Errorf("Watch(50) with revision 10: %v, want OutOfRange", err)
	}
	w, err := e.svc.Watch(ctx, "", 11)
	if err != nil {
		t.Errorf("Watch(current+1): %v, want success", err)
	} else {
		w.Close()
	}
}
