package service

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// eventsOf returns every event of erasure name kept in the history, oldest first.
func eventsOf(t *testing.T, e *pipeEnv, name string) []Event {
	t.Helper()
	w, err := e.svc.Watch(context.Background(), name, e.db.Oldest())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var out []Event
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		evs, err := w.Next(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, evs...)
	}
}

// TestLogStateChangesAndRequests: every state change of an erasure is logged once, from and to
// as the API names them, and so is each LivePerson deletion request created, without the
// subject's identifier.
func TestLogStateChangesAndRequests(t *testing.T) {
	e := newPipeEnv(t)
	l := watchIncidents(e)
	e.lp.chats = []ChatRecord{{EngagementID: "1234000001", Start: e.ago(30 * time.Hour), CustomerIDs: []string{"CANARY-LOG-1"}}}
	req := submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("CANARY-LOG-1"))
	req.Channels = []Channel{ChannelChat}
	name := e.submit(req).Erasure.Name()
	id := strings.TrimPrefix(name, NamePrefix)
	e.settle()
	e.advance(e.cfg.BatchMaxWait)
	e.runLivePersonTimeline()
	e.wantState(name, StateCompleted)

	var got []string
	for _, m := range regexp.MustCompile(`msg="erasure state changed" erasure=`+id+` account=1234 from=(\w+) to=(\w+)`).FindAllStringSubmatch(l.text(), -1) {
		got = append(got, m[1]+">"+m[2])
	}
	want := []string{"STATE_UNSPECIFIED>STATE_RECEIVED", "STATE_RECEIVED>STATE_RESOLVING", "STATE_RESOLVING>STATE_SCHEDULED",
		"STATE_SCHEDULED>STATE_SUBMITTED", "STATE_SUBMITTED>STATE_DELETING", "STATE_DELETING>STATE_VERIFYING",
		"STATE_VERIFYING>STATE_COMPLETED"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("logged state changes = %v, want %v\n%s", got, want, l.text())
	}
	created := regexp.MustCompile(`level=INFO msg="LivePerson deletion request created" batch=\d+ account=1234 lp_request=\d+ kind=\w+ lp_status=NOT_STARTED`)
	if n := len(created.FindAllString(l.text(), -1)); n != 1 {
		t.Errorf("%d lines for the deletion request created, want 1:\n%s", n, l.text())
	}
	wantIncidents(t, l, IncidentFailed, nil, "CANARY-LOG-1", "1234000001")
}

// TestOutageVisibleFromFirstFailure: with LivePerson unavailable, the first failed attempt is
// logged with the step, a fixed reason and the next attempt time, and Status shows the erasure
// blocked on LivePerson with a next attempt in the future. Retries that change nothing else
// write no event; recovery does.
func TestOutageVisibleFromFirstFailure(t *testing.T) {
	e := newPipeEnv(t)
	l := watchIncidents(e)
	e.seedCustomer()
	e.lp.searchErr = fmt.Errorf("%w: 503 from CANARY-OUT-1", ErrUnavailable)
	name := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123"))).Erasure.Name()
	id := strings.TrimPrefix(name, NamePrefix)
	e.settle()

	got := e.wantState(name, StateResolving)
	if got.BlockedOn != BlockedLivePersonUnavailable || !got.NextAttemptTime.After(e.clock.Now()) {
		t.Errorf("after the first failure: blocked %d, next %v (now %v), want LIVEPERSON_UNAVAILABLE and a future next attempt",
			got.BlockedOn, got.NextAttemptTime, e.clock.Now())
	}
	line := `level=WARN msg="pipeline step failed; retrying" erasure=` + id + ` account=1234 step=resolve reason="LivePerson unavailable" failures=1 next_attempt_time=` +
		got.NextAttemptTime.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	if !strings.Contains(l.text(), line) {
		t.Errorf("log lacks the first failure:\n%s\nwant a line with:\n%s", l.text(), line)
	}
	before := len(eventsOf(t, e, name))
	for range 20 {
		e.advance(time.Minute)
		if got := e.status(name); !got.NextAttemptTime.After(e.clock.Now()) || got.BlockedOn != BlockedLivePersonUnavailable {
			t.Fatalf("during the outage: blocked %d, next %v (now %v)", got.BlockedOn, got.NextAttemptTime, e.clock.Now())
		}
	}
	if n := strings.Count(l.text(), `msg="pipeline step failed; retrying" erasure=`+id); n < 5 {
		t.Errorf("%d retries logged in 20 minutes, want one per failed attempt (at least 5)", n)
	}
	if after := len(eventsOf(t, e, name)); after != before {
		t.Errorf("retries that changed nothing wrote %d events", after-before)
	}
	e.lp.mu.Lock()
	e.lp.searchErr = nil
	e.lp.mu.Unlock()
	e.advance(time.Hour)
	if got := e.wantState(name, StateScheduled); got.BlockedOn == BlockedLivePersonUnavailable || got.LastError != "" {
		t.Errorf("after recovery: blocked %d, last error %q", got.BlockedOn, got.LastError)
	}
	wantIncidents(t, l, IncidentFailed, nil, "CANARY-OUT-1", "ABC-123")
}

// TestWatchQuietWhileHeldOnOpenConversation: an erasure held on an open conversation is
// rechecked at every poll interval; a recheck that finds it still open writes no event (the
// schedule still moves: the rechecks keep coming), while the first block and the release do.
func TestWatchQuietWhileHeldOnOpenConversation(t *testing.T) {
	e := newPipeEnv(t)
	e.lp.convs = []ConversationRecord{
		{ConversationID: "open-1", Open: true, Start: e.ago(5 * time.Hour), ConsumerIDs: []string{"k"}, CustomerIDs: []string{"OPEN-1"}},
	}
	req := submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("OPEN-1"))
	req.Channels = []Channel{ChannelMessaging}
	name := e.submit(req).Erasure.Name()
	e.settle()
	held := eventsOf(t, e, name)
	if last := held[len(held)-1].Erasure; last.State != StateScheduled || last.BlockedOn != BlockedOpenConversations {
		t.Fatalf("last event: state %s, blocked %d; want the block on the open conversation", last.State, last.BlockedOn)
	}
	rechecks := len(e.lp.searchCalls("convs:"))
	for range 30 {
		e.advance(e.svc.cfg.PollInterval)
	}
	if n := len(e.lp.searchCalls("convs:")) - rechecks; n < 30 {
		t.Fatalf("%d rechecks in 30 poll intervals, want one each", n)
	}
	if got := e.status(name); !got.NextAttemptTime.After(e.clock.Now()) {
		t.Errorf("next attempt %v is not after now %v", got.NextAttemptTime, e.clock.Now())
	}
	if evs := eventsOf(t, e, name); len(evs) != len(held) {
		t.Errorf("30 rechecks that changed nothing wrote %d events", len(evs)-len(held))
	}
	e.lp.mu.Lock()
	e.lp.convs[0].Open = false
	e.lp.mu.Unlock()
	e.advance(e.svc.cfg.PollInterval)
	evs := eventsOf(t, e, name)
	if len(evs) == len(held) {
		t.Fatal("the release of the open conversation wrote no event")
	}
	if last := evs[len(evs)-1].Erasure; last.BlockedOn == BlockedOpenConversations {
		t.Errorf("after the release the last event is still blocked on the open conversation")
	}
}

// retryingLP is a LivePerson whose first chat search fails once inside the call and is retried
// there, as the real client does for a 5xx; mid reads the erasure while the call waits.
type retryingLP struct {
	*fakeLivePerson
	once sync.Once
	mid  func()
}

func (f *retryingLP) SearchChats(ctx context.Context, account string, from, to time.Time, kw string) ([]ChatRecord, error) {
	f.once.Do(func() {
		RetryingCall(ctx, CallRetry{Err: fmt.Errorf("%w: 503", ErrUnavailable), Wait: 30 * time.Second})
		f.mid()
	})
	return f.fakeLivePerson.SearchChats(ctx, account, from, to, kw)
}

// TestRetryInsideACallShowsAtOnce: a LivePerson call that retries within the step makes the
// erasure show BLOCKED_ON_LIVEPERSON_UNAVAILABLE and the coming attempt from its first failed
// attempt, and logs it; the step's result, once the retry succeeds, is kept (not dropped as
// stale) and clears the block.
func TestRetryInsideACallShowsAtOnce(t *testing.T) {
	e := newPipeEnv(t)
	l := watchIncidents(e)
	e.seedCustomer()
	var during Erasure
	lp := &retryingLP{fakeLivePerson: e.lp}
	e.p = e.svc.NewPipeline(lp, e.cfg)
	name := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123"))).Erasure.Name()
	lp.mid = func() { during = e.status(name) }
	e.settle()
	if during.BlockedOn != BlockedLivePersonUnavailable || !during.NextAttemptTime.Equal(e.clock.Now().Add(30*time.Second)) ||
		during.LastError != "LivePerson unavailable" {
		t.Errorf("while the call retried: blocked %d, next %v, error %q; want LIVEPERSON_UNAVAILABLE, now+30s",
			during.BlockedOn, during.NextAttemptTime, during.LastError)
	}
	if !strings.Contains(l.text(), `level=WARN msg="LivePerson call failed; retrying within the step" erasure=`+strings.TrimPrefix(name, NamePrefix)+
		` account=1234 step=resolve reason="LivePerson unavailable" next_attempt_time=`) {
		t.Errorf("log lacks the retry:\n%s", l.text())
	}
	got := e.wantState(name, StateScheduled)
	if got.BlockedOn == BlockedLivePersonUnavailable || got.LastError != "" {
		t.Errorf("after the retry succeeded: blocked %d, last error %q", got.BlockedOn, got.LastError)
	}
}
