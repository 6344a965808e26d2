// Package store is the contract between erasured's service and its storage: transactions over
// named buckets of ordered keys, an append-only event log with revisions, compaction of that log,
// and watchers that resume from a revision. It holds interfaces and neutral types only; a backend
// implements them (store/boltstore over a bbolt file), and store/storetest checks that a backend
// gives every guarantee written here.
//
// The store knows no domain. Its user declares the buckets it needs when it opens a backend, and
// puts its own encoded bytes; the store interprets neither keys (beyond their byte order) nor
// values.
//
// What every backend guarantees:
//
//   - Atomicity. An Update's function either commits all of its writes, appends and OnCommit hooks,
//     or none of them: a function that returns an error or panics leaves nothing behind, whatever it
//     wrote before.
//   - Durability. Update returns nil only after the commit holding the function's writes is durable
//     (synced to disk, or acknowledged by a quorum). Once Update has returned nil, Rev covers the
//     function's appends, and View and a new Watch see its writes.
//   - Revision order. Each Append gets the next revision: 1 for the first event ever, then one more
//     than the last, with no gap in committed history, even across failed functions and restarts.
//     The events of one function get consecutive revisions.
//   - Failure isolation. A backend may run several concurrent Update calls in one commit (group
//     commit); then one call failing never fails, loses or duplicates the others. To allow that, a
//     backend MAY RUN AN UPDATE FUNCTION MORE THAN ONCE: the function must have no effect outside its
//     Tx, and report results through variables that each run overwrites.
//   - Serializability. Updates behave as if run one at a time, in commit order: a function reads
//     every write committed before it (by any process sharing the store), and if anything it read
//     (a key it found, or a key it found absent, or a range it scanned) changes before its writes
//     commit, that run is discarded and the function runs again on the new data. A store several
//     processes share must keep this across them: it is what lets them decide, each in its own
//     transaction, whether a request was already taken.
//   - OnCommit hooks run only for a function whose writes committed, after the commit is durable and
//     before Update returns to any caller of that commit; in commit order, and within one function in
//     registration order; once, even when the function ran more than once (only its last run's
//     hooks count).
//   - Watch replays every committed event from a past revision and then follows live commits, with
//     no gap and no duplicate at the switch, whatever writers do meanwhile.
//   - Compaction deletes the log below a revision. Asking for a deleted revision (Events, Watch, or a
//     watcher that fell behind) returns a *CompactedError naming the oldest revision still stored.
//   - Close lets queued updates finish, ends every watcher (Next returns ErrClosed), and keeps what
//     was committed: reopening gives the same data, revision and oldest revision.
package store

import (
	"context"
)

// DB is an open store. It is safe for concurrent use.
type DB interface {
	// Update runs fn in a write transaction and returns once its writes are durably committed, or
	// with fn's error, in which case none of fn's writes survive. fn may run more than once (see
	// the package comment) and must not block or call the DB. A panic in fn is returned as an error
	// wrapping ErrPanic. If ctx is done before fn starts, Update returns ctx.Err() without running
	// it; once fn has started, Update waits for the outcome. After Close it returns ErrClosed.
	Update(ctx context.Context, fn func(tx Tx) error) error
	// View runs fn in a read-only transaction: a consistent snapshot. Writes inside fn return
	// ErrReadOnly. fn must not call the DB, and must not block on anything slow.
	View(fn func(tx Tx) error) error
	// Watch returns a watcher of every committed event with Rev >= from, only those whose Key is
	// key unless key is "", in revision order: first history, then live. from 0 means from now
	// on (Rev()+1). from < Oldest() returns a *CompactedError; from > Rev()+1 an error wrapping
	// ErrFutureRevision.
	Watch(from uint64, key string) (Watcher, error)
	// Events returns the committed events with Rev >= from (0 means 1) in ascending order, at
	// most limit of them (limit <= 0: no limit); from < Oldest() returns a *CompactedError.
	Events(from uint64, limit int) ([]Event, error)
	// Rev is the last committed revision, 0 when no event was ever appended.
	Rev() uint64
	// Oldest is the oldest revision still stored: 1 when never compacted.
	Oldest() uint64
	// Compact deletes every event with Rev < rev, so that Oldest() becomes rev. rev above Rev()
	// returns an error wrapping ErrFutureRevision; rev at or below Oldest() is a no-op. Writers
	// keep going while it runs.
	Compact(ctx context.Context, rev uint64) error
	// Err is nil while the DB is healthy: it returns a sticky storage failure (the DB then refuses
	// all updates), or ErrClosed after Close. Health checks use it.
	Err() error
	// Backup calls fn with a consistent copy of the whole store, taken while it keeps serving.
	// The copy is valid only during fn.
	Backup(fn func(s Snapshot) error) error
	// Close stops accepting updates, lets those already queued commit, ends every watcher and
	// releases the storage. It is idempotent.
	Close() error
}

// Tx is a transaction handed to an Update or View function. It is valid only until that function
// returns and must not be used from another goroutine. A bucket that was not declared when the
// backend was opened does not exist: reads find nothing, writes fail.
type Tx interface {
	// Get returns a copy of the value under key (safe to keep), or nil if there is none.
	Get(b Bucket, key []byte) []byte
	// Put stores value under key. The caller may reuse key and value once Put returns.
	Put(b Bucket, key, value []byte) error
	// Delete removes key; deleting an absent key is not an error.
	Delete(b Bucket, key []byte) error
	// Scan calls fn for each key of b in ascending byte order, from the first key >= start (nil:
	// the first key), until fn returns false or an error, which Scan returns. k and v are valid
	// only during fn; fn must not modify b.
	Scan(b Bucket, start []byte, fn func(k, v []byte) (more bool, err error)) error
	// ScanReverse is Scan in descending order, from the last key <= start (nil: the last key).
	ScanReverse(b Bucket, start []byte, fn func(k, v []byte) (more bool, err error)) error
	// Count is the number of keys in b, this transaction's writes included.
	Count(b Bucket) int
	// Append adds an event about key (the resource it concerns; watchers filter on it) to the log
	// and returns its revision.
	Append(key string, value []byte) (rev uint64, err error)
	// OnCommit registers f to run once this function's writes are durably committed (see the
	// package comment). f must be quick and must not block or use the DB. In View it returns
	// ErrReadOnly.
	OnCommit(f func()) error
	// Rev is the latest revision visible to this transaction, its own appends included.
	Rev() uint64
	// Context is the context the transaction's Update was called with (context.Background in a
	// View): it carries the caller's values, such as a request id for log lines. The store does
	// not watch it once the function runs.
	Context() context.Context
}

// Watcher yields committed events in revision order. Next must not be called concurrently with
// itself; Progress and Close may be called from any goroutine.
type Watcher interface {
	// Next blocks until at least one matching event is available and returns them in revision
	// order; each call continues exactly where the previous one stopped. The caller owns the
	// slice; the events' Values are shared and must not be modified. It returns ctx.Err() when
	// ctx is done, ErrClosed when the watcher or the DB is closed, and a sticky *CompactedError
	// when the watcher fell behind past a compaction.
	Next(ctx context.Context) ([]Event, error)
	// Progress is the revision up to which every matching event has been returned by Next. It
	// advances with the DB's revision even when nothing matches a filtered watcher, so it is what
	// heartbeats report.
	Progress() uint64
	// Close ends the watcher: a blocked Next returns ErrClosed. Closing twice is harmless.
	Close()
}
