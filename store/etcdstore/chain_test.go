package etcdstore

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/storetest"
)

// TestChainedTransaction: a group prepared while the transaction before it (A's) is in flight is
// sent at once, chained on it, and commits exactly when A did and nothing came in between. A
// counter that every function adds one to tells: a group committed over a state that did not
// happen loses or repeats an increment, and the events and hooks would be out of order.
func TestChainedTransaction(t *testing.T) {
	cases := []struct {
		name string
		// held runs on the goroutine sending A's transaction, after B and C's chained
		// transaction was sent, before A's goes.
		held func(t *testing.T, db *DB, c *counter)
		// chainedFirst: etcd gets B and C's transaction before A's (otherwise after A's reply);
		// chainedAfterSettle: once meta/seq has the value it compares on.
		chainedFirst, chainedAfterSettle bool
		// loseA: A's reply is lost; sendA: A is sent all the same; waitChained: settling
		// A's reply waits for the chained transaction's reply first.
		loseA, sendA, waitChained bool
		wantN, wantRunB           int
		wantEarly                 uint64
		wantChainedCommit         bool // the chained transaction's own run committed
	}{
		{name: "both commit", wantN: 3, wantRunB: 1, wantChainedCommit: true},
		{
			name: "chained one taken first",
			// etcd evaluates B and C's transaction before A's: it fails its compare, and is
			// sent again as it was prepared once A has committed, without running again.
			chainedFirst: true,
			wantN:        3, wantRunB: 1, wantEarly: 1, wantChainedCommit: true,
		},
		{
			name: "another process commits first",
			held: func(t *testing.T, db *DB, c *counter) {
				other := openTest(t, testOptions(db.Prefix(), testBuckets))
				if err := other.Update(storetest.Context(t), c.inc("foreign")); err != nil {
					t.Errorf("the other process's Update = %v", err)
				}
			},
			wantN: 4, wantRunB: 2,
		},
		{
			name:  "reply lost, not applied",
			loseA: true,
			// Settling A bumps meta/seq to the very value the chained one compares on: the
			// commit key's compare is what fails it, sent once the abort has applied.
			chainedAfterSettle: true,
			wantN:              3, wantRunB: 2,
		},
		{
			name:  "reply lost, applied",
			loseA: true, sendA: true,
			wantN: 3, wantRunB: 1, wantChainedCommit: true,
		},
		{
			name:  "reply lost, applied, settled by the chained one's nonce",
			loseA: true, sendA: true, waitChained: true,
			wantN: 3, wantRunB: 1, wantChainedCommit: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := storetest.Context(t)
			opts := testOptions(newPrefix(t), testBuckets)
			opts.NoPrefetch = true // the dry runs would count as runs
			db := openTest(t, opts)
			raw := rawClient(t)
			c := &counter{runs: map[string]int{}}
			if tc.loseA {
				var lost atomic.Bool
				db.loseSends = tc.sendA
				db.loseReply = func() bool { return lost.CompareAndSwap(false, true) }
			}
			release := make(chan struct{})
			chainedReplied, aReplied := make(chan struct{}), make(chan struct{})
			var heldFirst, repliedOnce, aRepliedOnce, preparedOnce, inFlightOnce atomic.Bool
			var chainedSeen atomic.Bool
			db.heldSend = func(f *inflight) {
				if f.isChained {
					if !tc.chainedFirst {
						<-aReplied
					}
					for tc.chainedAfterSettle {
						// The committer may have given this transaction up already, and the
						// test ended: then the read fails, and it goes as it is.
						resp, err := raw.Get(ctx, db.lay.key(metaSeq))
						if err != nil {
							return
						}
						if len(resp.Kvs) == 1 && string(resp.Kvs[0].Value) == string(store.U64(f.g.base.seq)) {
							return
						}
						time.Sleep(time.Millisecond)
					}
					return
				}
				if !heldFirst.CompareAndSwap(false, true) {
					return
				}
				<-release
				if tc.held != nil {
					tc.held(t, db, c)
				}
				if tc.chainedFirst {
					<-chainedReplied
				}
			}
			db.onReply = func(f *inflight) {
				if f.isChained && repliedOnce.CompareAndSwap(false, true) {
					chainedSeen.Store(f.err == nil && f.resp != nil && f.resp.Succeeded)
					close(chainedReplied)
				}
				if !f.isChained && aRepliedOnce.CompareAndSwap(false, true) {
					close(aReplied)
				}
			}
			if tc.waitChained {
				db.beforeSettle = func(f *inflight) {
					if f.chained == nil {
						t.Error("A's transaction was not followed by a chained one")
						return
					}
					<-f.chained.replied
				}
			}
			var wg sync.WaitGroup
			errs := map[string]error{}
			var errMu sync.Mutex
			update := func(ctx context.Context, name string) {
				wg.Go(func() {
					err := db.Update(ctx, c.inc(name))
					errMu.Lock()
					errs[name] = err
					errMu.Unlock()
				})
			}
			db.inFlight = func() {
				if !inFlightOnce.CompareAndSwap(false, true) {
					return
				}
				update(ctx, "B")
				waitQueued(t, db, 1)
				update(ctx, "C")
				waitQueued(t, db, 2)
			}
			db.prepared = func(ran []*call) {
				if preparedOnce.CompareAndSwap(false, true) {
					if len(ran) != 2 {
						t.Errorf("the group prepared during A's transaction held %d calls, want 2", len(ran))
					}
					// Let A go once B and C's transaction is on its way.
					go func() {
						for db.chainSent.Load() == 0 {
							select {
							case <-ctx.Done():
								return
							default:
							}
							time.Sleep(time.Millisecond)
						}
						close(release)
					}()
				}
			}
			update(ctx, "A")
			wg.Wait()

			for _, name := range []string{"A", "B", "C"} {
				if errs[name] != nil {
					t.Errorf("%s's Update = %v", name, errs[name])
				}
			}
			if n := db.chainSent.Load(); n == 0 {
				t.Error("no transaction was sent chained")
			}
			if got := c.ran("B"); got != tc.wantRunB {
				t.Errorf("B's function ran %d times, want %d", got, tc.wantRunB)
			}
			if got := db.chainEarly.Load(); got != tc.wantEarly {
				t.Errorf("%d chained transactions sent again, want %d", got, tc.wantEarly)
			}
			if tc.wantChainedCommit && tc.wantEarly == 0 && !chainedSeen.Load() {
				t.Error("the chained transaction's own reply did not say committed")
			}
			if v := getKey(t, db, "n"); string(v) != strconv.Itoa(tc.wantN) {
				t.Errorf("the counter is %q, want %d", v, tc.wantN)
			}
			checkCommitOrder(t, db, c, tc.wantN)
		})
	}
}
