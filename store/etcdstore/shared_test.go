package etcdstore

import (
	"context"
	"testing"

	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/storetest"
)

// openPair opens two DBs on one new prefix, each with its own etcd client, as two replicas in
// two processes would. CutA closes A's client under it.
func openPair(t *testing.T, buckets []store.Bucket) storetest.Pair {
	prefix := newPrefix(t)
	open := func() *DB {
		cli, err := cluster.Client()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cli.Close() })
		opts := testOptions(prefix, buckets)
		opts.Client = cli
		db, err := Open(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	a, b := open(), open()
	return storetest.Pair{A: a, B: b, CutA: func() { _ = a.cli.Close() }}
}

// TestShared runs the suite of a store shared by processes on two DBs of one prefix.
func TestShared(t *testing.T) {
	storetest.RunShared(t, openPair)
}

// TestElector runs the suite of leader election on two DBs of one prefix (2s leases).
func TestElector(t *testing.T) {
	storetest.RunElector(t, openPair)
}
