package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/erasured/erasured/store"
)

// Group commit.
//
// One committer goroutine (commitLoop) runs every update function, as in boltstore. It takes
// what is queued (up to MaxBatch), runs the functions one after another over one overlay of
// writes on top of the store's state at a known etcd revision (the base), and commits the whole
// group as one etcd transaction. The transaction's If compares meta/seq, the write counter that
// every write transaction of every process bumps, with the base's value: if another process
// committed since the base was read, nothing is written, the Else branch hands back the new
// counters, and the group runs again on fresh data. So each commit is serializable with every
// other, across processes. Calls arriving while a transaction is in flight form the next group.
//
// A function that fails has its writes undone from the overlay (a journal records what each
// write replaced), so the others go on without it. Fenced functions add a compare on their term's
// election key; if that compare fails, only the functions of that term fail (with ErrNotLeader)
// and the others run again without them.
//
// After a successful commit the committer knows the new state exactly (the base plus the
// overlay, at the commit's etcd revision, since the compare proved nobody wrote in between), so
// point reads it cached stay valid and the next group needs no read to start.
//
// A commit whose reply is lost (a timeout, a dropped connection) may or may not have been
// applied. The committer settles it before doing anything else: it sends a transaction that only
// bumps meta/seq if it still has the base's value. Once that has an answer, the lost one can no
// longer apply (its compare would fail), and this opener's commit key (which each of its writes
// sets to a new nonce, and nothing else writes) tells whether it did.

const (
	callQueued int32 = iota
	callRunning
	callCancelled
)

type call struct {
	ctx      context.Context
	fn       func(store.Tx) error
	fence    *term // the term its ctx is fenced with, nil when not fenced
	state    atomic.Int32
	err      error
	done     chan struct{}
	onCommit []func()
}

// base is the store's state at an etcd revision: what a group's functions read.
type base struct {
	etcdRev int64
	seq     uint64
	rev     uint64
	oldest  uint64
}

// errTooLarge is wrapped when one update function alone needs a bigger etcd transaction than the
// cluster allows.
var errTooLarge = errors.New("store: update too large for one etcd transaction")

// Update implements store.DB. Concurrent calls are grouped into one etcd transaction. fn MAY RUN
// MORE THAN ONCE (when the group runs again after another process committed, or after a fenced
// function lost its term): it must have no effect outside tx. Reads inside fn go to etcd when
// not in the committer's cache, so a function that reads much is slower than on bbolt; a read
// that fails (etcd unreachable) fails the whole group, which then writes nothing.
//
// An update whose ctx is fenced (Leadership.Fence) with a term of this DB commits only while
// that term's election key still exists in etcd: otherwise it returns an error wrapping
// store.ErrNotLeader.
func (db *DB) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := &call{ctx: ctx, fn: fn, done: make(chan struct{})}
	if l := store.LeadershipOf(ctx); l != nil {
		t, ok := l.(*term)
		if !ok || t.db != db {
			return fmt.Errorf("%w: the context is fenced with a term of another store", store.ErrNotLeader)
		}
		if t.ended() {
			return fmt.Errorf("%w: term %d has ended", store.ErrNotLeader, t.rev)
		}
		c.fence = t
	}
	db.mu.Lock()
	if db.closing {
		db.mu.Unlock()
		return store.ErrClosed
	}
	db.queue = append(db.queue, c)
	db.wakeup.Signal()
	db.mu.Unlock()

	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		if c.state.CompareAndSwap(callQueued, callCancelled) {
			return ctx.Err()
		}
		<-c.done
		return c.err
	}
}

// commitLoop is the committer. It returns when Close has been called and the queue is empty.
func (db *DB) commitLoop() {
	defer close(db.committerDone)
	var group []*call
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
		db.mu.Unlock()

		live := group[:0]
		for _, c := range group {
			if c.state.CompareAndSwap(callQueued, callRunning) {
				live = append(live, c)
			}
		}
		for len(live) > 0 {
			live = db.commitSome(live)
		}
		clear(group)
	}
}

// commitSome commits the longest leading run of live that fits in one etcd transaction (or fails
// it), replies to those calls, and returns the others.
func (db *DB) commitSome(live []*call) []*call {
	for {
		if db.base.etcdRev == 0 || db.foreignSeq.Load() > db.base.seq {
			if err := db.reloadBase(); err != nil {
				return db.failAll(live, err)
			}
		}
		db.prefetch(live)
		g := newGroup(db)
		n := 0
		var voidErr error // a read failed: this run of the group is void
		for _, c := range live {
			ok, err := g.run(c, n == 0)
			if err != nil {
				voidErr = err
				break
			}
			if !ok { // does not fit: leave it and the rest for the next transaction
				break
			}
			n++
		}
		if voidErr != nil {
			if errors.Is(voidErr, rpctypes.ErrCompacted) {
				db.base.etcdRev = 0 // the base's revision is gone from etcd: read a new one
				continue
			}
			return db.failAll(live, fmt.Errorf("store: read from etcd: %w", voidErr))
		}
		ran := live[:n]
		outcome, err := db.commitGroup(g, ran)
		switch outcome {
		case committed:
			db.finish(g, ran)
			return live[n:]
		case conflict:
			continue // the base moved: run again on the new one
		case fenceLost:
			// The functions of the lost terms have their replies; run the others again.
			rest := live[:0]
			for _, c := range live {
				if c.fence != nil && c.fence.ended() {
					c.err = fmt.Errorf("%w: term %d has ended", store.ErrNotLeader, c.fence.rev)
					close(c.done)
					continue
				}
				rest = append(rest, c)
			}
			live = rest
			if len(live) == 0 {
				return nil
			}
			continue
		case tooLarge:
			if n == 1 {
				c := live[0]
				c.err = fmt.Errorf("%w: %v", errTooLarge, err)
				close(c.done)
				return live[1:]
			}
			continue // the limits were lowered: the group splits
		default: // failed: nothing was written
			return db.failAll(live, err)
		}
	}
}

// failAll replies err to every call of live whose own function did not fail.
func (db *DB) failAll(live []*call, err error) []*call {
	db.base.etcdRev = 0 // read the state again before the next group
	for _, c := range live {
		c.err = err
		c.onCommit = nil
		close(c.done)
	}
	return nil
}

// finish runs the hooks of a committed group, hands its events to the watchers, and replies.
func (db *DB) finish(g *group, ran []*call) {
	for _, c := range ran {
		if c.err == nil {
			for _, f := range c.onCommit {
				f()
			}
		}
	}
	if len(g.events) > 0 || g.compactTo > 0 {
		if err := db.deliver(g.events, g.oldest()); err != nil {
			// Committed, but Rev cannot cover it until the follower reads what other
			// processes committed before: nil would promise what Rev does not show yet.
			for _, c := range ran {
				if c.err == nil {
					c.err = fmt.Errorf("store: committed, but this process is behind the store: %w", err)
				}
			}
		}
	}
	for _, c := range ran {
		close(c.done)
	}
}

type outcome int

const (
	committed outcome = iota
	conflict
	fenceLost
	tooLarge
	failed
)

// commitGroup sends the group's transaction and settles its outcome. On committed it has moved
// the base and the cache to the new state; on conflict it has reloaded the base.
func (db *DB) commitGroup(g *group, ran []*call) (outcome, error) {
	fences := map[*term]struct{}{}
	for _, c := range ran {
		if c.fence != nil && c.err == nil {
			fences[c.fence] = struct{}{}
		}
	}
	b := db.base
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.Value(db.lay.key(metaSeq)), "=", string(store.U64(b.seq)))}
	var terms []*term
	for t := range fences {
		terms = append(terms, t)
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(t.key), "=", t.rev))
	}
	els := db.baseOps()
	for _, t := range terms {
		els = append(els, clientv3.OpGet(t.key))
	}
	if !g.writes() {
		// Nothing to write (functions that only read, or that failed after reading): the
		// outcome still rests on what they read, which may predate another process's commit
		// that this one has not heard of yet. One read-only transaction checks meta/seq (and
		// the terms) as etcd has them now: a linearizable read, with no write that would void
		// the other processes' caches.
		ctx, cancel := context.WithTimeout(context.Background(), db.opts.RequestTimeout)
		resp, err := db.cli.Txn(ctx).If(cmps...).Else(els...).Commit()
		cancel()
		if err != nil {
			return failed, fmt.Errorf("store: etcd read: %w", err)
		}
		db.answered()
		if resp.Succeeded {
			db.base.etcdRev = resp.Header.Revision // the same seq: the cache stays valid
			return committed, nil
		}
		return db.refused(b, terms, resp, len(els))
	}
	db.nonce++
	nonce := string(store.U64(db.nonce))
	then := append([]clientv3.Op{
		clientv3.OpPut(db.lay.key(metaSeq), string(store.U64(b.seq+1))),
		clientv3.OpPut(db.commitKey, nonce),
	}, g.ops()...)

	start := time.Now()
	var resp *clientv3.TxnResponse
	var err error
	lose := db.loseReply != nil && db.loseReply()
	if !lose || db.loseSends {
		ctx, cancel := context.WithTimeout(context.Background(), db.opts.RequestTimeout)
		resp, err = db.cli.Txn(ctx).If(cmps...).Then(then...).Else(els...).Commit()
		cancel()
	}
	if lose {
		resp, err = nil, context.DeadlineExceeded
	}
	if err != nil {
		if refusedAsTooLarge(err) {
			db.maxOps = max(8, min(db.maxOps, len(then))/2)
			db.maxBytes = max(64<<10, min(db.maxBytes, g.bytes)/2)
			return tooLarge, err
		}
		if refusedUnsent(err) {
			return failed, fmt.Errorf("store: etcd commit: %w", err)
		}
		known := false
		if errors.Is(err, rpctypes.ErrNoSpace) {
			db.answered()
			var ok bool
			if ok, known = db.decideNoSpace(nonce); known && !ok {
				return failed, fmt.Errorf("store: etcd commit: %w", err)
			}
		}
		if !known {
			ok, serr := db.settle(nonce)
			if serr != nil {
				return failed, serr
			}
			if !ok {
				return conflict, nil // nothing was written; the base was reloaded
			}
		}
	} else {
		db.answered()
		if !resp.Succeeded {
			return db.refused(b, terms, resp, len(els))
		}
		db.base.etcdRev = resp.Header.Revision
		if db.opts.OnCommit != nil {
			db.opts.OnCommit(time.Since(start))
		}
	}
	// Committed: the new state is the base plus the overlay.
	db.commits.Add(1)
	if db.base.seq == b.seq { // settle may have read a later state already
		db.base.seq = b.seq + 1
		db.base.rev = g.rev
		db.base.oldest = g.oldest()
		g.applyToCache(&db.cache)
	}
	return committed, nil
}

// refused handles the Else branch of a group's transaction whose compares failed: the base
// moved (conflict, the base is reloaded) or a term was lost (fenceLost, the term is ended).
func (db *DB) refused(b base, terms []*term, resp *clientv3.TxnResponse, nels int) (outcome, error) {
	nb, err := db.baseFrom(resp.Header.Revision, resp.Responses)
	if err != nil {
		return failed, err
	}
	if nb.seq != b.seq {
		db.setBase(nb)
		return conflict, nil
	}
	lost := false
	for i, t := range terms {
		kvs := resp.Responses[nels-len(terms)+i].GetResponseRange().Kvs
		if len(kvs) == 0 || kvs[0].CreateRevision != t.rev {
			t.end()
			lost = true
		}
	}
	db.base.etcdRev = nb.etcdRev // same seq: the cache stays valid
	if !lost {
		return failed, errors.New("store: etcd transaction failed without a reason")
	}
	db.fenceFailures.Add(1)
	return fenceLost, nil
}

// runFn calls fn, turning a panic into an error wrapping ErrPanic.
func runFn(fn func(store.Tx) error, tx store.Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v\n%s", store.ErrPanic, r, debug.Stack())
		}
	}()
	return fn(tx)
}
