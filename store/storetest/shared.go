package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/erasured/erasured/store"
)

// Replica is one handle on a store that several processes share.
type Replica interface {
	store.DB
	store.Elector
}

// Pair is two handles on one store, as two processes (replicas) hold them: each commits,
// watches and campaigns on its own connection.
type Pair struct {
	A, B Replica
	// CutA cuts A off from the store abruptly, as a crash or a network partition would: it can
	// no longer renew anything, and what it sends fails. A is still closed by the suite.
	CutA func()
}

// OpenPair opens two handles on one new store with buckets declared. The suite closes both.
type OpenPair func(t *testing.T, buckets []store.Bucket) Pair

// RunShared runs the tests of a store that several processes open at once: what one commits,
// the other sees with the same revisions; a transaction that reads a key and writes it when
// absent writes it once in all, whichever handles run it at the same time; a watch resumes on
// the other handle where it stopped on the first, at once (a revision one handle has shown is
// not in the future for the other). A backend that only one process can open (a
// bbolt file) has no such tests.
func RunShared(t *testing.T, open OpenPair) {
	for _, tc := range []struct {
		name string
		test func(*testing.T, OpenPair)
	}{
		{"CommitsSeenByTheOther", testCommitsSeenByTheOther},
		{"InsertIfAbsentOnce", testInsertIfAbsentOnce},
		{"IncrementsSerializable", testIncrementsSerializable},
		{"WatchResumesOnTheOther", testWatchResumesOnTheOther},
		{"CompactionSeenByTheOther", testCompactionSeenByTheOther},
		{"UpdateAfterTheOthersCommitSeesIt", testUpdateAfterTheOthersCommitSeesIt},
		{"CompactToTheOthersRevision", testCompactToTheOthersRevision},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, open) })
	}
}

func openPair(t *testing.T, open OpenPair) Pair {
	t.Helper()
	p := open(t, buckets)
	t.Cleanup(func() {
		_ = p.A.Close()
		_ = p.B.Close()
	})
	return p
}

// propagation bounds how long a commit of one handle may take to reach the other's Rev.
const propagation = 10 * time.Second

// WaitRev waits until db.Rev() reaches rev, and fails t if it does not within a few seconds.
func WaitRev(t testing.TB, db store.DB, rev uint64) {
	t.Helper()
	deadline := time.Now().Add(propagation)
	for db.Rev() < rev {
		if time.Now().After(deadline) {
			t.Fatalf("Rev() = %d after %s, want %d", db.Rev(), propagation, rev)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testCommitsSeenByTheOther: B's Rev, Events, Watch and View show what A commits, with A's
// revisions, and the other way round.
func testCommitsSeenByTheOther(t *testing.T, open OpenPair) {
	ctx := Context(t)
	p := openPair(t, open)
	wb, err := p.B.Watch(0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer wb.Close()
	AppendEvents(t, p.A, "a", "b")
	AppendEvents(t, p.B, "c")
	AppendEvents(t, p.A, "d")
	if err := p.A.Update(ctx, func(tx store.Tx) error { return tx.Put(bucketA, []byte("k"), []byte("from A")) }); err != nil {
		t.Fatal(err)
	}
	want := []store.Event{WantEvent(1, "a"), WantEvent(2, "b"), WantEvent(3, "c"), WantEvent(4, "d")}
	for name, db := range map[string]store.DB{"A": p.A, "B": p.B} {
		WaitRev(t, db, 4)
		if got := db.Rev(); got != 4 {
			t.Errorf("%s.Rev() = %d, want 4", name, got)
		}
		evs, err := db.Events(1, 0)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, evs); diff != "" {
			t.Errorf("%s.Events(1, 0) mismatch (-want +got):\n%s", name, diff)
		}
		var got []byte
		if err := db.View(func(tx store.Tx) error { got = tx.Get(bucketA, []byte("k")); return nil }); err != nil {
			t.Fatal(err)
		}
		if string(got) != "from A" {
			t.Errorf("%s: Get(k) = %q, want %q", name, got, "from A")
		}
	}
	if diff := cmp.Diff(want, Collect(t, wb, len(want))); diff != "" {
		t.Errorf("B's watcher from the start mismatch (-want +got):\n%s", diff)
	}
}

// testInsertIfAbsentOnce: the two handles run, at the same time, a transaction that reads a key
// and writes it (with an event) only when absent. In every round exactly one of them writes; the
// other's function sees the key (running again if it first read it absent), as the request-id
// check of a Submit sent to two replicas at once must.
func testInsertIfAbsentOnce(t *testing.T, open OpenPair) {
	const rounds = 20
	ctx := Context(t)
	p := openPair(t, open)
	for round := range rounds {
		key := fmt.Appendf(nil, "request-%d", round)
		var wrote [2]bool
		var errs [2]error
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, db := range []store.DB{p.A, p.B} {
			wg.Go(func() {
				<-start
				errs[i] = db.Update(ctx, func(tx store.Tx) error {
					wrote[i] = false // overwritten by every run
					if tx.Get(bucketA, key) != nil {
						return nil
					}
					if err := tx.Put(bucketA, key, fmt.Appendf(nil, "by %d", i)); err != nil {
						return err
					}
					if _, err := tx.Append(string(key), nil); err != nil {
						return err
					}
					wrote[i] = true
					return nil
				})
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: Update on handle %d = %v", round, i, err)
			}
		}
		if wrote[0] == wrote[1] {
			t.Errorf("round %d: handles wrote %v, want exactly one", round, wrote)
		}
	}
	for name, db := range map[string]store.DB{"A": p.A, "B": p.B} {
		WaitRev(t, db, rounds)
		evs, err := db.Events(1, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != rounds {
			t.Errorf("%s: %d events, want one per round (%d)", name, len(evs), rounds)
		}
		var n int
		if err := db.View(func(tx store.Tx) error { n = tx.Count(bucketA); return nil }); err != nil {
			t.Fatal(err)
		}
		if n != rounds {
			t.Errorf("%s: Count = %d, want %d", name, n, rounds)
		}
	}
}

// testIncrementsSerializable: both handles increment one counter many times at once, each
// increment a read and a write: no increment is lost, as none would be if they ran one at a time.
func testIncrementsSerializable(t *testing.T, open OpenPair) {
	const each = 50
	ctx := Context(t)
	p := openPair(t, open)
	key := []byte("counter")
	var wg sync.WaitGroup
	for i, db := range []store.DB{p.A, p.B} {
		for w := range 2 {
			wg.Go(func() {
				for range each {
					err := db.Update(ctx, func(tx store.Tx) error {
						var n uint64
						if v := tx.Get(bucketA, key); v != nil {
							var err error
							if n, err = store.ParseU64(v); err != nil {
								return err
							}
						}
						return tx.Put(bucketA, key, store.U64(n+1))
					})
					if err != nil {
						t.Errorf("handle %d writer %d: %v", i, w, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	for name, db := range map[string]store.DB{"A": p.A, "B": p.B} {
		var v []byte
		if err := db.View(func(tx store.Tx) error { v = tx.Get(bucketA, key); return nil }); err != nil {
			t.Fatal(err)
		}
		if n, err := store.ParseU64(v); err != nil || n != 4*each {
			t.Errorf("%s: counter = %d, %v; want %d", name, n, err, 4*each)
		}
	}
}

// testWatchResumesOnTheOther: while both handles write, a watcher on A reads part of the history,
// and a watcher on B started from the revision after the last one A's watcher returned reads the
// rest: together they are the history, with no gap and no repeat.
func testWatchResumesOnTheOther(t *testing.T, open OpenPair) {
	ctx := Context(t)
	p := openPair(t, open)
	AppendEvents(t, p.A, "before")
	writeCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i, db := range []store.DB{p.A, p.B} {
		wg.Go(func() {
			for n := 0; writeCtx.Err() == nil; n++ {
				err := db.Update(writeCtx, func(tx store.Tx) error {
					_, err := tx.Append(fmt.Sprintf("w%d", i), fmt.Appendf(nil, "%d-%d", i, n))
					return err
				})
				if err != nil && writeCtx.Err() == nil {
					t.Errorf("writer %d: %v", i, err)
					return
				}
			}
		})
	}
	var got []store.Event
	wa, err := p.A.Watch(1, "")
	if err != nil {
		t.Fatal(err)
	}
	for len(got) < 40 {
		evs, err := wa.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, evs...)
	}
	wa.Close()
	last := got[len(got)-1].Rev
	// At once: a revision that A has shown is committed, whether B has seen it yet or not.
	wb, err := p.B.Watch(last+1, "")
	if err != nil {
		t.Fatalf("B.Watch(%d) right after A's watcher returned %d = %v", last+1, last, err)
	}
	defer wb.Close()
	for len(got) < 100 {
		evs, err := wb.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, evs...)
	}
	stop()
	wg.Wait()
	upTo := got[len(got)-1].Rev
	WaitRev(t, p.A, upTo)
	history, err := p.A.Events(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(history[:upTo], got); diff != "" {
		t.Errorf("A's watcher then B's, resumed at %d, mismatch with the history (-want +got):\n%s", last+1, diff)
	}
}

// testCompactionSeenByTheOther: a compaction by A raises B's Oldest, and B refuses what is gone.
func testCompactionSeenByTheOther(t *testing.T, open OpenPair) {
	ctx := Context(t)
	p := openPair(t, open)
	AppendEvents(t, p.A, Keys(10)...)
	if err := p.A.Compact(ctx, 6); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(propagation)
	for p.B.Oldest() != 6 {
		if time.Now().After(deadline) {
			t.Fatalf("B.Oldest() = %d after A compacted to 6", p.B.Oldest())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := p.B.Events(5, 0); AsCompacted(err) == nil {
		t.Errorf("B.Events(5) after A compacted to 6 = %v, want a CompactedError", err)
	}
	if _, err := p.B.Watch(5, ""); AsCompacted(err) == nil {
		t.Errorf("B.Watch(5) after A compacted to 6 = %v, want a CompactedError", err)
	}
	evs, err := p.B.Events(6, 0)
	if err != nil || len(evs) != 5 || evs[0].Rev != 6 {
		t.Errorf("B.Events(6, 0) = %d events, %v; want 5 from revision 6", len(evs), err)
	}
}

// testUpdateAfterTheOthersCommitSeesIt: once an Update on A has returned, an Update on B reads
// its write, even when B's function writes nothing: one that only reads, and one that fails
// when the key is absent (as a request that refuses an unknown id does) must decide on the
// store as it is, not on what B last heard of it.
func testUpdateAfterTheOthersCommitSeesIt(t *testing.T, open OpenPair) {
	const rounds = 50
	ctx := Context(t)
	p := openPair(t, open)
	for _, tc := range []struct {
		name   string
		bucket store.Bucket
		fn     func(key, want []byte) func(tx store.Tx) error
	}{
		{"read-only", bucketA, func(key, want []byte) func(tx store.Tx) error {
			return func(tx store.Tx) error {
				if got := tx.Get(bucketA, key); string(got) != string(want) {
					return fmt.Errorf("Get(%s) = %q, want %q", key, got, want)
				}
				return nil
			}
		}},
		{"failing when absent", bucketB, func(key, _ []byte) func(tx store.Tx) error {
			return func(tx store.Tx) error {
				if tx.Get(bucketB, key) == nil {
					return fmt.Errorf("%s not found", key)
				}
				return nil
			}
		}},
	} {
		failures := 0
		for round := range rounds {
			key := fmt.Appendf(nil, "%s-%d", tc.name, round)
			if err := p.A.Update(ctx, func(tx store.Tx) error { return tx.Put(tc.bucket, key, key) }); err != nil {
				t.Fatal(err)
			}
			if err := p.B.Update(ctx, tc.fn(key, key)); err != nil {
				failures++
				if failures == 1 {
					t.Errorf("%s: round %d: Update on B after A's commit = %v", tc.name, round, err)
				}
			}
		}
		if failures > 0 {
			t.Errorf("%s: %d of %d Updates on B missed A's returned commit", tc.name, failures, rounds)
		}
	}
}

// testCompactToTheOthersRevision: B compacts to the revision A's Update has just reached, before
// B may have heard of it: that revision is not in the future.
func testCompactToTheOthersRevision(t *testing.T, open OpenPair) {
	ctx := Context(t)
	p := openPair(t, open)
	for round := range 10 {
		AppendEvents(t, p.A, fmt.Sprint("e", round))
		rev := p.A.Rev()
		if err := p.B.Compact(ctx, rev); err != nil {
			t.Fatalf("round %d: B.Compact(%d) right after A's commit = %v", round, rev, err)
		}
	}
}
