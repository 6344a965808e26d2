package boltstore

import (
	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/internal/watchhub"
)

// Watch is the shared watch hub (store/internal/watchhub): the committer publishes each commit's
// events to it, and a watcher that is not synced replays from the file in a short read transaction
// without the hub lock.

// hub is the DB's watcher registry, ring and revision bookkeeping, kept in terms of the compacted
// revision as the file records it.
type hub struct{ watchhub.Hub }

func (h *hub) init(rev, compacted uint64, opts Options) {
	h.Init(rev, compacted+1, opts.RingSize, opts.WatchBuffer, scanMax)
}

// publish hands a commit's events to the ring and the synced watchers. The committer calls it after the
// commit and before replying to the callers, so a caller that sees Update return also sees Rev() cover
// its events.
func (h *hub) publish(evs []store.Event, compacted uint64) {
	h.Publish(evs, compacted+1)
}

// close ends every watcher: blocked ones wake on DB.done, the others see closed on their next step.
func (h *hub) close() { h.Close() }

// source is the DB as its watchers' watchhub.Source.
type source DB

// ReadEvents implements watchhub.Source.
func (s *source) ReadEvents(from, upTo uint64, key string, limit, scan int) ([]store.Event, uint64, error) {
	return (*DB)(s).readEvents(from, upTo, key, limit, scan)
}

// Done implements watchhub.Source.
func (s *source) Done() <-chan struct{} { return s.done }

// Watch implements store.DB. A watcher starting at the hub's revision + 1 joins the hub at once; one
// starting in the past catches up in its Next.
func (db *DB) Watch(from uint64, key string) (store.Watcher, error) {
	w, err := db.hub.Watch(from, key, (*source)(db))
	if err != nil {
		return nil, err
	}
	return w, nil
}
