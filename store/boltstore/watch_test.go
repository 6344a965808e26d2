package boltstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/erasured/erasured/store"
)

// collect calls Next until it has n events.
func collect(t testing.TB, w store.Watcher, n int) []store.Event {
	t.Helper()
	ctx := testContext(t)
	var got []store.Event
	for len(got) < n {
		evs, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("Next() after %d of %d events = %v", len(got), n, err)
		}
		got = append(got, evs...)
	}
	return got
}

func TestWatchReplaysThenFollows(t *testing.T) {
	keys := []string{"a", "b", "a", "c", "b", "a", "c", "a"}
	more := []string{"b", "a", "c"}
	for _, src := range []struct {
		name string
		ring int
	}{{"ring", 1024}, {"disk", 2}} {
		for _, tc := range []struct {
			from uint64
			key  string
		}{
			{1, ""},
			{4, ""},       // resume from the middle
			{8, ""},       // the last one
			{9, ""},       // Rev()+1: live only
			{0, ""},       // from now on
			{1, "a"},      // key filter
			{3, "b"},      // filter, resume
			{0, "c"},      // filter, from now on
			{1, "absent"}, // nothing matches
		} {
			t.Run(fmt.Sprintf("%s/from=%d/key=%q", src.name, tc.from, tc.key), func(t *testing.T) {
				db := openTest(t, Options{RingSize: src.ring, WatchBuffer: 2})
				appendEvents(t, db, keys...)
				w, err := db.Watch(tc.from, tc.key)
				if err != nil {
					t.Fatalf("Watch(%d, %q) = %v", tc.from, tc.key, err)
				}
				defer w.Close()
				from := tc.from
				if from == 0 {
					from = uint64(len(keys)) + 1
				}
				if got, want := w.Progress(), from-1; got != want {
					t.Errorf("Progress() before Next = %d, want %d", got, want)
				}
				appendEvents(t, db, more...)
				var want []store.Event
				for i, k := range append(keys, more...) {
					if rev := uint64(i + 1); rev >= from && (tc.key == "" || k == tc.key) {
						want = append(want, wantEvent(rev, k))
					}
				}
				got := collect(t, w, len(want))
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("events mismatch (-want +got):\n%s", diff)
				}
				// Once everything was returned, Progress follows the DB even when nothing matches.
				if tc.key == "" {
					return
				}
				appendEvents(t, db, "zzz")
				// A heartbeat loop blocks in Next; once Next has nothing left to return, Progress is
				// the DB's revision.
				waitIdle(t, db, w)
				if got, want := w.Progress(), db.Rev(); got != want {
					t.Errorf("Progress() of a filtered watcher after unrelated events = %d, want %d", got, want)
				}
			})
		}
	}
}

// waitIdle runs Next on w until w is in the hub, i.e. Next has caught up and blocks, then stops it.
func waitIdle(t *testing.T, db *DB, w store.Watcher) {
	t.Helper()
	joined := make(chan struct{}, 1)
	h := &db.hub
	h.mu.Lock()
	h.onJoin = func() {
		select {
		case joined <- struct{}{}:
		default:
		}
	}
	if w.(*watcher).synced {
		joined <- struct{}{}
	}
	h.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		evs, err := w.Next(ctx)
		if len(evs) > 0 {
			err = fmt.Errorf("unexpected events %v", evs)
		}
		done <- err
	}()
	<-joined
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Next() = %v, want %v", err, context.Canceled)
	}
	h.mu.Lock()
	h.onJoin = nil
	h.mu.Unlock()
}

func TestWatchRejectsBadRevisions(t *testing.T) {
	db := openTest(t, Options{})
	appendEvents(t, db, "a", "b", "c", "d", "e")
	if _, err := db.Watch(7, ""); !errors.Is(err, store.ErrFutureRevision) || !strings.Contains(err.Error(), "current revision is 5") {
		t.Errorf("Watch(7) with Rev 5 = %v, want %v naming revision 5", err, store.ErrFutureRevision)
	}
	if err := db.Compact(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	_, err := db.Watch(2, "a")
	if diff := cmp.Diff(&store.CompactedError{Requested: 2, Oldest: 3}, asCompacted(err)); diff != "" {
		t.Errorf("Watch(2) after Compact(3) error mismatch (-want +got):\n%s", diff)
	}
}

// TestWatchSlowConsumer lets a watcher fall 10×WatchBuffer events behind: writers must not block on it,
// and it must later get every event in order, from the ring or from the file.
func TestWatchSlowConsumer(t *testing.T) {
	const buffer = 8
	for _, tc := range []struct {
		name string
		ring int
		key  string
	}{
		{"ring", 1024, ""},
		{"disk", 4, ""},
		{"ring/filtered", 1024, "even"},
		{"disk/filtered", 4, "even"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openTest(t, Options{RingSize: tc.ring, WatchBuffer: buffer})
			w, err := db.Watch(0, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			var keys []string
			var want []store.Event
			for i := range 10 * buffer * 2 {
				k := []string{"even", "odd"}[i%2]
				keys = append(keys, k)
				if tc.key == "" || k == tc.key {
					want = append(want, wantEvent(uint64(i+1), k))
				}
			}
			appendEvents(t, db, keys...) // each returns although nobody reads the watcher
			if got := w.Progress(); got != 0 {
				t.Errorf("Progress() before Next = %d, want 0", got)
			}
			got := collect(t, w, len(want))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("events mismatch (-want +got):\n%s", diff)
			}
			if got, want := w.Progress(), db.Rev(); got != want {
				t.Errorf("Progress() after catching up = %d, want %d", got, want)
			}
		})
	}
}

func TestWatchCompactedWhileLagging(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		setup func(db *DB) store.Watcher
		want  []store.Event // delivered before the error
		err   *store.CompactedError
	}{
		{
			name: "fell behind live",
			setup: func(db *DB) store.Watcher {
				w, err := db.Watch(0, "")
				if err != nil {
					t.Fatal(err)
				}
				appendEvents(t, db, keysN(20)...) // the buffer takes 1 and 2, then it falls behind
				return w
			},
			want: []store.Event{wantEvent(1, "k"), wantEvent(2, "k")},
			err:  &store.CompactedError{Requested: 3, Oldest: 15},
		},
		{
			name: "replaying",
			setup: func(db *DB) store.Watcher {
				appendEvents(t, db, keysN(20)...)
				w, err := db.Watch(1, "k")
				if err != nil {
					t.Fatal(err)
				}
				return w
			},
			err: &store.CompactedError{Requested: 1, Oldest: 15},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openTest(t, Options{WatchBuffer: 2})
			w := tc.setup(db)
			defer w.Close()
			if err := db.Compact(ctx, 15); err != nil {
				t.Fatal(err)
			}
			var got []store.Event
			var err error
			for err == nil {
				var evs []store.Event
				evs, err = w.Next(ctx)
				got = append(got, evs...)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("events before the error mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.err, asCompacted(err)); diff != "" {
				t.Errorf("Next() error mismatch (-want +got):\n%s", diff)
			}
			_, err = w.Next(ctx)
			if diff := cmp.Diff(tc.err, asCompacted(err)); diff != "" {
				t.Errorf("Next() again error mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func keysN(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "k"
	}
	return keys
}

func TestWatchNextReturns(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(db *DB, w store.Watcher, cancel context.CancelFunc)
		want error
	}{
		{"ctx", func(_ *DB, _ store.Watcher, cancel context.CancelFunc) { cancel() }, context.Canceled},
		{"watcher closed", func(_ *DB, w store.Watcher, _ context.CancelFunc) { w.Close() }, store.ErrClosed},
		{"db closed", func(db *DB, _ store.Watcher, _ context.CancelFunc) { db.Close() }, store.ErrClosed},
	} {
		for _, from := range []uint64{0, 1} { // blocked live, or still replaying
			t.Run(fmt.Sprintf("%s/from=%d", tc.name, from), func(t *testing.T) {
				db := openTest(t, Options{RingSize: 1})
				appendEvents(t, db, "a", "b")
				w, err := db.Watch(from, "z")
				if err != nil {
					t.Fatal(err)
				}
				defer w.Close()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				errc := make(chan error, 1)
				go func() {
					_, err := w.Next(ctx)
					errc <- err
				}()
				tc.stop(db, w, cancel)
				if err := <-errc; !errors.Is(err, tc.want) {
					t.Errorf("Next() = %v, want %v", err, tc.want)
				}
				if tc.want == store.ErrClosed {
					if _, err := w.Next(context.Background()); !errors.Is(err, store.ErrClosed) {
						t.Errorf("Next() again = %v, want %v", err, store.ErrClosed)
					}
				}
			})
		}
	}
}

// TestWatchReplayLiveRace runs writers non-stop while watchers start at assorted revisions, with and
// without a key, read for a while at assorted speeds, and stop. Each must have seen exactly the
// contiguous history (or its key's subset) from where it started to where its Progress ended. A small
// ring and push buffer make watchers drop out of the hub and catch up from the ring and the file often.
func TestWatchReplayLiveRace(t *testing.T) {
	const (
		writers  = 3
		watchers = 24
		parallel = 4  // watchers running at once
		span     = 60 // revisions each watcher follows
	)
	keys := []string{"k0", "k1", "k2", "k3"}
	ctx := testContext(t)
	db := openTest(t, Options{RingSize: 16, WatchBuffer: 4})

	writeCtx, stopWriters := context.WithCancel(ctx)
	var writersWG sync.WaitGroup
	for i := range writers {
		r := rand.New(rand.NewPCG(uint64(i), 1))
		writersWG.Go(func() {
			for writeCtx.Err() == nil {
				n := 1 + r.IntN(3)
				err := db.Update(writeCtx, func(tx store.Tx) error {
					for range n {
						k := keys[r.IntN(len(keys))]
						if _, err := tx.Append(k, fmt.Appendf(nil, "%s@%d", k, tx.Rev()+1)); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil && writeCtx.Err() == nil {
					t.Errorf("writer Update = %v", err)
					return
				}
			}
		})
	}

	type result struct {
		from, progress uint64
		key            string
		got            []store.Event
		err            error
	}
	results := make([]result, watchers)
	sem := make(chan struct{}, parallel)
	var watchWG sync.WaitGroup
	for i := range watchers {
		sem <- struct{}{}
		r := rand.New(rand.NewPCG(uint64(i), 2))
		key := []string{"", "", keys[0], keys[1]}[i%4]
		var from uint64
		switch i % 3 {
		case 0:
			from = 0
		case 1:
			from = 1 + db.Rev()/2
		case 2:
			from = max(1, db.Rev()+1-min(db.Rev(), uint64(r.IntN(40))))
		}
		slow := i%5 == 0
		watchWG.Go(func() {
			defer func() { <-sem }()
			res := &results[i]
			res.key = key
			w, err := db.Watch(from, key)
			if err != nil {
				res.err = fmt.Errorf("Watch(%d, %q) = %w", from, key, err)
				return
			}
			defer w.Close()
			res.from = w.Progress() + 1
			for w.Progress() < res.from+span {
				evs, err := w.Next(ctx)
				if err != nil {
					res.err = fmt.Errorf("Next() = %w", err)
					return
				}
				res.got = append(res.got, evs...)
				if slow {
					// Let the writers get ahead: wait for a few commits of our own.
					for range 3 {
						if err := db.Update(ctx, func(store.Tx) error { return nil }); err != nil {
							res.err = err
							return
						}
					}
				} else if r.IntN(2) == 0 {
					runtime.Gosched()
				}
			}
			res.progress = w.Progress()
		})
	}
	watchWG.Wait()
	stopWriters()
	writersWG.Wait()

	history, err := db.Events(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, rev := 0, uint64(1); i < len(history); i, rev = i+1, rev+1 {
		if history[i].Rev != rev {
			t.Fatalf("history[%d].Rev = %d, want %d", i, history[i].Rev, rev)
		}
	}
	for i, res := range results {
		if res.err != nil {
			t.Errorf("watcher %d: %v", i, res.err)
			continue
		}
		var want []store.Event
		for _, ev := range history {
			if ev.Rev >= res.from && ev.Rev <= res.progress && (res.key == "" || ev.Key == res.key) {
				want = append(want, ev)
			}
		}
		if diff := cmp.Diff(want, res.got); diff != "" {
			t.Errorf("watcher %d (revisions %d..%d, key %q) mismatch (-want +got):\n%s", i, res.from, res.progress, res.key, diff)
		}
	}
	t.Logf("%d revisions, %d commits", len(history), db.commits.Load())
}

// TestWatcherMemory measures the store-side memory of idle watchers.
func TestWatcherMemory(t *testing.T) {
	const n = 10000
	db := openTest(t, Options{})
	appendEvents(t, db, "a")
	ws := make([]store.Watcher, 0, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		key := ""
		if i%2 == 1 {
			key = fmt.Sprintf("erasure-%d", i) // a map of its own per key: the worst case
		}
		w, err := db.Watch(0, key)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perWatcher := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.0f bytes per idle watcher (%d watchers, half filtered by a distinct key)", perWatcher, n)
	if perWatcher > 10<<10 {
		t.Errorf("bytes per idle watcher = %.0f, want < 10240", perWatcher)
	}
	appendEvents(t, db, "a") // reaches the unfiltered half
	for _, w := range ws {
		w.Close()
	}
	runtime.KeepAlive(ws)
}

func TestWatchersDoNotBlockWriters(t *testing.T) {
	// Many watchers nobody reads, a tiny buffer: writers finish, and everyone is set aside, not waited for.
	db := openTest(t, Options{WatchBuffer: 1})
	var ws []store.Watcher
	for range 100 {
		w, err := db.Watch(0, "")
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		ws = append(ws, w)
	}
	start := time.Now()
	appendEvents(t, db, keysN(50)...)
	t.Logf("50 updates with 100 unread watchers: %v", time.Since(start))
	db.hub.mu.Lock()
	synced := len(db.hub.all)
	db.hub.mu.Unlock()
	if synced != 0 {
		t.Errorf("watchers still in the hub after falling behind = %d, want 0", synced)
	}
	for i, w := range ws {
		if got := w.Progress(); got != 0 {
			t.Errorf("watcher %d Progress() = %d, want 0", i, got)
		}
	}
}
