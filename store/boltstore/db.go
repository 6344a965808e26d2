// Package boltstore is the store backend over one bbolt file: the buckets its user declares, an
// event log bucket keyed by revision, group-committed write transactions, compaction, watchers
// that resume from a revision, backups and a file check. It implements the contract of package
// store, which the service depends on; only this package (and the code that chooses the backend)
// imports bbolt.
//
// Durability comes from the bbolt commit itself: Update returns only after the transaction holding
// the caller's writes has been committed and synced.
package boltstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/erasured/erasured/store"
)

// errFormatTooNew is wrapped when the file was written by a newer erasured, errFormatTooOld when
// by one so old that this binary does not read it.
var (
	errFormatTooNew = errors.New("store file format is newer than this binary")
	errFormatTooOld = errors.New("store file format is older than this binary reads")
)

// fileFormat is the layout of the store's own data in the file: the event log's keys and encoding
// and the meta keys. It says nothing of the buckets its user declares (their layout is the user's
// schema, with its own version). Bump it whenever this package changes the meaning of what it
// writes, so that an older binary refuses the file rather than misread it. It was 2 when the user's
// schema version lived here too; the key keeps its name so that those files open.
//
// Binaries built before the user's schema kept its own version check only this key. So the
// user's first schema version past 2 must come with a bump of fileFormat too (to 3), or those
// binaries would open the new layout and misread it; service/schema's Version says the same.
const fileFormat = 2

// Keys of the meta bucket.
var (
	metaFormat    = []byte("schema")    // fileFormat, U64
	metaRev       = []byte("rev")       // last appended revision, U64
	metaCompacted = []byte("compacted") // every event with Rev <= this is deleted, U64
)

// Options tune a DB. Apart from Buckets, every zero field takes its default.
type Options struct {
	// Buckets are the buckets the user of the store needs. Open creates those that do not exist
	// yet; a bucket not declared does not exist for the DB's transactions. The names "events" and
	// "meta" are the store's own.
	Buckets []store.Bucket

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

// DB is an open store over a bbolt file. It is safe for concurrent use. Close it to release the
// file lock.
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

	hub     hub
	buckets map[string]store.Bucket // declared, by name

	closeOnce sync.Once
	closeErr  error

	compactChunk uint64        // events deleted per compaction transaction
	commits      atomic.Uint64 // successful bbolt commits by the committer
	onEnqueue    func()        // test hook, called after an update call is queued

	leadMu sync.Mutex // guards lead, terms
	lead   *boltTerm  // the term held now, nil when none
	terms  int64      // terms handed out so far
}

var _ store.DB = (*DB)(nil)

// Open opens (creating if needed) the store at path, with the buckets opts declares. The parent
// directory is created with mode 0700 and the file with 0600. Open fails if a declared bucket is
// invalid, if another process holds the file for longer than opts.LockTimeout, or if the file was
// written in a newer format.
func Open(path string, opts Options) (*DB, error) {
	opts = opts.withDefaults()
	buckets, err := declare(opts.Buckets)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
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
		rev, compacted, err = initFile(btx, opts.Buckets)
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
		buckets:       buckets,
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
		// The free page list is written at every commit, so that opening the file reads that list
		// instead of walking every page of the tree to rebuild it. The walk touched the whole file:
		// about 1 s for 2.5 GB, time to start that grew with every erasure ever stored (bench
		// -only restart), where the list costs a commit one page more per 512 free pages. A file
		// written without the list gets it when it is first opened.
		NoFreelistSync: false,
		MaxSize:        opts.maxSize,
	}
}

// initFile checks the file format, creates the store's own buckets and those declared, and returns
// the current and compacted revisions.
func initFile(btx *bolt.Tx, declared []store.Bucket) (rev, compacted uint64, err error) {
	if meta := btx.Bucket(metaBucket.key()); meta != nil {
		got, err := metaU64(meta, metaFormat)
		if err != nil {
			return 0, 0, fmt.Errorf("file format: %w", err)
		}
		if got > fileFormat {
			return 0, 0, fmt.Errorf("%w: file has format %d, this binary understands up to %d; run a newer erasured",
				errFormatTooNew, got, fileFormat)
		}
	}
	for _, b := range append([]bucket{eventsBucket, metaBucket}, userBuckets(declared)...) {
		if _, err := btx.CreateBucketIfNotExists(b.key()); err != nil {
			return 0, 0, fmt.Errorf("create bucket %s: %w", b.Name, err)
		}
	}
	meta := btx.Bucket(metaBucket.key())
	got, err := metaU64(meta, metaFormat)
	if err != nil {
		return 0, 0, fmt.Errorf("file format: %w", err)
	}
	switch {
	case got == 0: // a new file
		if err := meta.Put(metaFormat, store.U64(fileFormat)); err != nil {
			return 0, 0, err
		}
	case got < fileFormat:
		// Format 1 held the first layout, which no release reads any more.
		return 0, 0, fmt.Errorf("%w: file has format %d, which this binary does not read; start from an empty store",
			errFormatTooOld, got)
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
	n, err := store.ParseU64(v)
	if err != nil {
		return 0, fmt.Errorf("meta %s: %w", key, err)
	}
	return n, nil
}

// Path is the file the DB was opened from.
func (db *DB) Path() string { return db.path }

// Err is nil while the DB is healthy. It returns the sticky error of a failed bbolt commit (a disk
// failure: the DB refuses all further updates), or store.ErrClosed after Close.
func (db *DB) Err() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.fatal != nil {
		return db.fatal
	}
	if db.closing {
		return store.ErrClosed
	}
	return nil
}

// Close stops accepting updates (they return store.ErrClosed), lets every already queued update commit, ends
// all watchers (their Next returns store.ErrClosed), and closes the file. It is idempotent; concurrent callers
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
// inside fn return store.ErrReadOnly. fn must not call Update, View or Compact, and must not block on anything
// slow (network, a stream): a long read transaction keeps bbolt from reusing pages and from growing the
// file.
func (db *DB) View(fn func(tx store.Tx) error) error {
	if db.isClosing() {
		return store.ErrClosed
	}
	btx, err := db.bolt.Begin(false)
	if err != nil {
		if errors.Is(err, bolt.ErrDatabaseNotOpen) {
			return store.ErrClosed
		}
		return fmt.Errorf("store: begin read: %w", err)
	}
	defer func() { _ = btx.Rollback() }()
	tx := &boltTx{db: db, btx: btx}
	defer tx.finish()
	return fn(tx)
}

func (db *DB) isClosing() bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.closing
}
