package watchhub

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/erasured/erasured/store"
)

// fakeSource is a store's log held in memory: events[i] has revision i+1; below oldest is compacted.
type fakeSource struct {
	events []store.Event
	oldest uint64
	reads  int
	done   chan struct{}
}

func (s *fakeSource) ReadEvents(from, upTo uint64, key string, limit, scan int) ([]store.Event, uint64, error) {
	s.reads++
	if from < s.oldest {
		return nil, from, &store.CompactedError{Requested: from, Oldest: s.oldest}
	}
	var evs []store.Event
	next := from
	for ; next <= upTo && int(next) <= len(s.events) && len(evs) < limit && scan != 0; next++ {
		scan--
		if ev := s.events[next-1]; key == "" || ev.Key == key {
			evs = append(evs, ev)
		}
	}
	return evs, next, nil
}

func (s *fakeSource) Done() <-chan struct{} { return s.done }

func (s *fakeSource) commit(h *Hub, keys ...string) {
	var evs []store.Event
	for _, k := range keys {
		ev := store.Event{Rev: uint64(len(s.events) + 1), Key: k}
		s.events = append(s.events, ev)
		evs = append(evs, ev)
	}
	h.Publish(evs, s.oldest)
}

func keys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("k%d", i%3)
	}
	return out
}

// drain calls Next until the watcher has returned every event up to rev. A filtered watcher that has
// caught up blocks in Next with nothing to return, so each Next is cut short and Progress decides.
func drain(t *testing.T, w *Watcher, rev uint64) []uint64 {
	t.Helper()
	var got []uint64
	deadline := time.Now().Add(5 * time.Second)
	for w.Progress() < rev {
		if time.Now().After(deadline) {
			t.Fatalf("Progress() = %d after revisions %v, want %d", w.Progress(), got, rev)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		evs, err := w.Next(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			continue
		}
		if err != nil {
			t.Fatalf("Next() = %v after revisions %v", err, got)
		}
		for _, ev := range evs {
			got = append(got, ev.Rev)
		}
	}
	return got
}

// TestReplayThenLive: a watcher from the past, with a ring too small for its position and a push
// buffer that overflows, returns every matching revision exactly once and in order, from storage,
// the ring and its buffer, and ends in the hub.
func TestReplayThenLive(t *testing.T) {
	for _, key := range []string{"", "k1"} {
		t.Run(fmt.Sprintf("key=%q", key), func(t *testing.T) {
			src := &fakeSource{oldest: 1, done: make(chan struct{})}
			var h Hub
			h.Init(0, 1, 4, 2, 3)
			src.commit(&h, keys(19)...) // catch-up passes of three end at 19, one short of the revision
			w, err := h.Watch(1, key, src)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			got := drain(t, w, 19)
			src.commit(&h, keys(7)...) // overflows the buffer of two: w leaves the hub
			got = append(got, drain(t, w, 26)...)
			src.commit(&h, "k1")
			got = append(got, drain(t, w, 27)...)

			var want []uint64
			for _, ev := range src.events {
				if key == "" || ev.Key == key {
					want = append(want, ev.Rev)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("revisions = %v, want %v", got, want)
			}
			if src.reads == 0 {
				t.Errorf("no storage reads: the replay never left the ring")
			}
			if !w.Synced() {
				t.Errorf("watcher not back in the hub after catching up")
			}
		})
	}
}

// TestJumpFailsSyncedWatchers: when the hub jumps over compacted events, a watcher that needed them
// gets a sticky CompactedError rather than a silent gap.
func TestJumpFailsSyncedWatchers(t *testing.T) {
	src := &fakeSource{oldest: 1, done: make(chan struct{})}
	var h Hub
	h.Init(0, 1, 8, 8, 64)
	src.commit(&h, "a")
	w, err := h.Watch(0, "", src)
	if err != nil {
		t.Fatal(err)
	}
	h.Jump(5, 6)
	for range 2 {
		_, err := w.Next(context.Background())
		var ce *store.CompactedError
		if !errors.As(err, &ce) || ce.Requested != 2 || ce.Oldest != 6 {
			t.Fatalf("Next() = %v, want a CompactedError for 2, oldest 6", err)
		}
	}
	if h.Rev() != 5 || h.Oldest() != 6 {
		t.Errorf("Rev(), Oldest() = %d, %d, want 5, 6", h.Rev(), h.Oldest())
	}
}

// TestCloseWakesBlockedNext: a watcher blocked in Next returns store.ErrClosed once the store's
// Done is closed after the hub's Close.
func TestCloseWakesBlockedNext(t *testing.T) {
	src := &fakeSource{oldest: 1, done: make(chan struct{})}
	var h Hub
	h.Init(0, 1, 8, 8, 64)
	w, err := h.Watch(0, "", src)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := w.Next(context.Background())
		errc <- err
	}()
	h.Close()
	close(src.done)
	if err := <-errc; !errors.Is(err, store.ErrClosed) {
		t.Errorf("Next() = %v, want %v", err, store.ErrClosed)
	}
	if _, err := h.Watch(0, "", src); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Watch() after Close = %v, want %v", err, store.ErrClosed)
	}
}
