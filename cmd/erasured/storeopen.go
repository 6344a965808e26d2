package main

import (
	"context"
	"fmt"
	"time"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/boltstore"
	"github.com/erasured/erasured/store/etcdstore"
)

// storeBackend is an open store and the election of the one process (among those sharing it)
// that runs the pipeline. bbolt elects its only user at once; etcd elects one replica at a time.
type storeBackend interface {
	store.DB
	store.Elector
}

// openedStore is the backend opened, and what erasured reports of it.
type openedStore struct {
	storeBackend
	// path is the bbolt file, whose size the metrics report; "" for etcd.
	path string
	// where names the store for the start's log line: the file, or the etcd prefix.
	where string
}

// openStore opens the configured backend: the bbolt file at db, or the etcd cluster under
// store.etcd.prefix. onCommit receives each commit's duration (for the metrics).
func openStore(ctx context.Context, cfg *Config, onCommit func(time.Duration)) (*openedStore, error) {
	if cfg.Store.Backend != backendEtcd {
		db, err := boltstore.Open(cfg.DB, boltstore.Options{Buckets: schema.Buckets, OnCommit: onCommit})
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		return &openedStore{storeBackend: db, path: db.Path(), where: db.Path()}, nil
	}
	e := cfg.Store.Etcd
	opts, err := etcdOptions(cfg)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	opts.OnCommit = onCommit
	db, err := etcdstore.Open(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("open store: etcd %v under %s: %w", []string(e.Endpoints), e.Prefix, err)
	}
	return &openedStore{storeBackend: db, where: "etcd " + e.Prefix}, nil
}

// etcdOptions are the etcd store's options of the configuration: how to reach the cluster
// (its TLS files read), the prefix, the lease and the transaction limit.
func etcdOptions(cfg *Config) (etcdstore.Options, error) {
	e := cfg.Store.Etcd
	tlsCfg, err := cfg.etcdTLS()
	if err != nil {
		return etcdstore.Options{}, err
	}
	return etcdstore.Options{
		Endpoints:   e.Endpoints,
		Prefix:      e.Prefix,
		DialTimeout: e.DialTimeout.Duration,
		TLS:         tlsCfg,
		Buckets:     schema.Buckets,
		LeaseTTL:    e.LeaseTTL.Duration,
		MaxTxnOps:   e.MaxTxnOps,
	}, nil
}
