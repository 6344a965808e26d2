// Package watchhub is the watch machinery the store backends share, after etcd's mvcc watchable
// store: a ring of recent committed events, the registry of watchers with their push buffers,
// publishing in commit order, and the watchers' replay from storage and switch to live.
//
// The hub holds the watchers that are synced: everything they have not yet returned from Next is in
// their push buffer. The backend publishes each commit's events to the hub in revision order, each
// once; under the hub lock they are appended to each matching watcher's buffer and its 1-slot wake
// channel is poked without blocking. A watcher whose buffer is full is dropped from the hub instead
// (unsynced) and remembers where its buffer stops being complete (lostAt); writers and the other
// watchers never wait for it.
//
// An unsynced watcher (a new one starting in the past, or one that fell behind) catches up inside its
// own Next: from the ring under the hub lock when the ring still holds its position, otherwise from
// the backend's storage (Source) without the hub lock, never reading past the hub's revision. When its
// position reaches the hub's revision + 1 — checked under the hub lock, so no publish can slip in
// between — it rejoins the hub, and from then on every event reaches it through Publish. That check is
// what makes the switch from replay to live free of gaps and duplicates.
//
// Store-side memory of an idle watcher is the Watcher, its wake channel and a map entry: the push
// buffer exists only while it holds events, and Next hands that very slice to the caller. The hub
// starts no goroutine per watcher: the caller's goroutine, blocked in Next, is the only one.
package watchhub

import (
	"sync"

	"github.com/erasured/erasured/store"
)

// NextBatch is the most events one Next returns when it catches up.
const NextBatch = 256

// Source is what a backend gives the hub's watchers: its stored events and its end.
type Source interface {
	// ReadEvents reads stored events: Rev in [from, upTo], only those about key unless key is "",
	// at most limit of them, examining at most scan events. next is the revision after the last
	// one examined. It fails with a *store.CompactedError when from was compacted away.
	ReadEvents(from, upTo uint64, key string, limit, scan int) (evs []store.Event, next uint64, err error)
	// Done is closed when the store is closed; it wakes blocked watchers.
	Done() <-chan struct{}
}

// Hub is a store's watcher registry, ring and revision bookkeeping. The zero Hub is not usable:
// call Init first.
type Hub struct {
	mu      sync.Mutex
	rev     uint64 // last published (= committed) revision
	oldest  uint64 // compacted revision + 1
	ring    ring
	bufMax  int
	scanMax int                              // events one catch-up pass examines, ring or storage
	byKey   map[string]map[*Watcher]struct{} // synced watchers of one key
	all     map[*Watcher]struct{}            // synced watchers of every key
	closed  bool
	onJoin  func() // test hook: a catching-up watcher joined
}

// Init sets the hub up at revision rev with oldest as the oldest revision kept, a ring of ringSize
// events, push buffers of watchBuffer events, and catch-up passes that examine at most scanMax
// events before letting go of the hub lock or the storage read (filtered watchers may skip many).
func (h *Hub) Init(rev, oldest uint64, ringSize, watchBuffer, scanMax int) {
	h.rev = rev
	h.oldest = oldest
	h.ring = ring{buf: make([]store.Event, ringSize), last: rev}
	h.bufMax = watchBuffer
	h.scanMax = scanMax
	h.byKey = make(map[string]map[*Watcher]struct{})
	h.all = make(map[*Watcher]struct{})
}

// Rev is the last published revision.
func (h *Hub) Rev() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rev
}

// Oldest is the oldest revision kept: the compacted revision + 1.
func (h *Hub) Oldest() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.oldest
}

// Publish hands contiguous events, the next after Rev(), to the ring and the synced watchers, and
// raises the oldest revision to oldest. A backend calls it after the commit and before replying to
// the callers, so a caller that sees its update return also sees Rev() cover its events.
func (h *Hub) Publish(evs []store.Event, oldest uint64) {
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

// RaiseOldest records a compaction of the log up to oldest.
func (h *Hub) RaiseOldest(oldest uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.raiseOldest(oldest)
}

// raiseOldest is RaiseOldest with h.mu held.
func (h *Hub) raiseOldest(oldest uint64) {
	h.oldest = max(h.oldest, oldest)
}

// Jump moves the hub to rev when the events between Rev() and rev were compacted away before it saw
// them: the synced watchers, which would need them, fail with a CompactedError.
func (h *Hub) Jump(rev, oldest uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	err := &store.CompactedError{Requested: h.rev + 1, Oldest: oldest}
	for _, set := range append([]map[*Watcher]struct{}{h.all}, mapsOf(h.byKey)...) {
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

func mapsOf(m map[string]map[*Watcher]struct{}) []map[*Watcher]struct{} {
	out := make([]map[*Watcher]struct{}, 0, len(m))
	for _, s := range m {
		out = append(out, s)
	}
	return out
}

func (h *Hub) deliver(ev store.Event, set map[*Watcher]struct{}) {
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

func (h *Hub) add(w *Watcher) {
	if w.key == "" {
		h.all[w] = struct{}{}
		return
	}
	set := h.byKey[w.key]
	if set == nil {
		set = make(map[*Watcher]struct{})
		h.byKey[w.key] = set
	}
	set[w] = struct{}{}
}

func (h *Hub) remove(w *Watcher) {
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

// Close ends every watcher: blocked ones wake on their Source's Done, the others see closed on their
// next step. Watch and Events fail with store.ErrClosed from then on.
func (h *Hub) Close() {
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

// SetOnJoin sets a test hook, called with the hub lock held whenever a catching-up watcher joins
// the hub; nil removes it.
func (h *Hub) SetOnJoin(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.onJoin = f
}

// SyncedWatchers is how many watchers are in the hub, for tests.
func (h *Hub) SyncedWatchers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.all)
	for _, set := range h.byKey {
		n += len(set)
	}
	return n
}
