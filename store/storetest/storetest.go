// Package storetest is the conformance suite of the store contract: the tests every backend must
// pass, whatever it is built on. A backend's own tests call Run with a function that opens it; they
// keep to themselves only what is specific to the backend (its file, its tuning, its failures).
package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/erasured/erasured/store"
)

// Open opens the backend's store kept in dir, creating it when dir holds none, with buckets
// declared. Opening the same dir again, after Close, must give back what was committed. The suite
// closes every DB it opens (Close is idempotent).
type Open func(t *testing.T, dir string, buckets []store.Bucket) store.DB

// The buckets the suite declares: Ascending is a hint only, so the suite sees no difference.
var (
	bucketA   = store.Bucket{Name: "a"}
	bucketB   = store.Bucket{Name: "b"}
	ascending = store.Bucket{Name: "asc", Ascending: true}
	buckets   = []store.Bucket{bucketA, bucketB, ascending}
)

// Run runs the whole suite against the backend that open opens, each test in a fresh directory.
func Run(t *testing.T, open Open) {
	for _, tc := range []struct {
		name string
		test func(*testing.T, Open)
	}{
		{"ReadsAndWrites", testReadsAndWrites},
		{"ScanOrder", testScanOrder},
		{"ScanStarts", testScanStarts},
		{"ViewIsReadOnly", testViewIsReadOnly},
		{"UndeclaredBucket", testUndeclaredBucket},
		{"Atomicity", testAtomicity},
		{"RevisionsContiguous", testRevisionsContiguous},
		{"FailureIsolation", testFailureIsolation},
		{"OnCommitOrder", testOnCommitOrder},
		{"ContextDoneBeforeStart", testContextDoneBeforeStart},
		{"ContextDoneAfterStartWaits", testContextDoneAfterStartWaits},
		{"Events", testEvents},
		{"Compact", testCompact},
		{"WatchReplaysThenFollows", testWatchReplaysThenFollows},
		{"WatchRejectsBadRevisions", testWatchRejectsBadRevisions},
		{"WatchUnreadDoesNotBlockWriters", testWatchUnreadDoesNotBlockWriters},
		{"WatchCompactedWhileLagging", testWatchCompactedWhileLagging},
		{"WatchNextReturns", testWatchNextReturns},
		{"WatchReplayLiveRace", testWatchReplayLiveRace},
		{"Backup", testBackup},
		{"Close", testClose},
		{"ReopenKeepsEverything", testReopenKeepsEverything},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, open) })
	}
}

// openFresh opens a store in a new directory.
func openFresh(t *testing.T, open Open) store.DB {
	t.Helper()
	return openIn(t, t.TempDir(), open)
}

// openIn opens the store in dir and closes it when the test ends.
func openIn(t *testing.T, dir string, open Open) store.DB {
	t.Helper()
	db := open(t, dir, buckets)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// testTimeout bounds any wait in a test so a bug fails the test instead of hanging it. It is never
// used to wait for something to happen.
const testTimeout = 30 * time.Second

// Context is a context that ends when the test does, or after a generous bound.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// AppendEvents commits one event per key, each in its own Update, with value "v<rev>".
func AppendEvents(t testing.TB, db store.DB, keys ...string) {
	t.Helper()
	for _, k := range keys {
		err := db.Update(context.Background(), func(tx store.Tx) error {
			_, err := tx.Append(k, fmt.Appendf(nil, "v%d", tx.Rev()+1))
			return err
		})
		if err != nil {
			t.Fatalf("Update(append %q) = %v", k, err)
		}
	}
}

// WantEvent is the event AppendEvents makes at rev.
func WantEvent(rev uint64, key string) store.Event {
	return store.Event{Rev: rev, Key: key, Value: fmt.Appendf(nil, "v%d", rev)}
}

// Collect calls Next until it has n events.
func Collect(t testing.TB, w store.Watcher, n int) []store.Event {
	t.Helper()
	ctx := Context(t)
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

// Keys is n times the key "k".
func Keys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "k"
	}
	return keys
}

// AsCompacted returns err's *store.CompactedError, or nil.
func AsCompacted(err error) *store.CompactedError {
	var ce *store.CompactedError
	if errors.As(err, &ce) {
		return ce
	}
	return nil
}
