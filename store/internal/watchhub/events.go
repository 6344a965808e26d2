package watchhub

import "github.com/erasured/erasured/store"

// Events is store.DB's Events on the hub: every event from from on (at most limit of them; limit <= 0:
// no bound), never past Rev(). It answers from the ring when the ring still holds from; otherwise it
// calls read, without the hub lock, for the events in [from, upTo] (at most limit).
func (h *Hub) Events(from uint64, limit int, read func(from, upTo uint64, limit int) ([]store.Event, error)) ([]store.Event, error) {
	from = max(from, 1)
	if limit <= 0 {
		limit = int(^uint(0) >> 1)
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, store.ErrClosed
	}
	if from < h.oldest {
		err := &store.CompactedError{Requested: from, Oldest: h.oldest}
		h.mu.Unlock()
		return nil, err
	}
	upTo := h.rev
	if from > upTo {
		h.mu.Unlock()
		return nil, nil
	}
	if from >= h.ring.low() {
		evs, _ := h.ring.collect(from, upTo, "", limit, -1)
		h.mu.Unlock()
		return evs, nil
	}
	h.mu.Unlock()
	return read(from, upTo, limit)
}

// ring keeps the most recent committed events, indexed by revision.
type ring struct {
	buf  []store.Event
	n    int    // events held, <= len(buf)
	last uint64 // revision of the newest event (the hub's revision when n == 0)
}

func (r *ring) push(ev store.Event) {
	r.buf[ev.Rev%uint64(len(r.buf))] = ev
	r.n = min(r.n+1, len(r.buf))
	r.last = ev.Rev
}

// low is the oldest revision held; last+1 when empty.
func (r *ring) low() uint64 { return r.last - uint64(r.n) + 1 }

// collect is Source.ReadEvents for the ring; from must be >= low().
func (r *ring) collect(from, upTo uint64, key string, limit, scan int) (evs []store.Event, next uint64) {
	next = from
	for ; next <= upTo && len(evs) < limit && scan != 0; next++ {
		ev := r.buf[next%uint64(len(r.buf))]
		scan--
		if key == "" || ev.Key == key {
			evs = append(evs, ev)
		}
	}
	return evs, next
}
