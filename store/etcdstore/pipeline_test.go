package etcdstore

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/storetest"
)

// counter is a set of update functions that each add one to a counter in bucketA and append an
// event, recording how often each ran, and, in its OnCommit hooks, the order of the commits.
type counter struct {
	mu    sync.Mutex
	runs  map[string]int
	hooks []hookRec // in the order the hooks ran
}

type hookRec struct {
	name string
	n    int    // the counter's value the function wrote
	rev  uint64 // its event's revision
}

func (c *counter) inc(name string) func(store.Tx) error {
	return func(tx store.Tx) error {
		c.mu.Lock()
		c.runs[name]++
		c.mu.Unlock()
		n := 0
		if v := tx.Get(bucketA, []byte("n")); v != nil {
			n, _ = strconv.Atoi(string(v))
		}
		n++
		if err := tx.Put(bucketA, []byte("n"), []byte(strconv.Itoa(n))); err != nil {
			return err
		}
		rev, err := tx.Append("n", []byte(name))
		if err != nil {
			return err
		}
		return tx.OnCommit(func() {
			c.mu.Lock()
			c.hooks = append(c.hooks, hookRec{name: name, n: n, rev: rev})
			c.mu.Unlock()
		})
	}
}

func (c *counter) ran(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs[name]
}

// TestPipelinedGroupRunsAgain: a group prepared while the transaction before it is in flight is
// sent as prepared only when that transaction committed; when it conflicted, lost its reply
// without applying, or lost its term, the prepared group runs again on the new state and never
// commits on the state it was prepared on. The counter every function adds one to tells: a
// group committed over a state that did not happen loses or repeats an increment.
func TestPipelinedGroupRunsAgain(t *testing.T) {
	cases := []struct {
		name string
		// setup arms db before the first update; inFlight runs once the first transaction is
		// on its way, before the next group is prepared.
		setup    func(t *testing.T, db *DB)
		inFlight func(t *testing.T, db *DB, c *counter)
		fenced   bool
		wantErrA error
		wantN    int // the counter at the end
		wantRunB int // how often B's function ran
	}{
		{
			name:  "committed",
			wantN: 3, wantRunB: 1,
		},
		{
			name: "conflict",
			inFlight: func(t *testing.T, db *DB, c *counter) {
				// Another process commits before the first transaction reaches etcd.
				other := openTest(t, testOptions(db.Prefix(), testBuckets))
				if err := other.Update(storetest.Context(t), c.inc("foreign")); err != nil {
					t.Errorf("the other process's Update = %v", err)
				}
			},
			wantN: 4, wantRunB: 2,
		},
		{
			name: "reply lost, not applied",
			setup: func(t *testing.T, db *DB) {
				var lost atomic.Bool
				db.loseReply = func() bool { return lost.CompareAndSwap(false, true) }
			},
			// Settling bumps meta/seq to the very value the prepared group compares on.
			wantN: 3, wantRunB: 2,
		},
		{
			name: "reply lost, applied",
			setup: func(t *testing.T, db *DB) {
				var lost atomic.Bool
				db.loseSends = true
				db.loseReply = func() bool { return lost.CompareAndSwap(false, true) }
			},
			wantN: 3, wantRunB: 1,
		},
		{
			name:   "term lost",
			fenced: true,
			inFlight: func(t *testing.T, db *DB, c *counter) {
				db.leadMu.Lock()
				db.blindTerms = true
				db.leadMu.Unlock()
				for tm := range db.terms {
					if _, err := rawClient(t).Revoke(storetest.Context(t), tm.lease); err != nil {
						t.Fatal(err)
					}
				}
			},
			wantErrA: store.ErrNotLeader,
			wantN:    2, wantRunB: 2,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := storetest.Context(t)
			opts := testOptions(newPrefix(t), testBuckets)
			opts.NoPrefetch = true // the dry runs would count as runs
			db := openTest(t, opts)
			c := &counter{runs: map[string]int{}}
			ctxA := ctx
			if tc.fenced {
				l, err := db.Campaign(ctx, "a")
				if err != nil {
					t.Fatal(err)
				}
				ctxA = l.Fence(ctx)
			}
			if tc.setup != nil {
				tc.setup(t, db)
			}
			release := make(chan struct{})
			var first, firstPrep atomic.Bool
			db.beforeSend = func() {
				if first.CompareAndSwap(false, true) {
					<-release
					return
				}
				// The group chained after the first goes after it: etcd taking it
				// first would fail it, and B would run again for that alone.
				time.Sleep(20 * time.Millisecond)
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
			var preparedN atomic.Int32
			db.inFlight = func() {
				if firstPrep.Load() {
					return
				}
				update(ctx, "B")
				waitQueued(t, db, 1)
				update(ctx, "C")
				waitQueued(t, db, 2)
				if tc.inFlight != nil {
					tc.inFlight(t, db, c)
				}
			}
			db.prepared = func(ran []*call) {
				if firstPrep.CompareAndSwap(false, true) {
					preparedN.Store(int32(len(ran)))
					close(release)
				}
			}
			update(ctxA, "A")
			wg.Wait()

			if n := preparedN.Load(); n != 2 {
				t.Fatalf("the group prepared during the first transaction held %d calls, want 2", n)
			}
			if !errors.Is(errs["A"], tc.wantErrA) || (tc.wantErrA == nil && errs["A"] != nil) {
				t.Errorf("A's Update = %v, want %v", errs["A"], tc.wantErrA)
			}
			for _, name := range []string{"B", "C"} {
				if errs[name] != nil {
					t.Errorf("%s's Update = %v", name, errs[name])
				}
			}
			if got := c.ran("B"); got != tc.wantRunB {
				t.Errorf("B's function ran %d times, want %d", got, tc.wantRunB)
			}
			if v := getKey(t, db, "n"); string(v) != strconv.Itoa(tc.wantN) {
				t.Errorf("the counter is %q, want %d", v, tc.wantN)
			}
			checkCommitOrder(t, db, c, tc.wantN)
		})
	}
}

// checkCommitOrder checks that the hooks ran once per committed function, in commit order, and
// that the log holds one event per increment, contiguous, in the counter's order.
func checkCommitOrder(t *testing.T, db *DB, c *counter, increments int) {
	t.Helper()
	evs, err := db.Events(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != increments {
		t.Fatalf("%d events, want %d: %v", len(evs), increments, evs)
	}
	for i, ev := range evs {
		if ev.Rev != uint64(i+1) {
			t.Errorf("event %d has revision %d", i, ev.Rev)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[string]bool{}
	last := hookRec{}
	for _, h := range c.hooks {
		if seen[h.name] {
			t.Errorf("%s's hook ran twice", h.name)
		}
		seen[h.name] = true
		if h.rev <= last.rev || h.n <= last.n {
			t.Errorf("hook of %s (n %d, rev %d) ran after %s's (n %d, rev %d)", h.name, h.n, h.rev, last.name, last.n, last.rev)
		}
		if ev := evs[h.rev-1]; string(ev.Value) != h.name || h.n != int(h.rev) {
			t.Errorf("hook of %s: n %d at revision %d, whose event is %s's", h.name, h.n, h.rev, ev.Value)
		}
		last = h
	}
}

// TestPipelinedCommitOrder: under load, with groups prepared during the transaction before
// them, every update commits once, the OnCommit hooks run in commit order and the revisions
// are contiguous in that order.
func TestPipelinedCommitOrder(t *testing.T) {
	ctx := storetest.Context(t)
	opts := testOptions(newPrefix(t), testBuckets)
	opts.MaxBatch = 4
	db := openTest(t, opts)
	c := &counter{runs: map[string]int{}}
	const callers, each = 8, 25
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			for j := range each {
				if err := db.Update(ctx, c.inc(strconv.Itoa(i*each+j))); err != nil {
					t.Errorf("Update = %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if v := getKey(t, db, "n"); string(v) != strconv.Itoa(callers*each) {
		t.Errorf("the counter is %q, want %d", v, callers*each)
	}
	checkCommitOrder(t, db, c, callers*each)
	if len(c.hooks) != callers*each {
		t.Errorf("%d hooks ran, want %d", len(c.hooks), callers*each)
	}
	if !slices.IsSortedFunc(c.hooks, func(a, b hookRec) int { return int(a.rev) - int(b.rev) }) {
		t.Error("hooks out of revision order")
	}
	if db.pipelined.Load() == 0 {
		t.Error("no group was sent as prepared during the transaction before it")
	}
	if db.chainSent.Load() == 0 {
		t.Error("no group was sent chained, before the reply of the transaction before it")
	}
}
