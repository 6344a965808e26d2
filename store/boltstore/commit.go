package boltstore

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/erasured/erasured/store"
)

// Group commit.
//
// One committer goroutine (commitLoop, owned by the DB, ended by Close) runs every update function. It
// takes everything queued (up to MaxBatch), runs the functions one after another in one bbolt write
// transaction, commits (which fsyncs) once, publishes the group's events to watchers, and only then
// replies to every caller. Calls that arrive while a commit is syncing queue up and form the next group,
// so the cost of a sync is shared by everyone who waited for it, and nobody waits for a timer: there is
// none. A lone caller's function runs as soon as the committer sees it.
//
// A function that fails after writing poisons the shared transaction: the committer rolls it back, replies
// to the failed caller, and re-runs the rest of the group in a fresh transaction. A function that fails
// without having written anything leaves the transaction untouched, so the group goes on without it.

// Call states: a queued call is claimed by the committer (running) or by its cancelled caller.
const (
	callQueued int32 = iota
	callRunning
	callCancelled
)

type call struct {
	ctx      context.Context // the caller's, for Tx.Context
	fn       func(store.Tx) error
	state    atomic.Int32
	err      error         // the outcome, written by the committer before done is closed
	done     chan struct{} // closed by the committer when err is final
	onCommit []func()      // registered by fn's latest run through Tx.OnCommit
}

// Update runs fn inside a write transaction and returns only after that transaction is durably committed
// (bbolt commit, fsync), or with fn's error, in which case none of fn's writes survive.
//
// Concurrent calls are grouped into one transaction and one commit. Because a group is rolled back and
// re-run when one of its functions fails, fn MAY RUN MORE THAN ONCE: it must have no effect outside tx
// (no sends, no appends to outer slices, no I/O). Report results through variables that each run
// overwrites and read them only after Update returns nil — bbolt's Batch rule. fn runs on the committer
// goroutine: it must not call Update, View or Compact, and must not block, or every writer waits.
//
// A panic in fn is recovered and returned as an error wrapping store.ErrPanic, with the panic value and stack.
// If ctx is done before fn starts, Update returns ctx.Err() without running it; once fn has started,
// Update waits for the outcome. After Close, Update returns store.ErrClosed; after a failed bbolt commit, it
// returns that sticky error (see Err).
func (db *DB) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := &call{ctx: ctx, fn: fn, done: make(chan struct{})}
	db.mu.Lock()
	if db.closing {
		db.mu.Unlock()
		return store.ErrClosed
	}
	if db.fatal != nil {
		err := db.fatal
		db.mu.Unlock()
		return err
	}
	db.queue = append(db.queue, c)
	db.wakeup.Signal()
	hook := db.onEnqueue
	db.mu.Unlock()
	if hook != nil {
		hook()
	}

	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		if c.state.CompareAndSwap(callQueued, callCancelled) {
			return ctx.Err()
		}
		<-c.done // fn started: the outcome is coming
		return c.err
	}
}

// commitLoop is the committer. It returns when Close has been called and the queue is empty.
func (db *DB) commitLoop() {
	defer close(db.committerDone)
	var group []*call
	st := &txState{}
	for {
		db.mu.Lock()
		for len(db.queue) == 0 && !db.closing {
			db.wakeup.Wait()
		}
		if len(db.queue) == 0 {
			db.mu.Unlock()
			return
		}
		n := min(len(db.queue), db.opts.MaxBatch)
		group = append(group[:0], db.queue[:n]...)
		rest := copy(db.queue, db.queue[n:])
		clear(db.queue[rest:])
		db.queue = db.queue[:rest]
		fatal := db.fatal
		db.mu.Unlock()

		if fatal != nil {
			for _, c := range group {
				c.err = fatal
				close(c.done)
			}
		} else {
			db.commitGroup(group, st)
		}
		clear(group)
	}
}

// commitGroup runs the functions of one group in one transaction and commits it.
func (db *DB) commitGroup(group []*call, st *txState) {
	live := group[:0]
	for _, c := range group {
		if c.state.CompareAndSwap(callQueued, callRunning) {
			live = append(live, c)
		} // else its caller gave up before it started: skip it, nobody waits for the reply
	}
	for len(live) > 0 {
		btx, err := db.bolt.Begin(true)
		if err == nil {
			err = st.reset(btx)
			if err != nil {
				_ = btx.Rollback()
			}
		}
		if err != nil {
			db.fail(live, fmt.Errorf("store: begin: %w", err))
			return
		}

		poisoned := -1 // index of a function that failed after writing
		for i, c := range live {
			tx := &boltTx{db: db, btx: btx, st: st, call: c}
			c.onCommit = c.onCommit[:0]
			c.err = runFn(c.fn, tx)
			tx.finish()
			if c.err != nil {
				c.onCommit = nil // a failed function's writes do not commit, nor do its hooks run
			}
			if c.err != nil && tx.dirty {
				poisoned = i
				break
			}
		}
		if poisoned >= 0 {
			_ = btx.Rollback()
			// Reply to the functions that failed up to the poisoned one; re-run everyone else.
			rest := live[:0]
			for i, c := range live {
				if i <= poisoned && c.err != nil {
					close(c.done)
					continue
				}
				c.err = nil
				rest = append(rest, c)
			}
			clear(live[len(rest):])
			live = rest
			continue
		}

		if st.rev != st.startRev {
			err = btx.Bucket(metaBucket.key()).Put(metaRev, store.U64(st.rev))
		}
		if bugReplyBeforeCommit && err == nil {
			for _, c := range live {
				close(c.done)
			}
			live = live[:0]
		}
		if err != nil {
			_ = btx.Rollback()
		} else {
			start := time.Now()
			err = btx.Commit()
			if err == nil && db.opts.OnCommit != nil {
				db.opts.OnCommit(time.Since(start))
			}
		}
		if err != nil {
			db.fail(live, fmt.Errorf("store: commit: %w", err))
			return
		}
		db.commits.Add(1)
		for _, c := range live {
			for _, f := range c.onCommit {
				f()
			}
		}
		db.hub.publish(st.events, st.compacted)
		for _, c := range live {
			close(c.done)
		}
		return
	}
}

// fail records a bbolt-level failure as the DB's sticky error and gives it to every caller of the group
// whose own function did not fail.
func (db *DB) fail(live []*call, err error) {
	db.mu.Lock()
	if db.fatal == nil {
		db.fatal = err
	}
	db.mu.Unlock()
	for _, c := range live {
		if c.err == nil {
			c.err = err
		}
		close(c.done)
	}
}

// runFn calls fn, turning a panic into an error wrapping ErrPanic.
func runFn(fn func(store.Tx) error, tx *boltTx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v\n%s", store.ErrPanic, r, debug.Stack())
		}
	}()
	return fn(tx)
}
