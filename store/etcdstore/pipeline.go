package etcdstore

import (
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/erasured/erasured/store"
)

// The committer's loop, pipelined.
//
// While a group's transaction (N) is in flight, the committer prepares the next group (N+1): it
// takes the calls that did not fit in N and what has been queued since, and runs their prefetch
// and their functions over the state N leaves if it commits (newGroupOn: the committer's state
// plus N's writes, N's counters). Every key N does not write has that value at the committer's
// etcd revision already, since N's compare proves that no one else writes before it. N+1 is then
// sent at once, before N's reply, chained on N: its transaction compares meta/seq with the value
// N sets and this opener's commit key with N's nonce, so it applies only if N did and nothing
// came in between (see send). Two transactions are then in flight, which etcd can take in one
// raft round and one fsync, as it takes the concurrent Puts of a raw benchmark; while N+1 is in
// flight the committer prepares and sends N+2 the same way, once N's reply is in.
//
// Replies are handled in the order sent. When N committed, N+1's reply is awaited as N's was.
// When N failed, conflicted, lost a term, was too large, or its reply was lost and settling
// found that it never applied, N+1 cannot apply either, and its functions run again on the new
// state, as after a conflict: they never commit on a state that did not happen, and their hooks
// and replies come only from the run that committed. Settling N's lost reply reads the commit
// key: N's nonce says N committed, N+1's that both did. So commits, their hooks and their
// revisions keep the queue's order. A group that writes nothing (a read-only check) is not
// chained: it is sent once N's reply is in.

// prepared is a group run over a state (the committer's, or the one a transaction in flight
// leaves), ready to send.
type prepared struct {
	g       *group
	ran     []*call // the leading calls of the run that fit in g's transaction
	voidErr error   // a read failed: the run is void
}

// commitLoop is the committer. It returns when Close has been called and the queue is empty.
func (db *DB) commitLoop() {
	defer close(db.committerDone)
	var live []*call
	for {
		if len(live) == 0 {
			if live = db.take(nil, true); len(live) == 0 {
				return
			}
		}
		live = db.commitSome(live)
	}
}

// take appends to live what is queued, up to MaxBatch calls in all, dropping the cancelled. With
// wait it waits for a call, and returns nothing only once Close has been called and the queue is
// empty.
func (db *DB) take(live []*call, wait bool) []*call {
	db.mu.Lock()
	for wait && len(db.queue) == 0 && !db.closing {
		db.wakeup.Wait()
	}
	n := min(len(db.queue), max(0, db.opts.MaxBatch-len(live)))
	taken := db.queue[:n]
	for _, c := range taken {
		if c.state.CompareAndSwap(callQueued, callRunning) {
			live = append(live, c)
		}
	}
	rest := copy(db.queue, db.queue[n:])
	clear(db.queue[rest:])
	db.queue = db.queue[:rest]
	db.mu.Unlock()
	return live
}

// prepare runs the leading calls of live that fit in one transaction over the state parent
// leaves (the committer's base when parent is nil).
func (db *DB) prepare(live []*call, parent *group) *prepared {
	spec := db.speculating()
	if !spec {
		db.prefetch(live, parent)
	}
	p := &prepared{g: newGroupOn(db, parent)}
	p.g.speculate = spec
	n := 0
	for _, c := range live {
		ok, err := p.g.run(c, n == 0)
		if err != nil {
			p.voidErr = err
			break
		}
		if !ok { // does not fit: leave it and the rest for the next transaction
			break
		}
		n++
	}
	p.ran = live[:n]
	return p
}

// commitSome commits the leading calls of live, a transaction at a time, replying to them, and
// returns the calls it has not replied to (none, unless a transaction's outcome sends the rest
// back to be run on a new state). While a transaction is in flight it takes more calls from the
// queue, prepares the next one over the state it leaves, and sends it chained (see send), so
// that two transactions are in flight and etcd can take both in one raft round.
func (db *DB) commitSome(live []*call) []*call {
	for {
		if db.base.etcdRev == 0 || db.foreignSeq.Load() > db.base.seq {
			if err := db.reloadBase(); err != nil {
				return db.failAll(live, err)
			}
		}
		p := db.prepare(live, nil)
		var f *inflight // p's transaction once sent
		for {
			if p.voidErr != nil {
				if errors.Is(p.voidErr, rpctypes.ErrCompacted) {
					db.base.etcdRev = 0 // the base's revision is gone from etcd: read a new one
					break
				}
				return db.failAll(live, fmt.Errorf("store: read from etcd: %w", p.voidErr))
			}
			if f == nil {
				f = db.send(p.g, p.ran, nil)
			}
			var next *prepared
			var fn *inflight // next's transaction, when sent chained after f
			rest := live[len(p.ran):]
			if f.then != nil && db.opts.MaxBatch > 1 {
				if db.inFlight != nil {
					db.inFlight()
				}
				rest = db.take(rest, false)
				if len(rest) > 0 {
					next = db.prepare(rest, p.g)
					if db.prepared != nil {
						db.prepared(next.ran)
					}
					if next.voidErr == nil && len(next.ran) > 0 && next.g.writes() && !db.noChain {
						fn = db.send(next.g, next.ran, f)
						db.chainSent.Add(1)
					}
				}
			}
			outcome, err := db.await(f)
			// live is now p.ran followed by rest: copy it, rest may have grown past it.
			live = append(append(make([]*call, 0, len(p.ran)+len(rest)), p.ran...), rest...)
			switch outcome {
			case committed:
				if fn != nil && fn.knownCommitted {
					// Settling f's lost reply found fn's nonce: both committed.
					db.finish(p.g, p.ran)
					db.pipelined.Add(1)
					if o, _ := db.await(fn); o != committed {
						panic("etcdstore: a chained transaction known committed did not commit")
					}
					db.finish(next.g, next.ran)
					return rest[len(next.ran):]
				}
				if next != nil && next.voidErr == nil && len(next.ran) > 0 &&
					db.base.seq == next.g.base.seq && (fn != nil || db.foreignSeq.Load() <= db.base.seq) {
					// The state next was prepared on is the committer's: next is in flight
					// (fn), or is sent as it is at the top of the loop.
					db.finish(p.g, p.ran)
					db.pipelined.Add(1)
					p, live, f = next, rest, fn
					continue
				}
				// next, if any, runs again on the new state; fn, if sent, cannot apply: the
				// commit key no longer holds f's nonce, or meta/seq moved past it.
				db.finish(p.g, p.ran)
				return rest
			case early:
				// f was sent chained and etcd took it before the transaction it follows, which
				// has committed since: f's group is over the committer's state, send it again.
				// fn, if sent, cannot apply (it compares f's first nonce); next is prepared anew.
				db.chainEarly.Add(1)
				f = db.send(p.g, p.ran, nil)
				live = append(p.ran[:len(p.ran):len(p.ran)], live[len(p.ran):]...)
				continue
			case misguessed:
				// A key the group assumed absent exists: the cache has it now; run again.
				// fn, if sent, cannot apply: f did not.
			case conflict:
				// The base moved: run again on the new one. fn, if sent, cannot apply: f did not.
			case fenceLost:
				// The functions of the lost terms have their replies; run the others again.
				others := live[:0]
				for _, c := range live {
					if c.fence != nil && c.fence.ended() {
						c.err = fmt.Errorf("%w: term %d has ended", store.ErrNotLeader, c.fence.rev)
						c.onCommit = nil
						close(c.done)
						continue
					}
					others = append(others, c)
				}
				live = others
				if len(live) == 0 {
					return nil
				}
			case tooLarge:
				if len(p.ran) == 1 {
					c := live[0]
					c.err = fmt.Errorf("%w: %v", errTooLarge, err)
					c.onCommit = nil
					close(c.done)
					return live[1:]
				}
				// The limits were lowered: the group splits.
			default: // failed: nothing was written, or (settling failed) the outcome is unknown
				return db.failAll(live, err)
			}
			break
		}
	}
}
