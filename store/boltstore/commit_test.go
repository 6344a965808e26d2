package boltstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/storetest"
)

// TestGroupCommitIsolatesFailures queues one group in which some functions fail, with or without having
// written, or panic, and checks that only the successful ones leave a trace — in one commit — and that
// only their OnCommit hooks run, once each although the group was re-run, in queue order.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	errBoom := errors.New("boom")
	type kind int
	const (
		ok kind = iota
		failClean
		failDirty
		panicClean
		panicDirty
	)
	kinds := []kind{ok, failDirty, ok, failClean, ok, panicDirty, ok, failDirty, panicClean, ok, ok}
	ctx := storetest.Context(t)
	db := openTest(t, Options{})
	storetest.AppendEvents(t, db, "before") // rev 1

	release := blockCommitter(t, db)
	enqueued := countEnqueued(db)
	commitsBefore := db.commits.Load()
	errs := make([]error, len(kinds))
	revs := make([]uint64, len(kinds))
	var hooked []string // appended by hooks, which run on the committer one after another
	var wg sync.WaitGroup
	for i, k := range kinds {
		key := fmt.Sprintf("k%d", i)
		wg.Go(func() {
			var rev uint64
			errs[i] = db.Update(ctx, func(tx store.Tx) error {
				if err := tx.OnCommit(func() { hooked = append(hooked, key) }); err != nil {
					return err
				}
				if k == failClean {
					return errBoom
				}
				if k == panicClean {
					panic("clean kaboom")
				}
				if err := tx.Put(bucketA, []byte(key), []byte(key)); err != nil {
					return err
				}
				r, err := tx.Append(key, []byte(key))
				if err != nil {
					return err
				}
				rev = r
				switch k {
				case failDirty:
					return errBoom
				case panicDirty:
					panic("dirty kaboom")
				}
				return nil
			})
			revs[i] = rev
		})
		<-enqueued // one at a time, so the queue order is the index order
	}
	release()
	wg.Wait()

	var wantHooked []string
	for i, k := range kinds {
		if k == ok {
			wantHooked = append(wantHooked, fmt.Sprintf("k%d", i))
		}
	}
	if diff := cmp.Diff(wantHooked, hooked); diff != "" {
		t.Errorf("OnCommit hooks run (-want +got):\n%s", diff)
	}
	if got := db.commits.Load() - commitsBefore; got != 2 {
		t.Errorf("commits for the blocker and the group = %d, want 2", got)
	}
	var wantEvents []store.Event
	next := uint64(2)
	for i, k := range kinds {
		key := fmt.Sprintf("k%d", i)
		switch k {
		case ok:
			if errs[i] != nil {
				t.Errorf("Update(%s, succeeds) = %v, want nil", key, errs[i])
			}
		case failClean, failDirty:
			if !errors.Is(errs[i], errBoom) {
				t.Errorf("Update(%s, fails) = %v, want %v", key, errs[i], errBoom)
			}
		case panicClean, panicDirty:
			if !errors.Is(errs[i], store.ErrPanic) || !strings.Contains(errs[i].Error(), "kaboom") || !strings.Contains(errs[i].Error(), "goroutine") {
				t.Errorf("Update(%s, panics) = %v, want %v with the panic value and stack", key, errs[i], store.ErrPanic)
			}
		}
		var got []byte
		db.View(func(tx store.Tx) error { got = tx.Get(bucketA, []byte(key)); return nil })
		if k == ok {
			if string(got) != key {
				t.Errorf("Get(bucketA, %s) = %q, want %q", key, got, key)
			}
			// Revisions follow queue order among the survivors, with no gap left by the failures.
			if revs[i] != next {
				t.Errorf("revision of %s = %d, want %d", key, revs[i], next)
			}
			wantEvents = append(wantEvents, store.Event{Rev: next, Key: key, Value: []byte(key)})
			next++
		} else if got != nil {
			t.Errorf("Get(bucketA, %s) = %q, want nil: a failed update left a write", key, got)
		}
	}
	evs, err := db.Events(2, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantEvents, evs); diff != "" {
		t.Errorf("Events(2, 0) mismatch (-want +got):\n%s", diff)
	}
}

func TestUpdateContextDoneBeforeStart(t *testing.T) {
	db := openTest(t, Options{})
	var ran atomic.Bool
	fn := func(store.Tx) error { ran.Store(true); return nil }

	done, cancel := context.WithCancel(context.Background())
	cancel()
	if err := db.Update(done, fn); !errors.Is(err, context.Canceled) {
		t.Errorf("Update(cancelled ctx) = %v, want %v", err, context.Canceled)
	}

	// Cancelled while queued behind a busy committer.
	release := blockCommitter(t, db)
	enqueued := countEnqueued(db)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- db.Update(ctx, fn) }()
	<-enqueued
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Update(cancelled while queued) = %v, want %v", err, context.Canceled)
	}
	release()
	// This update queues after the cancelled one, so when it returns the committer has seen both.
	if err := db.Update(context.Background(), func(store.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if ran.Load() {
		t.Errorf("an update whose ctx was done before it started ran")
	}
}

// TestLoneCallerDoesNotWait checks that sequential updates each commit on their own at once: the
// committer has no timer to wait for, so each is a group of one.
func TestLoneCallerDoesNotWait(t *testing.T) {
	const n = 100
	db := openTest(t, Options{})
	before := db.commits.Load()
	start := time.Now()
	storetest.AppendEvents(t, db, slices.Repeat([]string{"k"}, n)...)
	elapsed := time.Since(start)
	if got := db.commits.Load() - before; got != n {
		t.Errorf("commits for %d sequential updates = %d, want %d", n, got, n)
	}
	t.Logf("%d sequential updates took %v (%v each)", n, elapsed, elapsed/n)
}

func TestMaxBatchSplitsGroups(t *testing.T) {
	const n = 10
	ctx := storetest.Context(t)
	db := openTest(t, Options{MaxBatch: 3})
	release := blockCommitter(t, db)
	enqueued := countEnqueued(db)
	before := db.commits.Load()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if err := db.Update(ctx, func(tx store.Tx) error { _, err := tx.Append("k", nil); return err }); err != nil {
				t.Error(err)
			}
		})
	}
	for range n {
		<-enqueued
	}
	release()
	wg.Wait()
	if got, want := db.commits.Load()-before, uint64(1+(n+2)/3); got != want {
		t.Errorf("commits = %d, want %d (the blocker, then groups of at most 3)", got, want)
	}
}

// TestCommitFailureIsSticky makes a bbolt commit fail (the file may not grow past maxSize) and checks
// that the whole group gets the error, Err reports it, and later updates fail fast.
func TestCommitFailureIsSticky(t *testing.T) {
	ctx := storetest.Context(t)
	db := openTest(t, Options{maxSize: 1 << 20})
	storetest.AppendEvents(t, db, "a")

	release := blockCommitter(t, db)
	enqueued := countEnqueued(db)
	errs := make([]error, 3)
	var hooks atomic.Int32
	var wg sync.WaitGroup
	for i, size := range []int{10, 2 << 20, 10} {
		wg.Go(func() {
			errs[i] = db.Update(ctx, func(tx store.Tx) error {
				if err := tx.OnCommit(func() { hooks.Add(1) }); err != nil {
					return err
				}
				return tx.Put(bucketC, store.U64(uint64(i)), make([]byte, size))
			})
		})
	}
	for range errs {
		<-enqueued
	}
	release()
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, berrors.ErrMaxSizeReached) {
			t.Errorf("Update #%d in the failed group = %v, want %v", i, err, berrors.ErrMaxSizeReached)
		}
	}
	if err := db.Err(); !errors.Is(err, berrors.ErrMaxSizeReached) {
		t.Errorf("Err() = %v, want %v", err, berrors.ErrMaxSizeReached)
	}
	if n := hooks.Load(); n != 0 {
		t.Errorf("%d OnCommit hooks ran for a group whose commit failed, want 0", n)
	}
	ran := false
	err := db.Update(ctx, func(store.Tx) error { ran = true; return nil })
	if !errors.Is(err, berrors.ErrMaxSizeReached) || ran {
		t.Errorf("Update after a failed commit = %v (ran %t), want %v without running", err, ran, berrors.ErrMaxSizeReached)
	}
	if got := db.Rev(); got != 1 {
		t.Errorf("Rev() = %d, want 1", got)
	}
}

func TestCloseFinishesQueuedUpdates(t *testing.T) {
	ctx := storetest.Context(t)
	db := openTest(t, Options{})
	release := blockCommitter(t, db)
	enqueued := countEnqueued(db)
	const n = 5
	errs := make(chan error, n)
	for range n {
		go func() {
			errs <- db.Update(ctx, func(tx store.Tx) error { _, err := tx.Append("k", nil); return err })
		}()
	}
	for range n {
		<-enqueued
	}
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	// Close waits for the committer, which is still blocked; wait until Close has stopped intake.
	for db.Err() == nil {
		runtime.Gosched()
	}
	if err := db.Update(ctx, func(store.Tx) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Update during Close = %v, want %v", err, store.ErrClosed)
	}
	release()
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("queued Update during Close = %v, want nil", err)
		}
	}
	if err := <-closed; err != nil {
		t.Errorf("Close() = %v", err)
	}
}

// TestOnCommitReportsEachCommit: Options.OnCommit hears of every commit, with a positive
// duration.
func TestOnCommitReportsEachCommit(t *testing.T) {
	ctx := storetest.Context(t)
	var commits atomic.Int64
	var bad atomic.Bool
	db := openTest(t, Options{OnCommit: func(d time.Duration) {
		if d <= 0 {
			bad.Store(true)
		}
		commits.Add(1)
	}})
	for i := range 3 {
		if err := db.Update(ctx, func(tx store.Tx) error { return tx.Put(ascBucket, []byte{byte(i)}, []byte("v")) }); err != nil {
			t.Fatal(err)
		}
	}
	if got := commits.Load(); got != 3 {
		t.Errorf("OnCommit called %d times, want 3", got)
	}
	if bad.Load() {
		t.Errorf("OnCommit got a duration <= 0")
	}
}
