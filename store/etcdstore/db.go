package etcdstore

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/erasured/erasured/store"
)

// Options configure a DB. Apart from Endpoints (or Client), Prefix and Buckets, every zero field
// takes its default.
type Options struct {
	// Endpoints are the etcd members' client URLs.
	Endpoints []string
	// Prefix is the key prefix every key of the store lies under; it must end in "/". Replicas
	// that share a store share a prefix.
	Prefix string
	// DialTimeout bounds the first connection to etcd; default 5s.
	DialTimeout time.Duration
	// TLS is the client's TLS configuration; nil dials in plain text.
	TLS *tls.Config
	// Username and Password authenticate to etcd when set.
	Username, Password string
	// Buckets are the buckets the user of the store needs. A name may not hold "/".
	Buckets []store.Bucket
	// LeaseTTL is the election lease: how long a leader that stops renewing keeps its term.
	// Default 10s; etcd rounds it up to whole seconds.
	LeaseTTL time.Duration
	// Client, when set, is used instead of dialing Endpoints (and is not closed by Close).
	Client *clientv3.Client

	// MaxBatch is the most update functions per group commit; default 256.
	MaxBatch int
	// MaxTxnOps is the etcd cluster's --max-txn-ops: the most operations one etcd transaction
	// may hold. Default 128, etcd's own default. A group that would need more is split; when
	// etcd refuses a transaction as too large, the DB lowers its own limit.
	MaxTxnOps int
	// MaxTxnBytes bounds one etcd transaction's size; default 1 MiB, below etcd's default
	// --max-request-bytes of 1.5 MiB.
	MaxTxnBytes int
	// RequestTimeout bounds each request to etcd; default 5s.
	RequestTimeout time.Duration
	// HealthInterval is how often Err's health probe asks etcd; default 1s. HealthTimeout is
	// how long etcd may go unanswered before Err reports it; default 3s.
	HealthInterval, HealthTimeout time.Duration
	// NoPrefetch turns off the prefetch of a group's point reads: each function of a group
	// then reads what it needs from etcd one round trip after another, instead of all the
	// group's reads going in one request after a dry run of the functions (see prefetch).
	NoPrefetch bool
	// OnCommit, when set, is told how long each successful etcd commit took. It runs on the
	// committer, so it must be quick (a histogram's Observe).
	OnCommit func(time.Duration)

	RingSize    int // recent committed events kept in memory for watchers; default 8192
	WatchBuffer int // per-watcher push buffer (events); default 64
}

func (o Options) withDefaults() Options {
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 10 * time.Second
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.MaxTxnOps <= 0 {
		o.MaxTxnOps = 128
	}
	if o.MaxTxnBytes <= 0 {
		o.MaxTxnBytes = 1 << 20
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 5 * time.Second
	}
	if o.HealthInterval <= 0 {
		o.HealthInterval = time.Second
	}
	if o.HealthTimeout <= 0 {
		o.HealthTimeout = 3 * time.Second
	}
	if o.RingSize <= 0 {
		o.RingSize = 8192
	}
	if o.WatchBuffer <= 0 {
		o.WatchBuffer = 64
	}
	return o
}

// DB is an open store over etcd. It is safe for concurrent use.
type DB struct {
	opts    Options
	cli     *clientv3.Client
	ownCli  bool // dialed by Open: Close closes it
	lay     layout
	buckets map[string]store.Bucket

	// commitKey is this opener's own key (meta/commit/<id>): every write transaction of the DB
	// sets it to a new nonce, so that after a lost reply the DB can tell whether it committed.
	commitKey string

	ctx    context.Context // ended by Close, after the committer has drained
	cancel context.CancelFunc
	wg     sync.WaitGroup // the DB's goroutines but the committer

	mu      sync.Mutex // guards queue, closing
	wakeup  sync.Cond
	queue   []*call
	closing bool

	committerDone chan struct{}
	done          chan struct{} // closed when the DB is closed; wakes blocked watchers

	// Committer-owned state (see commit.go).
	base     base
	cache    readCache
	nonce    uint64
	maxOps   int
	maxBytes int

	// foreignSeq is the highest meta/seq the follower saw written: above the committer's base,
	// another process committed since, and the committer re-reads before its next group.
	foreignSeq atomic.Uint64

	hub   hub
	pubMu sync.Mutex // serializes deliveries to the hub from the committer and the follower

	lastOK atomic.Int64 // unix nanoseconds of etcd's last answer
	// unsettledSince is when the committer began settling a commit of unknown outcome (unix
	// nanoseconds; 0 when none): while it lasts, no update commits.
	unsettledSince atomic.Int64

	leadMu      sync.Mutex
	terms       map[*term]struct{} // terms held or being campaigned for
	termsClosed bool               // Close has ended the terms: no new one
	blindTerms  bool               // test hook: terms end only by Resign, Close or a failed compare

	closeOnce sync.Once
	closeErr  error

	commits       atomic.Uint64 // successful etcd commits, for tests
	fenceFailures atomic.Uint64 // transactions that failed on a fence compare, for tests
	readRequests  atomic.Uint64 // read requests of transactions, for tests
	// Test hooks: when loseReply returns true, a commit's reply is lost; the transaction is
	// sent first when loseSends is set, not at all otherwise.
	loseReply func() bool
	loseSends bool
	// failEventReads makes every read of events from etcd fail; gapTries, when set, is how many
	// times fillGap tries.
	failEventReads atomic.Bool
	gapTries       atomic.Int32
}

var (
	_ store.DB      = (*DB)(nil)
	_ store.Elector = (*DB)(nil)
)

// Open connects to etcd (or uses opts.Client) and opens the store under opts.Prefix, creating it
// when the prefix is empty. It fails when a bucket is invalid, when etcd does not answer, when
// the prefix was written in a newer format, or when it holds keys but no format (an unfinished
// Restore, or keys of another program).
func Open(ctx context.Context, opts Options) (*DB, error) {
	opts = opts.withDefaults()
	if err := checkPrefix(opts.Prefix); err != nil {
		return nil, err
	}
	buckets, err := declare(opts.Buckets)
	if err != nil {
		return nil, fmt.Errorf("store: open etcd prefix %q: %w", opts.Prefix, err)
	}
	cli, own, err := dial(opts)
	if err != nil {
		return nil, err
	}
	db := &DB{
		opts:          opts,
		cli:           cli,
		ownCli:        own,
		lay:           layout{prefix: opts.Prefix},
		buckets:       buckets,
		committerDone: make(chan struct{}),
		done:          make(chan struct{}),
		maxOps:        opts.MaxTxnOps,
		maxBytes:      opts.MaxTxnBytes,
		terms:         make(map[*term]struct{}),
	}
	db.wakeup.L = &db.mu
	fail := func(err error) (*DB, error) {
		if own {
			_ = cli.Close()
		}
		return nil, fmt.Errorf("store: open etcd prefix %q: %w", opts.Prefix, err)
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	db.commitKey = db.lay.key(metaCommits + hex.EncodeToString(id[:]))
	if err := db.initPrefix(ctx); err != nil {
		return fail(err)
	}
	b, err := db.readBase(ctx)
	if err != nil {
		return fail(err)
	}
	db.base = b
	db.cache.init()
	db.foreignSeq.Store(b.seq)
	db.lastOK.Store(time.Now().UnixNano())
	db.hub.init(b.rev, b.oldest, opts)
	db.ctx, db.cancel = context.WithCancel(context.Background())
	db.wg.Go(func() { db.follow(b.etcdRev + 1) })
	db.wg.Go(db.probeHealth)
	go db.commitLoop()
	return db, nil
}

func checkPrefix(p string) error {
	if p == "" || !strings.HasSuffix(p, "/") {
		return fmt.Errorf("store: etcd prefix %q must be set and end in \"/\"", p)
	}
	return nil
}

// dial returns opts.Client, or a new client of opts.Endpoints (own: the caller closes it).
func dial(opts Options) (cli *clientv3.Client, own bool, err error) {
	if opts.Client != nil {
		return opts.Client, false, nil
	}
	if len(opts.Endpoints) == 0 {
		return nil, false, errors.New("store: no etcd endpoints")
	}
	cli, err = clientv3.New(clientv3.Config{
		Endpoints:   opts.Endpoints,
		DialTimeout: opts.DialTimeout,
		TLS:         opts.TLS,
		Username:    opts.Username,
		Password:    opts.Password,
		Logger:      zap.NewNop(),
		// Keepalive pings find a dead member between requests, so that the balancer moves on.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		MaxCallSendMsgSize:   opts.MaxTxnBytes + 1<<20,
		// Reconnect to a member that came back within seconds, not grpc's default of up to two
		// minutes: a cluster has few members, and a store without them is down.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 2 * time.Second,
		})},
	})
	if err != nil {
		return nil, false, fmt.Errorf("store: dial etcd %v: %w", opts.Endpoints, err)
	}
	return cli, true, nil
}

// initPrefix checks the format key, and creates the store's keys in an empty prefix.
func (db *DB) initPrefix(ctx context.Context) error {
	for {
		rctx, cancel := context.WithTimeout(ctx, db.opts.RequestTimeout)
		resp, err := db.cli.Get(rctx, db.lay.key(metaFormat))
		cancel()
		if err != nil {
			return fmt.Errorf("read format: %w", err)
		}
		if len(resp.Kvs) == 1 {
			got, err := u64(metaFormat, resp.Kvs[0].Value)
			if err != nil {
				return err
			}
			if got > keyFormat {
				return fmt.Errorf("%w: the prefix has format %d, this binary understands up to %d; run a newer erasured",
					errFormatTooNew, got, keyFormat)
			}
			return nil
		}
		// No format: the prefix must be empty (not even a restore's keys without its last one).
		rctx, cancel = context.WithTimeout(ctx, db.opts.RequestTimeout)
		tresp, err := db.cli.Txn(rctx).If(
			clientv3.Compare(clientv3.CreateRevision(db.opts.Prefix), "=", 0).WithPrefix(),
		).Then(
			clientv3.OpPut(db.lay.key(metaFormat), string(store.U64(keyFormat))),
			clientv3.OpPut(db.lay.key(metaSeq), string(store.U64(0))),
			clientv3.OpPut(db.lay.key(metaRev), string(store.U64(0))),
			clientv3.OpPut(db.lay.key(metaOldest), string(store.U64(1))),
		).Else(
			clientv3.OpGet(db.lay.key(metaFormat)),
		).Commit()
		cancel()
		if err != nil {
			return fmt.Errorf("create store: %w", err)
		}
		if tresp.Succeeded {
			return nil
		}
		if len(tresp.Responses[0].GetResponseRange().Kvs) == 0 {
			return errors.New("the prefix holds keys but no store format: an unfinished restore, or another program's keys")
		}
		// Another opener created it meanwhile: check its format.
	}
}

// Client is the etcd client the DB uses.
func (db *DB) Client() *clientv3.Client { return db.cli }

// Prefix is the etcd key prefix of the store.
func (db *DB) Prefix() string { return db.opts.Prefix }

// Err is nil while etcd answers. It returns an error when etcd has not answered for longer than
// HealthTimeout, or when the outcome of a commit has stayed unknown for as long (it clears once
// etcd answers, or the outcome is known), and store.ErrClosed after Close.
func (db *DB) Err() error {
	if db.isClosing() {
		return store.ErrClosed
	}
	last := time.Unix(0, db.lastOK.Load())
	if since := time.Since(last); since > db.opts.HealthTimeout {
		return fmt.Errorf("store: etcd has not answered for %s", since.Round(time.Millisecond))
	}
	if u := db.unsettledSince.Load(); u != 0 {
		if since := time.Since(time.Unix(0, u)); since > db.opts.HealthTimeout {
			// etcd answers (a full database, say) but not whether a commit applied.
			return fmt.Errorf("store: the outcome of a commit has been unknown for %s; no update commits meanwhile", since.Round(time.Millisecond))
		}
	}
	return nil
}

// probeHealth asks etcd for a key every HealthInterval with a linearizable read, which needs a
// quorum, and records when it last answered.
func (db *DB) probeHealth() {
	t := time.NewTicker(db.opts.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-db.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(db.ctx, db.opts.HealthTimeout)
		_, err := db.cli.Get(ctx, db.lay.key(metaFormat))
		cancel()
		if err == nil {
			db.answered()
		}
	}
}

// answered records that etcd just answered.
func (db *DB) answered() { db.lastOK.Store(time.Now().UnixNano()) }

func (db *DB) isClosing() bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.closing
}

// Close stops accepting updates (they return store.ErrClosed), lets every queued update commit,
// ends every term of leadership (resigning it in etcd), ends all watchers (their Next returns
// store.ErrClosed), and closes the etcd client if Open dialed it. It is idempotent; concurrent
// callers all wait for the first to finish.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.mu.Lock()
		db.closing = true
		db.wakeup.Broadcast()
		db.mu.Unlock()
		<-db.committerDone

		db.endTerms()
		ctx, cancel := context.WithTimeout(context.Background(), db.opts.RequestTimeout)
		_, _ = db.cli.Delete(ctx, db.commitKey)
		cancel()
		db.cancel()
		db.wg.Wait()
		db.hub.close()
		close(db.done)
		if db.ownCli {
			if err := db.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
				db.closeErr = fmt.Errorf("store: close etcd client: %w", err)
			}
		}
	})
	return db.closeErr
}
