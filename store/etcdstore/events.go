package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/internal/watchhub"
)

// compactChunk is how many events one compaction transaction deletes, so that neither etcd's
// apply loop nor the writers wait long for one.
const compactChunk = 10000

// Catch-up limits: a watcher batch, and how many events one ring or etcd pass examines.
const (
	maxNextBatch = watchhub.NextBatch
	scanMax      = 1024
)

// Rev implements store.DB: the last revision delivered to the hub, from this process's commits
// or, through the follower, from any process's.
func (db *DB) Rev() uint64 { return db.hub.Rev() }

// Oldest implements store.DB.
func (db *DB) Oldest() uint64 { return db.hub.Oldest() }

// Events implements store.DB: from the ring when it still holds from, from etcd otherwise; never
// past Rev().
func (db *DB) Events(from uint64, limit int) ([]store.Event, error) {
	return db.hub.Events(from, limit, func(from, upTo uint64, limit int) ([]store.Event, error) {
		var all []store.Event
		for from <= upTo && len(all) < limit {
			evs, next, err := db.readEvents(from, upTo, "", limit-len(all), -1)
			if err != nil {
				return nil, err
			}
			all = append(all, evs...)
			if next == from {
				break
			}
			from = next
		}
		return all, nil
	})
}

// readEvents reads events from etcd: Rev in [from, upTo], only those about key unless key is "",
// at most limit of them, examining at most scan events (scan < 0: up to a page). next is the
// revision after the last one examined. meta/oldest is read in the same etcd transaction, so a
// concurrent compaction cannot open a gap.
func (db *DB) readEvents(from, upTo uint64, key string, limit, scan int) (evs []store.Event, next uint64, err error) {
	next = from
	if scan < 0 || scan > scanMax {
		scan = scanMax
	}
	if db.failEventReads.Load() {
		return nil, from, errors.New("test: event reads fail")
	}
	ctx, cancel := context.WithTimeout(context.Background(), db.opts.RequestTimeout)
	defer cancel()
	resp, err := db.cli.Txn(ctx).Then(
		clientv3.OpGet(db.lay.key(metaOldest)),
		clientv3.OpGet(db.lay.eventKey(from), clientv3.WithRange(db.lay.eventKey(upTo+1)), clientv3.WithLimit(int64(scan))),
	).Commit()
	if err != nil {
		if db.isClosing() {
			return nil, from, store.ErrClosed
		}
		return nil, from, fmt.Errorf("store: read events: %w", err)
	}
	db.answered()
	var oldestV []byte
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 {
		oldestV = kvs[0].Value
	}
	oldest, err := u64(metaOldest, oldestV)
	if err != nil {
		return nil, from, err
	}
	if from < oldest {
		return nil, from, &store.CompactedError{Requested: from, Oldest: oldest}
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		rev, ok := db.lay.parseEventKey(kv.Key)
		if !ok {
			return nil, from, fmt.Errorf("store: stray key %q among the events", kv.Key)
		}
		if rev != next {
			return nil, from, fmt.Errorf("store: event log has a gap: revision %d follows %d", rev, next-1)
		}
		next = rev + 1
		ev, err := decodeEvent(rev, kv.Value)
		if err != nil {
			return nil, from, err
		}
		if key == "" || ev.Key == key {
			evs = append(evs, ev)
			if len(evs) >= limit {
				break
			}
		}
	}
	return evs, next, nil
}

// deliver hands committed events (in revision order, possibly already delivered) to the hub,
// after reading from etcd the ones between the hub's revision and the first of them, which
// another process committed and the follower has not delivered yet. oldest is meta/oldest as of
// the events (0: unknown). It returns an error wrapping errUnavailable, having published
// nothing, when it could not read those: the follower delivers them all once it catches up.
func (db *DB) deliver(evs []store.Event, oldest uint64) error {
	db.pubMu.Lock()
	defer db.pubMu.Unlock()
	h := &db.hub
	cur := h.Rev()
	for len(evs) > 0 && evs[0].Rev <= cur {
		evs = evs[1:]
	}
	if len(evs) > 0 && evs[0].Rev > cur+1 {
		if err := db.fillGap(cur+1, evs[0].Rev-1); err != nil {
			return err
		}
	}
	if len(evs) == 0 {
		h.RaiseOldest(oldest)
		return nil
	}
	h.Publish(evs, oldest)
	return nil
}

// errUnavailable is wrapped when this process could not read from etcd the events other
// processes committed, so that its revision cannot reach one the store has.
var errUnavailable = errors.New("store: etcd unavailable")

// gapTries is how many reads fillGap tries before it gives up.
const gapTries = 20

// fillGap delivers the events [from, to] from etcd. Called with pubMu held. It returns an error
// wrapping errUnavailable (or store.ErrClosed) when it could not read them (after retrying for a
// while); when they were compacted away it moves the hub past them.
func (db *DB) fillGap(from, to uint64) error {
	tries := gapTries
	if n := db.gapTries.Load(); n > 0 {
		tries = int(n)
	}
	failures := 0
	for from <= to {
		evs, next, err := db.readEvents(from, to, "", maxNextBatch, -1)
		if ce := (*store.CompactedError)(nil); errors.As(err, &ce) {
			db.hub.Jump(min(ce.Oldest-1, to), ce.Oldest)
			from = db.Rev() + 1
			continue
		}
		if errors.Is(err, store.ErrClosed) {
			return err
		}
		if err != nil || next == from {
			if err == nil {
				err = fmt.Errorf("no event at revision %d", from)
			}
			if failures++; failures >= tries {
				return fmt.Errorf("%w: read the events %d to %d: %v", errUnavailable, from, to, err)
			}
			time.Sleep(time.Duration(failures) * 50 * time.Millisecond)
			continue
		}
		db.hub.Publish(evs, 0)
		from = next
	}
	return nil
}

// follow is the follower: one etcd watch on the whole prefix, from etcd revision from on. It
// delivers every process's events, raises the oldest revision, tells the committer of other
// processes' commits, and ends terms whose election key is deleted. When the watch breaks (etcd
// compacted its history, or the connection is lost for good) it re-reads the store's state and
// the events since the hub's revision from the ev/ keys, and watches again from there.
func (db *DB) follow(from int64) {
	wait := 50 * time.Millisecond
	for db.ctx.Err() == nil {
		ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(db.ctx))
		// ev/, leader/ and meta/ are contiguous in key order, before anything else and after
		// the buckets' b/, whose writes the follower has no use for.
		wch := db.cli.Watch(ctx, db.lay.key(eventsDir), clientv3.WithRange(prefixEnd(db.lay.key("meta/"))), clientv3.WithRev(from))
		for wr := range wch {
			if err := wr.Err(); err != nil {
				break
			}
			db.answered()
			if db.apply(wr.Events) != nil {
				break
			}
			from = wr.Header.Revision + 1
			wait = 50 * time.Millisecond
		}
		cancel()
		if db.ctx.Err() != nil {
			return
		}
		// Resynchronize: the counters now, the events since the hub's revision, then watch on.
		b, err := db.readBase(db.ctx)
		if err != nil {
			select {
			case <-db.ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, 2*time.Second)
			continue
		}
		db.foreignSeq.Store(max(db.foreignSeq.Load(), b.seq))
		db.pubMu.Lock()
		if db.fillGap(db.Rev()+1, b.rev) == nil {
			db.hub.RaiseOldest(b.oldest)
			from = b.etcdRev + 1
		}
		db.pubMu.Unlock()
		db.checkTerms()
	}
}

// apply handles the etcd events of one watch response. It fails when the events before them
// could not be read (see deliver): the follower then catches up as after a broken watch.
func (db *DB) apply(evs []*clientv3.Event) error {
	var ours []store.Event
	var oldest uint64
	for _, e := range evs {
		k := string(e.Kv.Key)
		switch {
		case e.Type == mvccpb.DELETE:
			if strings.HasPrefix(k, db.lay.electionPrefix()+"/") {
				db.electionKeyDeleted(k)
			}
		case k == db.lay.key(metaSeq):
			if n, err := u64(metaSeq, e.Kv.Value); err == nil && n > db.foreignSeq.Load() {
				db.foreignSeq.Store(n)
			}
		case k == db.lay.key(metaOldest):
			if n, err := u64(metaOldest, e.Kv.Value); err == nil {
				oldest = max(oldest, n)
			}
		default:
			if rev, ok := db.lay.parseEventKey(e.Kv.Key); ok {
				if ev, err := decodeEvent(rev, e.Kv.Value); err == nil {
					ours = append(ours, ev)
				}
			}
		}
	}
	if len(ours) > 0 || oldest > 0 {
		slices.SortFunc(ours, func(a, b store.Event) int {
			switch {
			case a.Rev < b.Rev:
				return -1
			case a.Rev > b.Rev:
				return 1
			}
			return 0
		})
		return db.deliver(ours, oldest)
	}
	return nil
}

// Compact implements store.DB: rev is in the future when the store (not only this process) has
// not reached it. It deletes the ev/ keys below rev with range deletes of up to
// compactChunk revisions, each in its own group-committed transaction that also sets
// meta/oldest, so writers keep going in between. It is independent of etcd's own compaction of
// its history, which never deletes a live key.
func (db *DB) Compact(ctx context.Context, rev uint64) error {
	if rev > db.Rev() {
		// This process may not have heard of another's commit yet: ask the store.
		if db.isClosing() {
			return store.ErrClosed
		}
		b, err := db.readBase(ctx)
		if err != nil {
			return err
		}
		if rev > b.rev {
			return fmt.Errorf("%w: compact to %d, current revision is %d", store.ErrFutureRevision, rev, b.rev)
		}
	}
	for {
		var done bool
		err := db.Update(ctx, func(stx store.Tx) error {
			tx := stx.(*etcdTx)
			g := tx.g
			done = false
			cur := g.oldest()
			if cur >= rev {
				done = true
				return nil
			}
			if rev > g.base.rev {
				return fmt.Errorf("%w: compact to %d, current revision is %d", store.ErrFutureRevision, rev, g.base.rev)
			}
			end := min(cur+compactChunk, rev)
			g.compactTo = end
			done = end >= rev
			return nil
		})
		if err != nil || done {
			return err
		}
	}
}
