package boltstore

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/erasured/erasured/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// openTest opens a DB in a fresh directory and closes it when the test ends.
func openTest(t testing.TB, opts Options) *DB {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "sub", "erasured.db"), opts)
}

func openAt(t testing.TB, path string, opts Options) *DB {
	t.Helper()
	if opts.Buckets == nil {
		opts.Buckets = testBuckets
	}
	db, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%q) = %v", path, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// setOnEnqueue installs the test hook that Update calls after queueing.
func (db *DB) setOnEnqueue(f func()) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.onEnqueue = f
}

// blockCommitter occupies the committer with an update that waits until release is called, so that
// calls made meanwhile queue up and form one group. release returns once that update has committed.
func blockCommitter(t testing.TB, db *DB) (release func()) {
	t.Helper()
	started := make(chan struct{})
	unblock := make(chan struct{})
	var once sync.Once
	errc := make(chan error, 1)
	go func() {
		errc <- db.Update(context.Background(), func(store.Tx) error {
			once.Do(func() { close(started) })
			<-unblock
			return nil
		})
	}()
	<-started
	return func() {
		close(unblock)
		if err := <-errc; err != nil {
			t.Errorf("blocking Update = %v", err)
		}
	}
}

// countEnqueued makes every Update report on the returned channel once it is queued.
func countEnqueued(db *DB) <-chan struct{} {
	c := make(chan struct{}, 1024)
	db.setOnEnqueue(func() { c <- struct{}{} })
	return c
}

// Buckets the tests declare: ascBucket takes the Ascending hint, the others do not.
var (
	ascBucket = store.Bucket{Name: "asc", Ascending: true}
	bucketA   = store.Bucket{Name: "a"}
	bucketB   = store.Bucket{Name: "b"}
	bucketC   = store.Bucket{Name: "c"}
	bucketD   = store.Bucket{Name: "d"}
	bucketE   = store.Bucket{Name: "e"}

	testBuckets = []store.Bucket{ascBucket, bucketA, bucketB, bucketC, bucketD, bucketE}
)
