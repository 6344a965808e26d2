// Package etcdstore is the store backend over etcd (work in progress: see the package comment
// once complete).
package etcdstore

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/erasured/erasured/store"
)

var errTODO = errors.New("etcdstore: not implemented yet")

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
	// Buckets are the buckets the user of the store needs.
	Buckets []store.Bucket
	// LeaseTTL is the election lease: how long a leader that stops renewing keeps its term.
	// Default 10s.
	LeaseTTL time.Duration
	// Client, when set, is used instead of dialing Endpoints (and is not closed by Close).
	Client *clientv3.Client

	// MaxBatch is the most update functions per group commit; default 256.
	MaxBatch int
	// MaxTxnOps is the etcd cluster's --max-txn-ops: the most operations one etcd transaction
	// may hold. Default 128, etcd's own default.
	MaxTxnOps int
	// MaxTxnBytes bounds one etcd transaction's size; default 1 MiB, below etcd's default
	// --max-request-bytes of 1.5 MiB.
	MaxTxnBytes int
	// HealthInterval is how often Err's health probe asks etcd; default 1s. HealthTimeout is
	// how long etcd may go unanswered before Err reports it; default 3s.
	HealthInterval, HealthTimeout time.Duration
	// OnCommit, when set, is told how long each successful etcd commit took.
	OnCommit func(time.Duration)
}

// DB is an open store over etcd. It is safe for concurrent use.
type DB struct {
	opts Options
}

var (
	_ store.DB      = (*DB)(nil)
	_ store.Elector = (*DB)(nil)
)

// Open connects to etcd and opens the store under opts.Prefix.
func Open(ctx context.Context, opts Options) (*DB, error) { return nil, errTODO }

// Restore loads a dump written by Backup into opts.Prefix, which must be empty.
func Restore(ctx context.Context, opts Options, r io.Reader) error { return errTODO }

// Update implements store.DB.
func (db *DB) Update(ctx context.Context, fn func(tx store.Tx) error) error { return errTODO }

// View implements store.DB.
func (db *DB) View(fn func(tx store.Tx) error) error { return errTODO }

// Watch implements store.DB.
func (db *DB) Watch(from uint64, key string) (store.Watcher, error) { return nil, errTODO }

// Events implements store.DB.
func (db *DB) Events(from uint64, limit int) ([]store.Event, error) { return nil, errTODO }

// Rev implements store.DB.
func (db *DB) Rev() uint64 { return 0 }

// Oldest implements store.DB.
func (db *DB) Oldest() uint64 { return 1 }

// Compact implements store.DB.
func (db *DB) Compact(ctx context.Context, rev uint64) error { return errTODO }

// Err implements store.DB.
func (db *DB) Err() error { return errTODO }

// Backup implements store.DB.
func (db *DB) Backup(fn func(s store.Snapshot) error) error { return errTODO }

// Close implements store.DB.
func (db *DB) Close() error { return nil }

// Campaign implements store.Elector.
func (db *DB) Campaign(ctx context.Context, id string) (store.Leadership, error) { return nil, errTODO }

// Leader implements store.Elector.
func (db *DB) Leader(ctx context.Context) (string, error) { return "", errTODO }

// Client is the etcd client the DB uses.
func (db *DB) Client() *clientv3.Client { return db.opts.Client }
