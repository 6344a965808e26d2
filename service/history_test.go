package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// history reads the whole change history of e's store, from revision 1, over Watch. ok is false
// when part of it is compacted away (a test of compaction) or the test closed the store: then
// there is no whole history to read.
func (e *env) history() (evs []Event, ok bool) {
	e.t.Helper()
	rev := e.db.Rev()
	if rev == 0 {
		return nil, true
	}
	if e.db.Oldest() > 1 || e.db.Err() != nil {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sw, err := e.db.Watch(1, "") // e.db: some tests swap the store under the service
	if err != nil {
		e.t.Fatalf("Watch from revision 1: %v", err)
	}
	w := &Watch{w: sw}
	defer w.Close()
	for len(evs) == 0 || evs[len(evs)-1].Revision < rev {
		got, err := w.Next(ctx)
		if err != nil {
			e.t.Fatalf("reading the change history up to revision %d: %v", rev, err)
		}
		evs = append(evs, got...)
	}
	return evs, true
}

// checkHistory fails the test if the store's change history holds a move that the transition
// table does not allow. Every test's env runs it at its end (newEnv).
func (e *env) checkHistory() {
	if e.t.Failed() {
		return
	}
	evs, ok := e.history()
	if !ok {
		return
	}
	if err := CheckHistory(evs); err != nil {
		e.t.Errorf("change history: %v", err)
	}
}

func TestCheckMove(t *testing.T) {
	tests := []struct {
		from, to State
		want     []State
		refused  bool
	}{
		{StateUnspecified, StateReceived, nil, false},
		{StateReceived, StateResolving, nil, false},
		{StateScheduled, StateScheduled, nil, false},
		{StateCompleted, StateCompleted, nil, false}, // a shred changes a final erasure
		{StateSubmitted, StateDeleting, nil, false},
		{StateScheduled, StateFailed, nil, false},
		{StateScheduled, StateDeleting, []State{StateSubmitted}, false},
		{StateScheduled, StateVerifying, []State{StateSubmitted, StateDeleting}, false},
		{StateSubmitted, StateVerifying, []State{StateDeleting}, false},
		{StateScheduled, StateCompleted, nil, true},
		{StateReceived, StateScheduled, nil, true},
		{StateResolving, StateSubmitted, nil, true},
		{StateDeleting, StateScheduled, nil, false}, // a request that had started was cancelled
		{StateDeleting, StateSubmitted, nil, true},  // a status does not go back
		{StateVerifying, StateResolving, nil, true},
		{StateUnspecified, StateResolving, nil, true},
		{StateUnspecified, StateUnspecified, nil, true},
		{StateCompleted, StateScheduled, nil, true},
		{StateCancelled, StateFailed, nil, true},
	}
	for _, tt := range tests {
		got, err := checkMove(tt.from, tt.to)
		var se *Error
		switch {
		case tt.refused && (!errors.As(err, &se) || se.Reason != "STATE_TRANSITION_NOT_ALLOWED"):
			t.Errorf("checkMove(%s, %s) = %v, %v; want STATE_TRANSITION_NOT_ALLOWED", tt.from, tt.to, got, err)
		case !tt.refused && (err != nil || !slices.Equal(got, tt.want)):
			t.Errorf("checkMove(%s, %s) = %v, %v; want skipped %v", tt.from, tt.to, got, err, tt.want)
		}
	}
}

// TestSkipsAreNotTransitions: a declared skip moves forward past states that do have a path
// of single steps between its ends, and it is never also a single step.
func TestSkipsAreNotTransitions(t *testing.T) {
	for k, states := range skips {
		from, to := k[0], k[1]
		if CanTransition(from, to) {
			t.Errorf("%s → %s is both a transition and a skip", from, to)
		}
		path := append(append([]State{from}, states...), to)
		for i := 1; i < len(path); i++ {
			if !CanTransition(path[i-1], path[i]) {
				t.Errorf("skip %s → %s: %s → %s is not a transition", from, to, path[i-1], path[i])
			}
		}
		if got, ok := Skipped(from, to); !ok || !slices.Equal(got, states) {
			t.Errorf("Skipped(%s, %s) = %v, %v", from, to, got, ok)
		}
	}
	if got, ok := Skipped(StateScheduled, StateSubmitted); ok || got != nil {
		t.Errorf("Skipped(SCHEDULED, SUBMITTED) = %v, %v; want no skip", got, ok)
	}
}

func TestCheckHistory(t *testing.T) {
	ev := func(rev uint64, id string, from, to State, skipped ...State) Event {
		return Event{Revision: rev, Erasure: Erasure{ID: id, State: to}, PreviousState: from, Skipped: skipped}
	}
	created := []Event{ev(1, "a", StateUnspecified, StateReceived), ev(2, "b", StateUnspecified, StateReceived),
		ev(3, "a", StateReceived, StateResolving), ev(4, "a", StateResolving, StateScheduled)}
	with := func(more ...Event) []Event { return append(slices.Clone(created), more...) }
	tests := []struct {
		name    string
		history []Event
		want    string // in the error; "" for none
	}{
		{"valid", with(ev(5, "a", StateScheduled, StateSubmitted), ev(6, "a", StateSubmitted, StateSubmitted),
			ev(7, "b", StateReceived, StateCancelled)), ""},
		{"declared skip", with(ev(5, "a", StateScheduled, StateVerifying, StateSubmitted, StateDeleting),
			ev(6, "a", StateVerifying, StateCompleted)), ""},
		{"illegal jump", with(ev(5, "a", StateScheduled, StateCompleted)), "revision 5: SCHEDULED → COMPLETED is not"},
		{"skip not named", with(ev(5, "a", StateScheduled, StateDeleting)), "revision 5: SCHEDULED → DELETING names skipped states [], want [SUBMITTED]"},
		{"skip named wrong", with(ev(5, "a", StateScheduled, StateVerifying, StateDeleting)), "want [SUBMITTED DELETING]"},
		{"skipped states on one step", with(ev(5, "a", StateScheduled, StateSubmitted, StateSubmitted)), "revision 5"},
		{"broken chain", with(ev(5, "a", StateSubmitted, StateDeleting)), "revision 5: the event moves from SUBMITTED, but the erasure's previous event left it SCHEDULED"},
		{"no creation", []Event{ev(1, "a", StateReceived, StateResolving)}, "revision 1: the first event"},
		{"created twice", with(ev(5, "b", StateUnspecified, StateReceived)), "revision 5"},
	}
	for _, tt := range tests {
		err := CheckHistory(tt.history)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: CheckHistory = %v, want nil", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: CheckHistory = %v, want an error with %q", tt.name, err, tt.want)
		}
	}
}

// TestIllegalJumpRefused: a change that jumps from SCHEDULED to COMPLETED, made through the
// path by which every pipeline step commits (Pipeline.CommitForTest, over the Service's Domain)
// or through Service.update, is refused with STATE_TRANSITION_NOT_ALLOWED and writes nothing:
// the record keeps its state and revision, and the history gains no event.
func TestIllegalJumpRefused(t *testing.T) {
	e := newPipeEnv(t)
	e.seedCustomer()
	name := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123"))).Erasure.Name()
	e.settle()
	before := e.wantState(name, StateScheduled)
	rev := e.db.Rev()
	jumps := map[string]func() error{
		"pipeline commit": func() error {
			return e.p.CommitForTest(context.Background(), before.ID, func(r *record) { r.State = StateCompleted })
		},
		"Service.update": func() error {
			_, err := e.svc.update(context.Background(), before.ID, func(r *record) error { r.State = StateCompleted; return nil })
			return err
		},
	}
	for via, jump := range jumps {
		err := jump()
		var se *Error
		if !errors.As(err, &se) || se.Reason != "STATE_TRANSITION_NOT_ALLOWED" {
			t.Errorf("%s: SCHEDULED → COMPLETED = %v, want STATE_TRANSITION_NOT_ALLOWED", via, err)
		}
		got := e.status(name)
		if got.State != StateScheduled || got.Revision != before.Revision || got.Receipt != nil {
			t.Errorf("%s: after the refused jump the erasure is %s at revision %d, want SCHEDULED at %d", via, got.State, got.Revision, before.Revision)
		}
		if e.db.Rev() != rev {
			t.Errorf("%s: the refused jump wrote events (revision %d, was %d)", via, e.db.Rev(), rev)
		}
	}
}

// TestPollPastInProgressRecordsOneSkip: when LivePerson's request goes from NOT_STARTED to DONE
// between two polls, the erasure moves from SUBMITTED to VERIFYING in one event that names
// DELETING as skipped, instead of an invented stop in DELETING.
func TestPollPastInProgressRecordsOneSkip(t *testing.T) {
	e := newPipeEnv(t)
	e.seedCustomer()
	name := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123"))).Erasure.Name()
	e.settle()
	e.advance(e.cfg.BatchMaxWait)
	e.wantState(name, StateSubmitted)
	e.lp.advance(LPNotStarted, LPDone)
	e.advance(5 * 24 * time.Hour)
	e.wantState(name, StateCompleted)
	evs, _ := e.history()
	var moves []string
	for _, ev := range evs {
		if ev.PreviousState != ev.Erasure.State {
			m := ev.PreviousState.String() + "→" + ev.Erasure.State.String()
			for _, s := range ev.Skipped {
				m += " skipping " + s.String()
			}
			moves = append(moves, m)
		}
	}
	want := []string{"UNSPECIFIED→RECEIVED", "RECEIVED→RESOLVING", "RESOLVING→SCHEDULED", "SCHEDULED→SUBMITTED",
		"SUBMITTED→VERIFYING skipping DELETING", "VERIFYING→COMPLETED"}
	if !slices.Equal(moves, want) {
		t.Errorf("moves = %q, want %q", moves, want)
	}
}

// TestSkipEventEncoding: the event of a skip is the JSON of its Event, skipped states included,
// and reads back with them.
func TestSkipEventEncoding(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	r := &record{Erasure: Erasure{ID: "0190d7a4-0000-7000-8000-000000000001", AccountID: "1234", State: StateVerifying, UpdateTime: now}}
	skipped := []State{StateDeleting}
	c, err := encodeChange(r, StateSubmitted, skipped, now)
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(Event{Erasure: r.Erasure, PreviousState: StateSubmitted, Skipped: skipped, Time: now})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.event, want) {
		t.Errorf("event = %s\nwant json.Marshal of the Event: %s", c.event, want)
	}
	var got Event
	if err := json.Unmarshal(c.event, &got); err != nil || got.PreviousState != StateSubmitted || !slices.Equal(got.Skipped, skipped) {
		t.Errorf("event decodes to %+v, %v; want SUBMITTED → VERIFYING skipping DELETING", got, err)
	}
}
