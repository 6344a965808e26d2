package etcdstore

import (
	"context"

	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/internal/watchhub"
)

// Watch, as in boltstore (the same hub, ring and watchers: store/internal/watchhub), fed from etcd.
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
type hub struct{ watchhub.Hub }

func (h *hub) init(rev, oldest uint64, opts Options) {
	h.Init(rev, oldest, opts.RingSize, opts.WatchBuffer, scanMax)
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
	w, err := db.hub.Watch(from, key, (*source)(db))
	if err != nil {
		return nil, err
	}
	return w, nil
}
