package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/etcdstore/etcdtest"
	"github.com/erasured/erasured/store/storetest"
)

// blockCommitter occupies db's committer with an update that waits until release is called, so
// that calls made meanwhile queue up and form one group.
func blockCommitter(t *testing.T, db *DB) (release func()) {
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

// waitQueued waits until n calls wait in db's queue.
func waitQueued(t *testing.T, db *DB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		db.mu.Lock()
		q := len(db.queue)
		db.mu.Unlock()
		if q >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued, want %d", q, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func put(key string) func(store.Tx) error {
	return func(tx store.Tx) error {
		if err := tx.Put(bucketA, []byte(key), []byte(key)); err != nil {
			return err
		}
		_, err := tx.Append(key, nil)
		return err
	}
}

func getKey(t *testing.T, db store.DB, key string) []byte {
	t.Helper()
	var v []byte
	if err := db.View(func(tx store.Tx) error { v = tx.Get(bucketA, []byte(key)); return nil }); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestFenceComparedInEtcd: a term whose lease is revoked behind the DB's back (it has not noticed
// yet) fails its fenced updates by the etcd compare; an unfenced update of the same group commits.
func TestFenceComparedInEtcd(t *testing.T) {
	ctx := storetest.Context(t)
	db := openTest(t, testOptions(newPrefix(t), testBuckets))
	l, err := db.Campaign(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	release := blockCommitter(t, db)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	wg.Go(func() { errs[0] = db.Update(l.Fence(ctx), put("fenced")) })
	waitQueued(t, db, 1)
	wg.Go(func() { errs[1] = db.Update(ctx, put("unfenced")) })
	waitQueued(t, db, 2)
	// The follower and the renewals would end the term soon after the key goes; keep them from
	// knowing, so that the compare in etcd has to do the work.
	db.leadMu.Lock()
	db.blindTerms = true
	db.leadMu.Unlock()
	if _, err := rawClient(t).Revoke(ctx, l.(*term).lease); err != nil {
		t.Fatal(err)
	}
	before := db.commits.Load()
	release()
	wg.Wait()
	if !errors.Is(errs[0], store.ErrNotLeader) {
		t.Errorf("fenced Update after the revoke = %v, want %v", errs[0], store.ErrNotLeader)
	}
	if errs[1] != nil {
		t.Errorf("unfenced Update = %v", errs[1])
	}
	if v := getKey(t, db, "fenced"); v != nil {
		t.Errorf("the fenced update wrote %q", v)
	}
	if v := getKey(t, db, "unfenced"); v == nil {
		t.Error("the unfenced update did not write")
	}
	if got := db.Rev(); got != 1 {
		t.Errorf("Rev() = %d, want 1", got)
	}
	if n := db.commits.Load() - before; n != 1 {
		t.Errorf("%d commits after the release, want 1 (the unfenced update)", n)
	}
	if n := db.fenceFailures.Load(); n != 1 {
		t.Errorf("%d transactions failed on a fence compare, want 1", n)
	}
	if !closed(l.Done()) {
		t.Error("the term's Done is open after its compare failed")
	}
}

// TestFencedReadChecksTermWithoutWriting: a fenced Update that writes nothing is checked against
// its term in etcd, and writes nothing to etcd (meta/seq, which every process's cache rests on,
// stays): it returns nil while the term holds and ErrNotLeader once its lease is gone.
func TestFencedReadChecksTermWithoutWriting(t *testing.T) {
	ctx := storetest.Context(t)
	db := openTest(t, testOptions(newPrefix(t), testBuckets))
	l, err := db.Campaign(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	cli := rawClient(t)
	seq := func() string {
		resp, err := cli.Get(ctx, db.lay.key(metaSeq))
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("read meta/seq: %v", err)
		}
		return string(resp.Kvs[0].Value)
	}
	before := seq()
	read := func(tx store.Tx) error { _ = tx.Get(bucketA, []byte("k")); return nil }
	if err := db.Update(l.Fence(ctx), read); err != nil {
		t.Fatalf("fenced read-only Update = %v", err)
	}
	if after := seq(); after != before {
		t.Errorf("a fenced read-only Update moved meta/seq from %x to %x", before, after)
	}
	db.leadMu.Lock()
	db.blindTerms = true
	db.leadMu.Unlock()
	if _, err := cli.Revoke(ctx, l.(*term).lease); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(l.Fence(ctx), read); !errors.Is(err, store.ErrNotLeader) {
		t.Errorf("fenced read-only Update after the revoke = %v, want %v", err, store.ErrNotLeader)
	}
}

// TestLostReplySettled: a commit whose reply is lost is settled: when it was applied, Update
// returns nil and nothing is written twice; when it was not, the group runs again and commits once.
func TestLostReplySettled(t *testing.T) {
	for _, sent := range []bool{true, false} {
		t.Run(fmt.Sprintf("sent=%t", sent), func(t *testing.T) {
			ctx := storetest.Context(t)
			db := openTest(t, testOptions(newPrefix(t), testBuckets))
			storetest.AppendEvents(t, db, "before")
			var lost atomic.Bool
			db.loseSends = sent
			db.loseReply = func() bool { return lost.CompareAndSwap(false, true) }
			runs := 0
			var rev uint64
			err := db.Update(ctx, func(tx store.Tx) error {
				runs++
				var err error
				if err = tx.Put(bucketA, []byte("k"), []byte("v")); err != nil {
					return err
				}
				rev, err = tx.Append("k", nil)
				return err
			})
			if err != nil {
				t.Fatalf("Update with a lost reply = %v", err)
			}
			wantRuns := 1
			if !sent {
				wantRuns = 2 // not applied: run again
			}
			if runs != wantRuns || rev != 2 {
				t.Errorf("fn ran %d times, Append gave %d; want %d runs and revision 2", runs, rev, wantRuns)
			}
			storetest.AppendEvents(t, db, "after")
			evs, err := db.Events(1, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 3 || evs[1].Key != "k" || evs[2].Key != "after" {
				t.Errorf("events = %v, want before, k, after", evs)
			}
			// Another opener sees the same.
			other := openTest(t, testOptions(db.Prefix(), testBuckets))
			if got := other.Rev(); got != 3 {
				t.Errorf("another opener's Rev() = %d, want 3", got)
			}
		})
	}
}

// TestTxnLimits: a group larger than the transaction limit is split; a single function larger
// than it fails alone; a limit set above the cluster's is lowered when etcd refuses.
func TestTxnLimits(t *testing.T) {
	ctx := storetest.Context(t)
	for _, tc := range []struct {
		name   string
		maxOps int
	}{
		{"split", 16},
		{"above the cluster's", 4 * etcdtest.MaxTxnOps},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions(newPrefix(t), testBuckets)
			opts.MaxTxnOps = tc.maxOps
			db := openTest(t, opts)
			release := blockCommitter(t, db)
			const n = 300 // 5 operations each: more than the cluster's limit in all
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					errs[i] = db.Update(ctx, func(tx store.Tx) error {
						for j := range 4 {
							if err := tx.Put(bucketA, fmt.Appendf(nil, "%d-%d", i, j), []byte("v")); err != nil {
								return err
							}
						}
						_, err := tx.Append("k", nil)
						return err
					})
				})
			}
			waitQueued(t, db, n)
			before := db.commits.Load()
			release()
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("Update %d = %v", i, err)
				}
			}
			if got := db.Rev(); got != n {
				t.Errorf("Rev() = %d, want %d", got, n)
			}
			commits := db.commits.Load() - before
			if perTxn := (tc.maxOps - 3) / 5; perTxn < n && commits < uint64((n+perTxn-1)/perTxn) {
				t.Errorf("%d updates in %d commits, more than %d operations each", n, commits, tc.maxOps)
			}
			if tc.maxOps > etcdtest.MaxTxnOps && db.maxOps > etcdtest.MaxTxnOps {
				t.Errorf("the DB's limit is %d after the cluster refused more than %d", db.maxOps, etcdtest.MaxTxnOps)
			}
			t.Logf("%d updates in %d commits", n, commits)
			err := db.Update(ctx, func(tx store.Tx) error {
				for j := range 2 * etcdtest.MaxTxnOps {
					if err := tx.Put(bucketB, fmt.Appendf(nil, "%d", j), []byte("v")); err != nil {
						return err
					}
				}
				return nil
			})
			if !errors.Is(err, errTooLarge) {
				t.Errorf("Update of %d puts = %v, want %v", 2*etcdtest.MaxTxnOps, err, errTooLarge)
			}
			var count int
			if err := db.View(func(tx store.Tx) error { count = tx.Count(bucketB); return nil }); err != nil || count != 0 {
				t.Errorf("Count(b) after the refused update = %d, %v; want 0", count, err)
			}
		})
	}
}

// TestReadAtCompactedRevision: etcd's own compaction of the revision the committer reads at
// makes it read the state again, and loses none of the store's events.
func TestReadAtCompactedRevision(t *testing.T) {
	ctx := storetest.Context(t)
	prefix := newPrefix(t)
	a := openTest(t, testOptions(prefix, testBuckets))
	b := openTest(t, testOptions(prefix, testBuckets))
	storetest.AppendEvents(t, a, "a1", "a2")
	storetest.AppendEvents(t, b, "b1") // a's base is now behind
	resp, err := rawClient(t).Put(ctx, "unrelated", "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rawClient(t).Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	a.foreignSeq.Store(0) // make the committer read at its old, compacted base
	if err := a.Update(ctx, func(tx store.Tx) error {
		if v := tx.Get(bucketA, []byte("absent")); v != nil {
			return errors.New("found an absent key")
		}
		_, err := tx.Append("a3", nil)
		return err
	}); err != nil {
		t.Fatalf("Update reading at a compacted revision = %v", err)
	}
	storetest.WaitRev(t, b, 4)
	for name, db := range map[string]store.DB{"a": a, "b": b} {
		w, err := db.Watch(1, "")
		if err != nil {
			t.Fatal(err)
		}
		got := storetest.Collect(t, w, 4)
		w.Close()
		for i, key := range []string{"a1", "a2", "b1", "a3"} {
			if got[i].Rev != uint64(i+1) || got[i].Key != key {
				t.Errorf("%s: replay after etcd compaction [%d] = %+v, want %d %s", name, i, got[i], i+1, key)
			}
		}
	}
}

// TestOpenChecksPrefix: Open refuses a bad prefix or bucket, a newer format, and a prefix that
// holds keys but no format.
func TestOpenChecksPrefix(t *testing.T) {
	ctx := storetest.Context(t)
	cli := rawClient(t)
	newer := newPrefix(t)
	if _, err := cli.Put(ctx, newer+metaFormat, string(store.U64(keyFormat+1))); err != nil {
		t.Fatal(err)
	}
	stray := newPrefix(t)
	if _, err := cli.Put(ctx, stray+"b/a/k", "v"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts Options
		want error
	}{
		{"no prefix", testOptions("", testBuckets), nil},
		{"prefix without slash", testOptions("x", testBuckets), nil},
		{"bucket with a slash", testOptions(newPrefix(t), []store.Bucket{{Name: "a/b"}}), nil},
		{"newer format", testOptions(newer, testBuckets), errFormatTooNew},
		{"keys but no format", testOptions(stray, testBuckets), nil},
	} {
		db, err := Open(ctx, tc.opts)
		if err == nil {
			db.Close()
			t.Errorf("Open(%s) = nil, want an error", tc.name)
			continue
		}
		if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("Open(%s) = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestErrFollowsEtcd: Err turns non-nil while the (one-member) cluster is down, nil again once it
// is back, and Updates work again.
func TestErrFollowsEtcd(t *testing.T) {
	c := etcdtest.Start(t, 1)
	opts := testOptions("err/", testBuckets)
	opts.Endpoints = c.Endpoints()
	opts.RequestTimeout = time.Second
	db := openTest(t, opts)
	if err := db.Err(); err != nil {
		t.Fatalf("Err() = %v with etcd up", err)
	}
	waitErr := func(want bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for (db.Err() != nil) != want {
			if time.Now().After(deadline) {
				t.Fatalf("Err() = %v, want an error: %t", db.Err(), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	c.Stop(0)
	waitErr(true)
	if err := c.Restart(0); err != nil {
		t.Fatal(err)
	}
	waitErr(false)
	if err := db.Update(storetest.Context(t), put("k")); err != nil {
		t.Errorf("Update after etcd came back = %v", err)
	}
	_ = db.Close()
	if err := db.Err(); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Err() after Close = %v, want %v", err, store.ErrClosed)
	}
}

// TestMemberDown: on a three-member cluster, the store goes on with any one member stopped,
// writes and watchers included.
func TestMemberDown(t *testing.T) {
	ctx := storetest.Context(t)
	c := etcdtest.Start(t, 3)
	opts := testOptions("down/", testBuckets)
	opts.Endpoints = c.Endpoints()
	opts.RequestTimeout = 2 * time.Second
	db := openTest(t, opts)
	w, err := db.Watch(1, "")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	n := 0
	for i := range c.Members() {
		c.Stop(i)
		for range 5 {
			n++
			if err := db.Update(ctx, put(fmt.Sprintf("k%d", n))); err != nil {
				t.Fatalf("Update %d with member %d stopped = %v", n, i, err)
			}
		}
		if err := c.Restart(i); err != nil {
			t.Fatal(err)
		}
	}
	got := storetest.Collect(t, w, n)
	for i, ev := range got {
		if ev.Rev != uint64(i+1) {
			t.Fatalf("watcher event %d has revision %d", i, ev.Rev)
		}
	}
	if err := db.Err(); err != nil {
		t.Errorf("Err() = %v", err)
	}
}

// TestPrefetchReadsInOneRequest: a group of updates that each read a key they do not write
// before reads all those keys in one request, and each update still sees what the one before it
// in the group wrote.
func TestPrefetchReadsInOneRequest(t *testing.T) {
	ctx := storetest.Context(t)
	for _, tc := range []struct {
		noPrefetch         bool
		minReads, maxReads uint64
	}{{false, 1, 2}, {true, 20, 21}} {
		t.Run(fmt.Sprintf("NoPrefetch=%t", tc.noPrefetch), func(t *testing.T) {
			opts := testOptions(newPrefix(t), testBuckets)
			opts.NoPrefetch = tc.noPrefetch
			db := openTest(t, opts)
			release := blockCommitter(t, db)
			const n = 20
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					errs[i] = db.Update(ctx, func(tx store.Tx) error {
						if tx.Get(bucketA, fmt.Appendf(nil, "absent-%d", i)) != nil {
							return errors.New("found an absent key")
						}
						// A shared key: each sees the writes before it in the group.
						var count uint64
						if v := tx.Get(bucketB, []byte("count")); v != nil {
							count, _ = store.ParseU64(v)
						}
						return tx.Put(bucketB, []byte("count"), store.U64(count+1))
					})
				})
			}
			waitQueued(t, db, n)
			before := db.readRequests.Load()
			release()
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("Update %d = %v", i, err)
				}
			}
			if reads := db.readRequests.Load() - before; reads < tc.minReads || reads > tc.maxReads {
				t.Errorf("%d read requests for %d updates, want %d to %d", reads, n, tc.minReads, tc.maxReads)
			}
			v := getKey2(t, db, bucketB, "count")
			if c, err := store.ParseU64(v); err != nil || c != n {
				t.Errorf("count = %d, %v; want %d", c, err, n)
			}
		})
	}
}

func getKey2(t *testing.T, db store.DB, b store.Bucket, key string) []byte {
	t.Helper()
	var v []byte
	if err := db.View(func(tx store.Tx) error { v = tx.Get(b, []byte(key)); return nil }); err != nil {
		t.Fatal(err)
	}
	return v
}
