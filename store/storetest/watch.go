package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/erasured/erasured/store"
)

func testEvents(t *testing.T, open Open) {
	keys := []string{"a", "b", "c", "a", "b", "c", "a", "b", "c", "a"}
	all := make([]store.Event, len(keys))
	for i, k := range keys {
		all[i] = WantEvent(uint64(i+1), k)
	}
	db := openFresh(t, open)
	AppendEvents(t, db, keys...)
	for _, tc := range []struct {
		from  uint64
		limit int
		want  []store.Event
	}{
		{0, 0, all},
		{1, 0, all},
		{4, 3, all[3:6]},
		{9, 0, all[8:]},
		{10, 5, all[9:]},
		{11, 0, nil},
		{100, 0, nil},
	} {
		got, err := db.Events(tc.from, tc.limit)
		if err != nil {
			t.Fatalf("Events(%d, %d) = %v", tc.from, tc.limit, err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Events(%d, %d) mismatch (-want +got):\n%s", tc.from, tc.limit, diff)
		}
	}
}

func testCompact(t *testing.T, open Open) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openIn(t, dir, open)
	AppendEvents(t, db, Keys(20)...)

	if err := db.Compact(ctx, 10); err != nil {
		t.Fatalf("Compact(10) = %v", err)
	}
	if got := db.Oldest(); got != 10 {
		t.Errorf("Oldest() = %d, want 10", got)
	}
	if err := db.Compact(ctx, 5); err != nil { // lower: no-op
		t.Errorf("Compact(5) after Compact(10) = %v, want nil", err)
	}
	if got := db.Oldest(); got != 10 {
		t.Errorf("Oldest() after Compact(5) = %d, want 10", got)
	}
	if err := db.Compact(ctx, 21); !errors.Is(err, store.ErrFutureRevision) {
		t.Errorf("Compact(21) with Rev 20 = %v, want %v", err, store.ErrFutureRevision)
	}

	wantCompacted := &store.CompactedError{Requested: 9, Oldest: 10}
	_, err := db.Events(9, 0)
	if diff := cmp.Diff(wantCompacted, AsCompacted(err)); diff != "" {
		t.Errorf("Events(9, 0) error mismatch (-want +got):\n%s", diff)
	}
	_, err = db.Watch(9, "")
	if diff := cmp.Diff(wantCompacted, AsCompacted(err)); diff != "" {
		t.Errorf("Watch(9) error mismatch (-want +got):\n%s", diff)
	}
	evs, err := db.Events(10, 0)
	if err != nil || len(evs) != 11 || evs[0].Rev != 10 {
		t.Errorf("Events(10, 0) = %d events, %v; want 11 from revision 10", len(evs), err)
	}

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openIn(t, dir, open)
	if got := db.Oldest(); got != 10 {
		t.Errorf("Oldest() after reopen = %d, want 10", got)
	}
	_, err = db.Events(9, 0)
	if diff := cmp.Diff(wantCompacted, AsCompacted(err)); diff != "" {
		t.Errorf("Events(9, 0) after reopen error mismatch (-want +got):\n%s", diff)
	}
	if err := db.Compact(ctx, 20); err != nil {
		t.Fatalf("Compact(20) = %v", err)
	}
	_, err = db.Events(0, 0)
	if diff := cmp.Diff(&store.CompactedError{Requested: 1, Oldest: 20}, AsCompacted(err)); diff != "" {
		t.Errorf("Events(0, 0) after Compact(20) error mismatch (-want +got):\n%s", diff)
	}
	if evs, err = db.Events(20, 0); err != nil || len(evs) != 1 {
		t.Errorf("Events(20, 0) = %v, %v; want the last event", evs, err)
	}
}

func testWatchReplaysThenFollows(t *testing.T, open Open) {
	keys := []string{"a", "b", "a", "c", "b", "a", "c", "a"}
	more := []string{"b", "a", "c"}
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
		t.Run(fmt.Sprintf("from=%d/key=%q", tc.from, tc.key), func(t *testing.T) {
			db := openFresh(t, open)
			AppendEvents(t, db, keys...)
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
			AppendEvents(t, db, more...)
			var want []store.Event
			for i, k := range append(keys, more...) {
				if rev := uint64(i + 1); rev >= from && (tc.key == "" || k == tc.key) {
					want = append(want, WantEvent(rev, k))
				}
			}
			got := Collect(t, w, len(want))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("events mismatch (-want +got):\n%s", diff)
			}
			if len(got) > 0 {
				if p := w.Progress(); p < got[len(got)-1].Rev {
					t.Errorf("Progress() = %d after Next returned revision %d", p, got[len(got)-1].Rev)
				}
			}
		})
	}
}

func testWatchRejectsBadRevisions(t *testing.T, open Open) {
	db := openFresh(t, open)
	AppendEvents(t, db, "a", "b", "c", "d", "e")
	if _, err := db.Watch(7, ""); !errors.Is(err, store.ErrFutureRevision) {
		t.Errorf("Watch(7) with Rev 5 = %v, want %v", err, store.ErrFutureRevision)
	}
	if err := db.Compact(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	_, err := db.Watch(2, "a")
	if diff := cmp.Diff(&store.CompactedError{Requested: 2, Oldest: 3}, AsCompacted(err)); diff != "" {
		t.Errorf("Watch(2) after Compact(3) error mismatch (-want +got):\n%s", diff)
	}
}

// testWatchUnreadDoesNotBlockWriters: writers go on while watchers are not read, and each watcher
// later gets every event in order.
func testWatchUnreadDoesNotBlockWriters(t *testing.T, open Open) {
	const n = 200
	for _, key := range []string{"", "even"} {
		t.Run(fmt.Sprintf("key=%q", key), func(t *testing.T) {
			db := openFresh(t, open)
			w, err := db.Watch(0, key)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			var others []store.Watcher // never read
			for range 10 {
				o, err := db.Watch(0, "")
				if err != nil {
					t.Fatal(err)
				}
				defer o.Close()
				others = append(others, o)
			}
			var keys []string
			var want []store.Event
			for i := range n {
				k := []string{"even", "odd"}[i%2]
				keys = append(keys, k)
				if key == "" || k == key {
					want = append(want, WantEvent(uint64(i+1), k))
				}
			}
			AppendEvents(t, db, keys...) // each returns although nobody reads the watchers
			if got := w.Progress(); got != 0 {
				t.Errorf("Progress() before Next = %d, want 0", got)
			}
			got := Collect(t, w, len(want))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("events mismatch (-want +got):\n%s", diff)
			}
			if key == "" {
				if got, want := w.Progress(), db.Rev(); got != want {
					t.Errorf("Progress() after catching up = %d, want %d", got, want)
				}
			}
			for i, o := range others {
				if got := o.Progress(); got != 0 {
					t.Errorf("unread watcher %d Progress() = %d, want 0", i, got)
				}
			}
		})
	}
}

// testWatchCompactedWhileLagging: a watcher still replaying when its position is compacted away
// gets a sticky CompactedError naming the oldest revision. (A live watcher with events waiting for
// it may or may not count as behind: that is up to the backend's buffering.)
func testWatchCompactedWhileLagging(t *testing.T, open Open) {
	ctx := Context(t)
	for _, key := range []string{"", "k"} {
		t.Run(fmt.Sprintf("key=%q", key), func(t *testing.T) {
			db := openFresh(t, open)
			AppendEvents(t, db, Keys(20)...)
			w, err := db.Watch(1, key)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if err := db.Compact(ctx, 15); err != nil {
				t.Fatal(err)
			}
			want := &store.CompactedError{Requested: 1, Oldest: 15}
			for i := range 2 { // sticky
				evs, err := w.Next(ctx)
				if len(evs) > 0 {
					t.Errorf("Next() #%d returned %d events of a compacted history", i+1, len(evs))
				}
				if diff := cmp.Diff(want, AsCompacted(err)); diff != "" {
					t.Errorf("Next() #%d error mismatch (-want +got):\n%s", i+1, diff)
				}
			}
		})
	}
}

func testWatchNextReturns(t *testing.T, open Open) {
	for _, tc := range []struct {
		name string
		stop func(db store.DB, w store.Watcher, cancel context.CancelFunc)
		want error
	}{
		{"ctx", func(_ store.DB, _ store.Watcher, cancel context.CancelFunc) { cancel() }, context.Canceled},
		{"watcher closed", func(_ store.DB, w store.Watcher, _ context.CancelFunc) { w.Close() }, store.ErrClosed},
		{"db closed", func(db store.DB, _ store.Watcher, _ context.CancelFunc) { db.Close() }, store.ErrClosed},
	} {
		for _, from := range []uint64{0, 1} { // blocked live, or still replaying
			t.Run(fmt.Sprintf("%s/from=%d", tc.name, from), func(t *testing.T) {
				db := openFresh(t, open)
				AppendEvents(t, db, "a", "b")
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
