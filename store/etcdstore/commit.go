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
// other, across processes. Calls arriving while a transaction is in flight form the next group,
// which the committer prepares meanwhile over the state that transaction leaves and sends
// chained on it, before its reply (pipeline.go).
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
	early      // a chained transaction etcd took before the one it follows: nothing was written
	misguessed // a key the group assumed absent exists: nothing was written
)

// inflight is a group's transaction sent to etcd, its reply still to come.
type inflight struct {
	g       *group
	terms   []*term
	cmps    []clientv3.Cmp
	els     []clientv3.Op
	then    []clientv3.Op // nil: a read-only check
	nonce   string
	lose    bool
	start   time.Time
	replied chan struct{}
	sending chan struct{} // closed when the transaction is handed to the etcd client
	resp    *clientv3.TxnResponse
	err     error

	// chained is the transaction sent after this one, before its reply, that applies only if
	// this one did (nil: none). knownCommitted says that settling this one's lost reply found
	// the chained one's nonce in the commit key: it committed, whatever its own reply says.
	chained        *inflight
	knownCommitted bool
	isChained      bool // sent chained after another
}

// send sends the group's transaction (compared on the meta/seq value of the group's base) from a
// goroutine of its own, so that the committer can prepare the next group meanwhile. Nothing of
// the committer's state changes until await has the reply.
//
// With after set, the group was prepared over the state after's transaction leaves, and is sent
// before after's reply: its transaction also compares this opener's commit key with after's
// nonce. meta/seq alone would not do: another process committing over after's base, or the
// committer's own abort while settling after's lost reply, sets meta/seq to the very value the
// group compares on; the commit key holds after's nonce only if after applied and nothing wrote
// since (every write of this opener sets a new nonce, and no other writes it). So the chained
// transaction applies exactly when after did and nothing came in between; otherwise its compare
// fails and its functions run again.
func (db *DB) send(g *group, ran []*call, after *inflight) *inflight {
	fences := map[*term]struct{}{}
	for _, c := range ran {
		if c.fence != nil && c.err == nil {
			fences[c.fence] = struct{}{}
		}
	}
	f := &inflight{g: g, replied: make(chan struct{}), sending: make(chan struct{}), start: time.Now()}
	f.cmps = []clientv3.Cmp{clientv3.Compare(clientv3.Value(db.lay.key(metaSeq)), "=", string(store.U64(g.base.seq)))}
	if after != nil {
		f.cmps = append(f.cmps, clientv3.Compare(clientv3.Value(db.commitKey), "=", after.nonce))
		after.chained = f
		f.isChained = true
	}
	for t := range fences {
		f.terms = append(f.terms, t)
		f.cmps = append(f.cmps, clientv3.Compare(clientv3.CreateRevision(t.key), "=", t.rev))
	}
	f.els = db.baseOps()
	for _, t := range f.terms {
		f.els = append(f.els, clientv3.OpGet(t.key))
	}
	if len(g.assumed) > 0 {
		f.cmps = append(f.cmps, g.assumedCmps()...)
		f.els = append(f.els, g.assumedReads()...)
	}
	if !g.writes() {
		// Nothing to write (functions that only read, or that failed after reading): the
		// outcome still rests on what they read, which may predate another process's commit
		// that this one has not heard of yet. One read-only transaction checks meta/seq (and
		// the terms) as etcd has them now: a linearizable read, with no write that would void
		// the other processes' caches.
		go func() {
			close(f.sending)
			ctx, cancel := context.WithTimeout(context.Background(), db.opts.RequestTimeout)
			f.resp, f.err = db.cli.Txn(ctx).If(f.cmps...).Else(f.els...).Commit()
			cancel()
			close(f.replied)
		}()
		return f
	}
	db.nonce++
	f.nonce = string(store.U64(db.nonce))
	f.then = append([]clientv3.Op{
		clientv3.OpPut(db.lay.key(metaSeq), string(store.U64(g.base.seq+1))),
		clientv3.OpPut(db.commitKey, f.nonce),
	}, g.ops()...)
	f.lose = db.loseReply != nil && db.loseReply()
	beforeSend, heldSend, onReply := db.beforeSend, db.heldSend, db.onReply
	go func() {
		defer close(f.replied)
		if onReply != nil {
			defer onReply(f)
		}
		if after != nil {
			// Let the transaction before go first: etcd taking this one first fails it.
			// (chainDelay says why the wait.)
			<-after.sending
			select {
			case <-after.replied:
			case <-time.After(chainDelay):
			}
		}
		if beforeSend != nil {
			beforeSend()
		}
		close(f.sending)
		if heldSend != nil {
			heldSend(f)
		}
		if !f.lose || db.loseSends {
			ctx, cancel := context.WithTimeout(context.Background(), db.opts.RequestTimeout)
			f.resp, f.err = db.cli.Txn(ctx).If(f.cmps...).Then(f.then...).Else(f.els...).Commit()
			cancel()
		}
		if f.lose {
			f.resp, f.err = nil, context.DeadlineExceeded
		}
	}()
	return f
}

// await waits for the reply of f and settles its outcome. On committed it has moved the base and
// the cache to the new state; on conflict it has reloaded the base.
func (db *DB) await(f *inflight) (outcome, error) {
	if f.knownCommitted {
		// Chained after a transaction whose lost reply was settled by finding this one's
		// nonce: it committed, and the base is already what settling read, past it.
		db.commits.Add(1)
		return committed, nil
	}
	<-f.replied
	g, b, resp, err := f.g, f.g.base, f.resp, f.err
	if db.base.seq != b.seq {
		// Never: a group is sent only over the committer's state.
		panic(fmt.Sprintf("etcdstore: a group over meta/seq %d sent at %d", b.seq, db.base.seq))
	}
	nonces := []string{f.nonce}
	if f.chained != nil && f.chained.then != nil {
		nonces = append(nonces, f.chained.nonce)
	}
	// matched marks the chained transaction committed when settling found its nonce.
	matched := func(i int) bool {
		if i == 1 {
			f.chained.knownCommitted = true
		}
		return i >= 0
	}
	if f.then == nil {
		if err != nil {
			return failed, fmt.Errorf("store: etcd read: %w", err)
		}
		db.answered()
		if resp.Succeeded {
			db.base.etcdRev = resp.Header.Revision // the same seq: the cache stays valid
			return committed, nil
		}
		return db.refused(f, resp)
	}
	if err != nil {
		if refusedAsTooLarge(err) {
			db.maxOps = max(8, min(db.maxOps, len(f.then))/2)
			db.maxBytes = max(64<<10, min(db.maxBytes, g.bytes)/2)
			return tooLarge, err
		}
		if refusedUnsent(err) {
			return failed, fmt.Errorf("store: etcd commit: %w", err)
		}
		known := false
		if errors.Is(err, rpctypes.ErrNoSpace) {
			db.answered()
			var i int
			if i, known = db.decideNoSpace(nonces...); known && !matched(i) {
				return failed, fmt.Errorf("store: etcd commit: %w", err)
			}
		}
		if !known {
			if db.beforeSettle != nil {
				db.beforeSettle(f)
			}
			i, serr := db.settle(nonces...)
			if serr != nil {
				return failed, serr
			}
			if !matched(i) {
				return conflict, nil // nothing was written; the base was reloaded
			}
		}
	} else {
		db.answered()
		if !resp.Succeeded {
			return db.refused(f, resp)
		}
		db.base.etcdRev = resp.Header.Revision
		if db.opts.OnCommit != nil {
			db.opts.OnCommit(time.Since(f.start))
		}
	}
	// Committed: the new state is the base plus the overlay.
	db.commits.Add(1)
	if len(g.assumed) > 0 {
		db.guessed(true)
	}
	if db.base.seq == b.seq { // settle may have read a later state already
		db.base.seq = b.seq + 1
		db.base.rev = g.rev
		db.base.oldest = g.oldest()
		for _, k := range g.assumed { // the compares proved them absent; writes come next
			db.cache.put(k, nil, false)
		}
		g.applyToCache(&db.cache)
	}
	return committed, nil
}

// refused handles the Else branch of a group's transaction whose compares failed: the base
// moved (conflict, the base is reloaded) or a term was lost (fenceLost, the term is ended).
func (db *DB) refused(f *inflight, resp *clientv3.TxnResponse) (outcome, error) {
	b, terms := f.g.base, f.terms
	nb, err := db.baseFrom(resp.Header.Revision, resp.Responses)
	if err != nil {
		return failed, err
	}
	if nb.seq < b.seq && f.isChained {
		// A chained transaction that etcd took before the one it follows (which committed:
		// the committer is at b): it was prepared on the committer's state and can be sent
		// again as it is.
		return early, nil
	}
	if nb.seq != b.seq {
		db.setBase(nb)
		return conflict, nil
	}
	lost := false
	nbase := len(db.baseOps())
	for i, t := range terms {
		kvs := resp.Responses[nbase+i].GetResponseRange().Kvs
		if len(kvs) == 0 || kvs[0].CreateRevision != t.rev {
			t.end()
			lost = true
		}
	}
	db.base.etcdRev = nb.etcdRev // same seq: the cache stays valid
	if len(f.g.assumed) > 0 {
		wrong := db.checkAssumed(f.g.assumed, resp.Responses[nbase+len(terms):])
		if !lost {
			db.guessed(!wrong)
			if wrong {
				return misguessed, nil
			}
		}
	}
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

// chainDelay is how long a chained transaction waits after the one before was handed to the
// etcd client (or until its reply, if sooner). The two travel on concurrent gRPC streams, and
// etcd proposes them in the order its handlers get to them: one sent at once is often taken
// first, fails its compare, and costs a raft round to send again. A few hundred microseconds let
// the one before be proposed first; the chained one then joins the same or the next raft round,
// which lasts about an fsync.
var chainDelay = 300 * time.Microsecond
