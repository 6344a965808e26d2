package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/erasured/erasured/store"
)

// Watch, as in boltstore (the same hub, ring and watchers), fed from etcd.
//
// The hub holds the watchers that are synced: everything they have not yet returned from Next is
// in their push buffer. Events reach the hub from two sources, in revision order and each once
// (deliver): the committer, for its own commits, before it replies to their callers; and the
// follower, one etcd watch on the whole prefix, for every commit of any process sharing it. So
// revisions are the same on every process: they are the store's own, written in the same etcd
// transaction as the data.
//
// A watcher that is not synced (a new one starting in the past, or one that fell behind) catches
// up inside its own Next: from the ring when it still holds its position, otherwise from the ev/
// keys in etcd, never reading past the hub's revision; when its position reaches the hub's
// revision + 1 (checked under the hub lock, so no delivery can slip in between) it rejoins the
// hub. That check is what makes the switch from replay to live free of gaps and duplicates. The
// store starts no goroutine and no etcd watch per watcher.

// hub is the DB's watcher registry, ring and revision bookkeeping.
type hub struct {
	mu     sync.Mutex
	rev    uint64 // last published (= committed) revision
	oldest uint64 // compacted revision + 1
	ring   ring
	bufMax int
	byKey  map[string]map[*watcher]struct{} // synced watchers of one key
	all    map[*watcher]struct{}            // synced watchers of every key
	closed bool
	onJoin func() // test hook: a catching-up watcher joined
}

func (h *hub) init(rev, oldest uint64, opts Options) {
	h.rev = rev
	h.oldest = oldest
	h.ring = ring{buf: make([]store.Event, opts.RingSize), last: rev}
	h.bufMax = opts.WatchBuffer
	h.byKey = make(map[string]map[*watcher]struct{})
	h.all = make(map[*watcher]struct{})
}

// publish hands contiguous events, the next after h.rev, to the ring and the synced watchers,
// and raises the oldest revision to oldest.
func (h *hub) publish(evs []store.Event, oldest uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ev := range evs {
		h.ring.push(ev)
		h.rev = ev.Rev
		if set := h.byKey[ev.Key]; set != nil {
			h.deliver(ev, set)
		}
		h.deliver(ev, h.all)
	}
	h.raiseOldest(oldest)
}

// raiseOldest records a compaction of the log up to oldest. Called with h.mu held.
func (h *hub) raiseOldest(oldest uint64) {
	h.oldest = max(h.oldest, oldest)
}

// jump moves the hub to rev when the events between h.rev and rev were compacted away before it
// saw them: the synced watchers, which would need them, fail with a CompactedError.
func (h *hub) jump(rev, oldest uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	err := &store.CompactedError{Requested: h.rev + 1, Oldest: oldest}
	for _, set := range append([]map[*watcher]struct{}{h.all}, mapsOf(h.byKey)...) {
		for w := range set {
			w.leave(h)
			w.err = err
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	}
	clear(h.all)
	clear(h.byKey)
	h.rev = rev
	h.ring = ring{buf: h.ring.buf, last: rev}
	h.raiseOldest(oldest)
}

func mapsOf(m map[string]map[*watcher]struct{}) []map[*watcher]struct{} {
	out := make([]map[*watcher]struct{}, 0, len(m))
	for _, s := range m {
		out = append(out, s)
	}
	return out
}

func (h *hub) deliver(ev store.Event, set map[*watcher]struct{}) {
	for w := range set {
		if len(w.buf) >= h.bufMax {
			// Too slow: set it aside. Its buffer is complete below ev.Rev; Next catches up from there.
			h.remove(w)
			w.synced = false
			w.lostAt = ev.Rev
			continue
		}
		if len(w.buf) == 0 {
			// Synced with nothing buffered means everything before ev was returned already.
			w.next = ev.Rev
			w.buf = make([]store.Event, 0, min(h.bufMax, 8))
		}
		w.buf = append(w.buf, ev)
		select {
		case w.wake <- struct{}{}:
		default: // already poked
		}
	}
}

func (h *hub) add(w *watcher) {
	if w.key == "" {
		h.all[w] = struct{}{}
		return
	}
	set := h.byKey[w.key]
	if set == nil {
		set = make(map[*watcher]struct{})
		h.byKey[w.key] = set
	}
	set[w] = struct{}{}
}

func (h *hub) remove(w *watcher) {
	if w.key == "" {
		delete(h.all, w)
		return
	}
	set := h.byKey[w.key]
	delete(set, w)
	if len(set) == 0 {
		delete(h.byKey, w.key)
	}
}

// close ends every watcher: blocked ones wake on DB.done, the others see closed on their next step.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for w := range h.all {
		w.leave(h)
	}
	for _, set := range h.byKey {
		for w := range set {
			w.leave(h)
		}
	}
	clear(h.all)
	clear(h.byKey)
}

// watcher is the store.Watcher that Watch hands out.
type watcher struct {
	db   *DB
	key  string        // "" for every key
	wake chan struct{} // 1 slot: poked when the buffer gets events or the watcher is closed

	// Guarded by db.hub.mu.
	next   uint64        // every matching event with Rev < next has been returned by Next
	buf    []store.Event // synced: pushed, not yet returned
	lostAt uint64        // unsynced with a buffer: the buffer is complete below this revision
	synced bool          // in the hub; buf then holds every matching event after next - 1 up to hub.rev
	closed bool
	err    error // sticky: a *store.CompactedError
}

// Watch implements store.DB. A watcher starting at the hub's revision + 1 joins the hub at once; one
// starting in the past catches up in its Next. A revision that another process committed and the
// follower has not delivered yet is not in the future: Watch delivers what lies between first, so
// that a watch resumes on any replica from what another one has shown.
func (db *DB) Watch(from uint64, key string) (store.Watcher, error) {
	if from > db.Rev()+1 {
		if err := db.catchUp(from - 1); err != nil {
			return nil, err
		}
	}
	return db.watchHub(from, key)
}

// catchUp delivers the events up to rev, when the store has them. It fails (rather than let
// Watch call rev+1 the future) when the store has them but they could not be read.
func (db *DB) catchUp(rev uint64) error {
	if db.isClosing() {
		return store.ErrClosed
	}
	b, err := db.readBase(context.Background())
	if err != nil {
		return err
	}
	if b.rev < rev {
		return nil // in the future indeed: the hub refuses it
	}
	db.pubMu.Lock()
	defer db.pubMu.Unlock()
	if cur := db.Rev(); cur < rev {
		return db.fillGap(cur+1, rev)
	}
	return nil
}

// watchHub is Watch on the hub as it is.
func (db *DB) watchHub(from uint64, key string) (store.Watcher, error) {
	h := &db.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, store.ErrClosed
	}
	if from == 0 {
		from = h.rev + 1
	}
	if from > h.rev+1 {
		return nil, fmt.Errorf("%w: watch from revision %d, current revision is %d", store.ErrFutureRevision, from, h.rev)
	}
	if from < h.oldest {
		return nil, &store.CompactedError{Requested: from, Oldest: h.oldest}
	}
	w := &watcher{db: db, key: key, wake: make(chan struct{}, 1), next: from}
	if from == h.rev+1 {
		w.synced = true
		h.add(w)
	}
	return w, nil
}

// Next implements store.Watcher.
func (w *watcher) Next(ctx context.Context) ([]store.Event, error) {
	h := &w.db.hub
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h.mu.Lock()
		switch {
		case w.closed || h.closed:
			h.mu.Unlock()
			return nil, store.ErrClosed
		case w.err != nil:
			h.mu.Unlock()
			return nil, w.err
		case len(w.buf) > 0:
			evs := w.buf
			w.buf = nil
			if w.synced {
				w.next = h.rev + 1
			} else {
				w.next = w.lostAt
			}
			h.mu.Unlock()
			return evs, nil
		case w.synced:
			h.mu.Unlock()
			select {
			case <-w.wake:
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-w.db.done:
				return nil, store.ErrClosed
			}
			continue
		}

		// Unsynced with nothing buffered: catch up.
		pos := w.next
		if pos > h.rev {
			w.advance(h, pos)
			h.mu.Unlock()
			continue
		}
		if pos < h.oldest {
			w.err = &store.CompactedError{Requested: pos, Oldest: h.oldest}
			h.mu.Unlock()
			return nil, w.err
		}
		if pos >= h.ring.low() {
			evs, next := h.ring.collect(pos, h.rev, w.key, maxNextBatch, scanMax)
			w.advance(h, next)
			h.mu.Unlock()
			if len(evs) > 0 {
				return evs, nil
			}
			continue
		}
		upTo := h.rev // never past what publish has seen, or publish would repeat it after the re-sync
		h.mu.Unlock()

		evs, next, err := w.db.readEvents(pos, upTo, w.key, maxNextBatch, scanMax)
		h.mu.Lock()
		if ce := (*store.CompactedError)(nil); errors.As(err, &ce) {
			w.err = ce
		}
		if err == nil && !w.closed {
			w.advance(h, next)
		}
		h.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if len(evs) > 0 {
			return evs, nil
		}
	}
}

// advance records that every matching event before next has been returned (or is about to be, by the
// caller) and, once that reaches the hub's revision, puts w back in the hub. Holding h.mu across the
// check and the join is what keeps a commit from slipping between replay and live. Called with h.mu
// held, on an unsynced watcher.
func (w *watcher) advance(h *hub, next uint64) {
	w.next = next
	if next > h.rev && !h.closed {
		w.synced = true
		h.add(w)
		if h.onJoin != nil {
			h.onJoin()
		}
	}
}

// Progress implements store.Watcher.
func (w *watcher) Progress() uint64 {
	h := &w.db.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if w.synced && len(w.buf) == 0 {
		return h.rev
	}
	return w.next - 1
}

// Close implements store.Watcher.
func (w *watcher) Close() {
	h := &w.db.hub
	h.mu.Lock()
	if !w.closed {
		w.closed = true
		w.leave(h)
	}
	h.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// leave takes w out of the hub, keeping Progress where it was. Called with h.mu held.
func (w *watcher) leave(h *hub) {
	if !w.synced {
		return
	}
	if len(w.buf) == 0 {
		w.next = h.rev + 1
	}
	w.lostAt = h.rev + 1 // a synced buffer is complete up to the hub's revision
	w.synced = false
	h.remove(w)
}
