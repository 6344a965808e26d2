package watchhub

import (
	"context"
	"errors"
	"fmt"

	"github.com/erasured/erasured/store"
)

// Watcher is the store.Watcher that Watch hands out.
type Watcher struct {
	h    *Hub
	src  Source
	key  string        // "" for every key
	wake chan struct{} // 1 slot: poked when the buffer gets events or the watcher is closed

	// Guarded by h.mu.
	next   uint64        // every matching event with Rev < next has been returned by Next
	buf    []store.Event // synced: pushed, not yet returned
	lostAt uint64        // unsynced with a buffer: the buffer is complete below this revision
	synced bool          // in the hub; buf then holds every matching event after next - 1 up to h.rev
	closed bool
	err    error // sticky: a *store.CompactedError
}

// Watch is store.DB's Watch on the hub as it is; src is where the watcher replays from when the
// ring no longer holds its position. A watcher starting at Rev() + 1 joins the hub at once; one
// starting in the past catches up in its Next.
func (h *Hub) Watch(from uint64, key string, src Source) (*Watcher, error) {
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
	w := &Watcher{h: h, src: src, key: key, wake: make(chan struct{}, 1), next: from}
	if from == h.rev+1 {
		w.synced = true
		h.add(w)
	}
	return w, nil
}

// Next implements store.Watcher.
func (w *Watcher) Next(ctx context.Context) ([]store.Event, error) {
	h := w.h
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
			case <-w.src.Done():
				return nil, store.ErrClosed
			}
			continue
		}

		// Unsynced with nothing buffered: catch up.
		pos := w.next
		if pos > h.rev {
			w.advance(pos)
			h.mu.Unlock()
			continue
		}
		if pos < h.oldest {
			w.err = &store.CompactedError{Requested: pos, Oldest: h.oldest}
			h.mu.Unlock()
			return nil, w.err
		}
		if pos >= h.ring.low() {
			evs, next := h.ring.collect(pos, h.rev, w.key, NextBatch, h.scanMax)
			w.advance(next)
			h.mu.Unlock()
			if len(evs) > 0 {
				return evs, nil
			}
			continue
		}
		upTo := h.rev // never past what Publish has seen, or Publish would repeat it after the re-sync
		scan := h.scanMax
		h.mu.Unlock()

		evs, next, err := w.src.ReadEvents(pos, upTo, w.key, NextBatch, scan)
		h.mu.Lock()
		if ce := (*store.CompactedError)(nil); errors.As(err, &ce) {
			w.err = ce
		}
		if err == nil && !w.closed {
			w.advance(next)
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
// check and the join is what keeps a publish from slipping between replay and live. Called with h.mu
// held, on an unsynced watcher.
func (w *Watcher) advance(next uint64) {
	h := w.h
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
func (w *Watcher) Progress() uint64 {
	h := w.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if w.synced && len(w.buf) == 0 {
		return h.rev
	}
	return w.next - 1
}

// Close implements store.Watcher.
func (w *Watcher) Close() {
	h := w.h
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

// Synced reports whether w is in the hub, for tests.
func (w *Watcher) Synced() bool {
	w.h.mu.Lock()
	defer w.h.mu.Unlock()
	return w.synced
}

// leave takes w out of the hub, keeping Progress where it was. Called with h.mu held.
func (w *Watcher) leave(h *Hub) {
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
