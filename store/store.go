// Package store is erasured's storage layer: typed bbolt buckets with big-endian keys, group-committed
// write transactions, an append-only event log with revisions, compaction, and watchers that resume from
// a revision.
//
// The store does not interpret values: callers put their own encoded bytes. It never imports gRPC or the
// service; the service sees revisions, transactions and watch as the store's primitives, so that a
// later etcd-backed implementation can offer the same shape.
//
// Durability comes from the bbolt commit itself: Update returns only after the transaction holding the
// caller's writes has been committed and synced.
package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Sentinel errors. Compare with errors.Is.
var (
	// ErrClosed is returned by every operation after Close, and by Watcher.Next once the watcher or the DB
	// is closed.
	ErrClosed = errors.New("store: closed")
	// ErrReadOnly is returned by writes inside View.
	ErrReadOnly = errors.New("store: write in a read-only transaction")
	// ErrPanic wraps the panic value and stack of an update function that panicked.
	ErrPanic = errors.New("store: update function panicked")
	// ErrFutureRevision is wrapped by errors about a revision the store has not reached yet.
	ErrFutureRevision = errors.New("store: future revision")
)

// errSchemaTooNew is wrapped when the file was written by a newer erasured.
var errSchemaTooNew = errors.New("database schema is newer than this binary")

// schemaVersion is the layout this code reads and writes. Bump it, and add a migration to Open, whenever
// the meaning of stored keys or values changes, so that an older binary refuses the file rather than
// misread it.
//
//  1. The first layout.
//  2. The service keeps its Submit index in memory and an erasure's data key in its record: Requests
//     is keyed by ascending ids, Subjects is unused, Keys holds batch keys. Open marks a version 1 file
//     as 2; service.New converts its contents (service/index.go).
const schemaVersion = 2

// Keys of the meta bucket.
var (
	metaSchema    = []byte("schema")    // schemaVersion, U64
	metaRev       = []byte("rev")       // last appended revision, U64
	metaCompacted = []byte("compacted") // every event with Rev <= this is deleted, U64
)

// Options tune a DB. The zero value is usable: every zero field takes its default.
type Options struct {
	LockTimeout time.Duration // bbolt file-lock timeout; default 1s
	RingSize    int           // recent committed events kept in memory for watchers; default 8192
	WatchBuffer int           // per-watcher push buffer (events); default 64
	MaxBatch    int           // most update functions per group commit; default 512
	// OnCommit, when set, is told how long each successful bbolt commit (its write and sync)
	// took. It runs on the committer, so it must be quick (a histogram's Observe).
	OnCommit func(time.Duration)

	maxSize int // bbolt MaxSize; tests use it to make a commit fail at the bbolt level
}

func (o Options) withDefaults() Options {
	if o.LockTimeout <= 0 {
		o.LockTimeout = time.Second
	}
	if o.RingSize <= 0 {
		o.RingSize = 8192
	}
	if o.WatchBuffer <= 0 {
		o.WatchBuffer = 64
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 512
	}
	return o
}

// DB is an open store. It is safe for concurrent use. Close it to release the file lock.
type DB struct {
	path string
	opts Options
	bolt *bolt.DB

	mu      sync.Mutex // guards queue, closing, fatal
	wakeup  sync.Cond  // signalled (with mu) when queue grows or closing is set
	queue   []*call    // update calls waiting for the committer
	closing bool       // Close started: no new calls
	fatal   error      // sticky bbolt-level failure

	committerDone chan struct{} // closed when commitLoop returns
	done          chan struct{} // closed when the DB is closed; wakes blocked watchers

	hub hub

	closeOnce sync.Once
	closeErr  error

	compactChunk uint64        // events deleted per compaction transaction
	commits      atomic.Uint64 // successful bbolt commits by the committer
	onEnqueue    func()        // test hook, called after an update call is queued
}

// Open opens (creating if needed) the store at path. The parent directory is created with mode 0700 and
// the file with 0600. Open fails if another process holds the file for longer than opts.LockTimeout, or if
// the file was written by a newer schema.
func Open(path string, opts Options) (*DB, error) {
	opts = opts.withDefaults()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	bdb, err := bolt.Open(path, 0o600, boltOptions(opts))
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	var rev, compacted uint64
	err = bdb.Update(func(btx *bolt.Tx) error {
		var err error
		rev, compacted, err = initSchema(btx)
		return err
	})
	if err != nil {
		_ = bdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db := &DB{
		path:          path,
		opts:          opts,
		bolt:          bdb,
		committerDone: make(chan struct{}),
		done:          make(chan struct{}),
		compactChunk:  compactChunk,
	}
	db.wakeup.L = &db.mu
	db.hub.init(rev, compacted, opts)
	go db.commitLoop()
	return db, nil
}

// boltOptions are the bbolt options the store opens its file with.
func boltOptions(opts Options) *bolt.Options {
	return &bolt.Options{
		Timeout:      opts.LockTimeout,
		FreelistType: bolt.FreelistMapType, // compaction frees many pages; the map freelist stays fast
		// The free page list is not written at every commit (as etcd does): it is rebuilt from the
		// tree when the file is opened. Committed data is as durable; a commit writes fewer pages,
		// and as many fewer as the list is long.
		NoFreelistSync: true,
		MaxSize:        opts.maxSize,
	}
}

// initSchema checks the schema version, creates every bucket, and returns the current and compacted
// revisions.
func initSchema(btx *bolt.Tx) (rev, compacted uint64, err error) {
	if meta := btx.Bucket(metaBucket.key()); meta != nil {
		if v := meta.Get(metaSchema); v != nil {
			got, err := ParseU64(v)
			if err != nil {
				return 0, 0, fmt.Errorf("schema version: %w", err)
			}
			if got > schemaVersion {
				return 0, 0, fmt.Errorf("%w: file has version %d, this binary understands up to %d; run a newer erasured",
					errSchemaTooNew, got, schemaVersion)
			}
		}
	}
	for _, b := range allBuckets {
		if _, err := btx.CreateBucketIfNotExists(b.key()); err != nil {
			return 0, 0, fmt.Errorf("create bucket %s: %w", b, err)
		}
	}
	meta := btx.Bucket(metaBucket.key())
	got, err := metaU64(meta, metaSchema)
	if err != nil {
		return 0, 0, fmt.Errorf("schema version: %w", err)
	}
	if got < schemaVersion { // a new file (0), or version 1, whose contents the service converts
		if err := meta.Put(metaSchema, U64(schemaVersion)); err != nil {
			return 0, 0, err
		}
	}
	if rev, err = metaU64(meta, metaRev); err != nil {
		return 0, 0, err
	}
	if compacted, err = metaU64(meta, metaCompacted); err != nil {
		return 0, 0, err
	}
	return rev, compacted, nil
}

// metaU64 reads a U64 meta value; absent is 0.
func metaU64(meta *bolt.Bucket, key []byte) (uint64, error) {
	v := meta.Get(key)
	if v == nil {
		return 0, nil
	}
	n, err := ParseU64(v)
	if err != nil {
		return 0, fmt.Errorf("meta %s: %w", key, err)
	}
	return n, nil
}

// Path is the file the DB was opened from.
func (db *DB) Path() string { return db.path }

// Err is nil while the DB is healthy. It returns the sticky error of a failed bbolt commit (a disk
// failure: the DB refuses all further updates), or ErrClosed after Close. Health checks use it.
func (db *DB) Err() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.fatal != nil {
		return db.fatal
	}
	if db.closing {
		return ErrClosed
	}
	return nil
}

// Close stops accepting updates (they return ErrClosed), lets every already queued update commit, ends
// all watchers (their Next returns ErrClosed), and closes the file. It is idempotent; concurrent callers
// all wait for the first to finish.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.mu.Lock()
		db.closing = true
		db.wakeup.Broadcast()
		db.mu.Unlock()
		<-db.committerDone

		db.hub.close()
		close(db.done)
		if err := db.bolt.Close(); err != nil {
			db.closeErr = fmt.Errorf("store: close %s: %w", db.path, err)
		}
	})
	return db.closeErr
}

// View runs fn in a read-only transaction: a consistent snapshot that does not block writers. Writes
// inside fn return ErrReadOnly. fn must not call Update, View or Compact, and must not block on anything
// slow (network, a stream): a long read transaction keeps bbolt from reusing pages and from growing the
// file.
func (db *DB) View(fn func(tx *Tx) error) error {
	if db.isClosing() {
		return ErrClosed
	}
	btx, err := db.bolt.Begin(false)
	if err != nil {
		if errors.Is(err, bolt.ErrDatabaseNotOpen) {
			return ErrClosed
		}
		return fmt.Errorf("store: begin read: %w", err)
	}
	defer func() { _ = btx.Rollback() }()
	tx := &Tx{btx: btx}
	defer tx.finish()
	return fn(tx)
}

func (db *DB) isClosing() bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.closing
}
