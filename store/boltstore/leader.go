package boltstore

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/erasured/erasured/store"
)

// A bbolt file is held by one process at a time (Open takes its file lock), so that process is
// the only one that can lead: Campaign elects it at once, and the term lasts until it resigns or
// closes the DB. Fencing needs no check: no other process can write the file meanwhile.

var _ store.Elector = (*DB)(nil)

// forever is the ValidUntil of a term that no other process can take over.
var forever = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// Campaign elects the caller at once, unless another term of this DB is still held, in which
// case it waits for that one to end.
func (db *DB) Campaign(ctx context.Context, id string) (store.Leadership, error) {
	for {
		db.leadMu.Lock()
		cur := db.lead
		if cur == nil {
			if db.isClosing() {
				db.leadMu.Unlock()
				return nil, store.ErrClosed
			}
			db.terms++
			l := &boltTerm{db: db, id: id, term: db.terms, done: make(chan struct{})}
			db.lead = l
			db.leadMu.Unlock()
			go func() {
				select {
				case <-db.done:
					l.end()
				case <-l.done:
				}
			}()
			return l, nil
		}
		db.leadMu.Unlock()
		select {
		case <-cur.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-db.done:
			return nil, store.ErrClosed
		}
	}
}

// Leader names the holder of the current term, "" when none is held.
func (db *DB) Leader(context.Context) (string, error) {
	db.leadMu.Lock()
	defer db.leadMu.Unlock()
	if db.lead == nil {
		return "", nil
	}
	return db.lead.id, nil
}

// boltTerm is a term of leadership over a bbolt file.
type boltTerm struct {
	db   *DB
	id   string
	term int64
	once sync.Once
	done chan struct{}

	endedAt atomic.Pointer[time.Time] // when the term ended, nil while it holds
}

func (l *boltTerm) Done() <-chan struct{} { return l.done }

// Fence marks ctx only so that the term can be recognised; no Update needs checking.
func (l *boltTerm) Fence(ctx context.Context) context.Context { return store.WithFence(ctx, l) }

// ValidUntil is far in the future while the term holds, and the time it ended after.
func (l *boltTerm) ValidUntil() time.Time {
	if e := l.endedAt.Load(); e != nil {
		return *e
	}
	return forever
}

func (l *boltTerm) Term() int64 { return l.term }

func (l *boltTerm) Resign(context.Context) error {
	l.end()
	return nil
}

// end closes the term and frees the DB for the next one.
func (l *boltTerm) end() {
	l.once.Do(func() {
		now := time.Now()
		l.endedAt.Store(&now)
		l.db.leadMu.Lock()
		if l.db.lead == l {
			l.db.lead = nil
		}
		l.db.leadMu.Unlock()
		close(l.done)
	})
}
