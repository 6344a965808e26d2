package boltstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/internal/watchhub"
	"github.com/erasured/erasured/store/storetest"
)

// TestFilteredProgressFollowsDB: once a filtered watcher has returned everything and blocks in
// Next (in the hub), its Progress follows the DB's revision although nothing matches, from the
// ring or after a catch-up from the file: it is what heartbeats report.
func TestFilteredProgressFollowsDB(t *testing.T) {
	for _, ring := range []int{1024, 2} {
		for _, from := range []uint64{1, 0} {
			t.Run(fmt.Sprintf("ring=%d/from=%d", ring, from), func(t *testing.T) {
				db := openTest(t, Options{RingSize: ring, WatchBuffer: 2})
				storetest.AppendEvents(t, db, "a", "b", "a", "c")
				w, err := db.Watch(from, "a")
				if err != nil {
					t.Fatal(err)
				}
				defer w.Close()
				storetest.AppendEvents(t, db, "a", "zzz", "zzz", "zzz")
				want := 1
				if from != 0 {
					want = 3
				}
				storetest.Collect(t, w, want)
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
	h.SetOnJoin(func() {
		select {
		case joined <- struct{}{}:
		default:
		}
	})
	if w.(*watchhub.Watcher).Synced() {
		select {
		case joined <- struct{}{}:
		default:
		}
	}
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
	h.SetOnJoin(nil)
}

// TestWatchCompactedWhileLagging: a live watcher whose push buffer overflowed falls out of the
// hub with what its buffer holds; once its position is compacted away it gets that, then a sticky
// CompactedError.
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
				storetest.AppendEvents(t, db, storetest.Keys(20)...) // the buffer takes 1 and 2, then it falls behind
				return w
			},
			want: []store.Event{storetest.WantEvent(1, "k"), storetest.WantEvent(2, "k")},
			err:  &store.CompactedError{Requested: 3, Oldest: 15},
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
			if diff := cmp.Diff(tc.err, storetest.AsCompacted(err)); diff != "" {
				t.Errorf("Next() error mismatch (-want +got):\n%s", diff)
			}
			_, err = w.Next(ctx)
			if diff := cmp.Diff(tc.err, storetest.AsCompacted(err)); diff != "" {
				t.Errorf("Next() again error mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWatcherMemory measures the store-side memory of idle watchers.
func TestWatcherMemory(t *testing.T) {
	const n = 10000
	db := openTest(t, Options{})
	storetest.AppendEvents(t, db, "a")
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
	storetest.AppendEvents(t, db, "a") // reaches the unfiltered half
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
	storetest.AppendEvents(t, db, storetest.Keys(50)...)
	t.Logf("50 updates with 100 unread watchers: %v", time.Since(start))
	synced := db.hub.SyncedWatchers()
	if synced != 0 {
		t.Errorf("watchers still in the hub after falling behind = %d, want 0", synced)
	}
	for i, w := range ws {
		if got := w.Progress(); got != 0 {
			t.Errorf("watcher %d Progress() = %d, want 0", i, got)
		}
	}
}
