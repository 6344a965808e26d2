package server

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	erasurev1 "github.com/erasured/erasured/gen/erasure/v1"
)

func rid(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

// collect receives from a Watch stream until it has n events, returning them and the heartbeats
// seen.
func collect(t *testing.T, s erasurev1.ErasureService_WatchClient, n int) []*erasurev1.WatchEvent {
	t.Helper()
	var evs []*erasurev1.WatchEvent
	for len(evs) < n {
		res, err := s.Recv()
		if err != nil {
			t.Fatalf("Recv after %d events: %v", len(evs), err)
		}
		evs = append(evs, res.GetEvents()...)
	}
	return evs
}

func checkContiguous(t *testing.T, evs []*erasurev1.WatchEvent, from int64) {
	t.Helper()
	for i, ev := range evs {
		if ev.GetRevision() != from+int64(i) {
			t.Fatalf("event %d has revision %d, want %d (gap or duplicate)", i, ev.GetRevision(), from+int64(i))
		}
	}
}

func TestWatchReplayThenLiveAndResume(t *testing.T) {
	h := newHarness(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 1; i <= 5; i++ {
		h.submit(rid(i), customerID(fmt.Sprint("c", i)))
	}
	s, err := h.client.Watch(ctx, &erasurev1.WatchRequest{StartRevision: 1})
	if err != nil {
		t.Fatal(err)
	}
	first := collect(t, s, 5)
	checkContiguous(t, first, 1)
	for i := 6; i <= 8; i++ {
		h.submit(rid(i), customerID(fmt.Sprint("c", i)))
	}
	live := collect(t, s, 3)
	checkContiguous(t, live, 6)
	if live[0].GetErasure().GetRevision() != 6 || live[0].GetPreviousState() != erasurev1.State_STATE_UNSPECIFIED {
		t.Errorf("live event = %v, want the creation at revision 6", live[0])
	}
	// Disconnect, more changes, resume from the last revision seen + 1.
	cancel()
	for i := 9; i <= 10; i++ {
		h.submit(rid(i), customerID(fmt.Sprint("c", i)))
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel2()
	s2, err := h.client.Watch(ctx2, &erasurev1.WatchRequest{StartRevision: 9})
	if err != nil {
		t.Fatal(err)
	}
	checkContiguous(t, collect(t, s2, 2), 9)
}

func TestWatchHeartbeat(t *testing.T) {
	h := newHarness(t, Options{Heartbeat: 20 * time.Millisecond})
	h.submit(rid(1), customerID("a"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := h.client.Watch(ctx, &erasurev1.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		res, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if len(res.GetEvents()) != 0 || res.GetProgressRevision() != 1 {
			t.Errorf("heartbeat %d = %v, want no events and progress_revision 1", i, res)
		}
	}
}

func TestWatchCompacted(t *testing.T) {
	h := newHarness(t, Options{})
	for i := 1; i <= 6; i++ {
		h.submit(rid(i), customerID(fmt.Sprint(i)))
	}
	if err := h.svc.Compact(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	s, err := h.client.Watch(context.Background(), &erasurev1.WatchRequest{StartRevision: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Recv()
	if status.Code(err) != codes.OutOfRange || reasonOf(err) != "REVISION_COMPACTED" {
		t.Errorf("Watch from a compacted revision: %v, want OUT_OF_RANGE REVISION_COMPACTED", err)
	}
}

// TestWatchRaceReplayLive starts watchers at random points while writers keep committing: each
// must see a contiguous run of revisions with no gap and no duplicate.
func TestWatchRaceReplayLive(t *testing.T) {
	h := newHarness(t, Options{})
	const writes = 200
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range writes / 4 {
				h.submit(rid(w*1000+i+1), customerID(fmt.Sprint(w, "-", i)))
			}
		})
	}
	var watchers sync.WaitGroup
	for i := range 8 {
		watchers.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := int64(1 + i*20)
			for h.db.Rev() < uint64(start) {
				time.Sleep(time.Millisecond)
			}
			s, err := h.client.Watch(ctx, &erasurev1.WatchRequest{StartRevision: start})
			if err != nil {
				t.Error(err)
				return
			}
			evs := collect(t, s, writes-int(start)+1)
			checkContiguous(t, evs, start)
		})
	}
	wg.Wait()
	watchers.Wait()
}

// TestShutdownEndsWatchStreams: shutdown with open Watch streams ends them with UNAVAILABLE and
// returns promptly.
func TestShutdownEndsWatchStreams(t *testing.T) {
	h := newHarness(t, Options{})
	h.submit(rid(1), customerID("a"))
	var streams []erasurev1.ErasureService_WatchClient
	for range 5 {
		s, err := h.client.Watch(context.Background(), &erasurev1.WatchRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err != nil { // the start heartbeat: the stream is established
			t.Fatal(err)
		}
		streams = append(streams, s)
	}
	start := time.Now()
	h.shutdown()
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("shutdown took %v with open Watch streams", d)
	}
	for i, s := range streams {
		_, err := s.Recv()
		if status.Code(err) != codes.Unavailable {
			t.Errorf("stream %d ended with %v, want UNAVAILABLE", i, err)
		}
	}
}

// TestSlowWatcherDoesNotBlockWriters: a watcher that stops reading does not hold up Submit, and
// once it reads again it gets everything in order.
func TestSlowWatcherDoesNotBlockWriters(t *testing.T) {
	h := newHarness(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := h.client.Watch(ctx, &erasurev1.WatchRequest{StartRevision: 1})
	if err != nil {
		t.Fatal(err)
	}
	const n = 600 // well past the store's per-watcher buffer and the stream's flow-control window
	for i := 1; i <= n; i++ {
		h.submit(rid(i), customerID(fmt.Sprint(i)))
	}
	checkContiguous(t, collect(t, s, n), 1)
}

// TestWatchClosedByClientIsNotAnError: a client that cancels its Watch ends the call as CANCELED,
// which the call log reports at INFO, not as an UNKNOWN error.
func TestWatchClosedByClientIsNotAnError(t *testing.T) {
	h := newHarness(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	s, err := h.client.Watch(ctx, &erasurev1.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil { // the start heartbeat
		t.Fatal(err)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		logs := h.logs.String()
		if i := strings.Index(logs, `"grpc.method":"Watch"`); i >= 0 {
			line := logs[strings.LastIndex(logs[:i], "\n")+1:]
			line = line[:strings.Index(line, "\n")]
			if !strings.Contains(line, `"grpc.code":"Canceled"`) || !strings.Contains(line, `"level":"INFO"`) {
				t.Errorf("Watch call log = %s, want code Canceled at INFO", line)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no call log line for the Watch; logs:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
