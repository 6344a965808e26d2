package etcdstore

import (
	"context"
	"errors"
	"fmt"
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

// TestGapUnreadable: when the events another process committed cannot be read from etcd, this
// process says so instead of hiding it: delivering its own later events fails and publishes
// nothing (so an Update that made them cannot return nil with Rev behind them), and a Watch from
// a revision the other has shown fails as unavailable, not as a future revision.
func TestGapUnreadable(t *testing.T) {
	p := openPair(t, testBuckets)
	defer p.A.Close()
	defer p.B.Close()
	a, b := p.A.(*DB), p.B.(*DB)
	b.failEventReads.Store(true)
	b.gapTries.Store(1)

	rev := b.Rev()
	err := b.deliver([]store.Event{{Rev: rev + 2, Key: "later"}}, 0)
	if !errors.Is(err, errUnavailable) {
		t.Errorf("deliver past an unreadable gap = %v, want %v", err, errUnavailable)
	}
	if got := b.Rev(); got != rev {
		t.Errorf("Rev() = %d after the failed delivery, want %d", got, rev)
	}

	for round := range 20 {
		storetest.AppendEvents(t, a, fmt.Sprint("e", round))
		w, err := b.Watch(a.Rev()+1, "")
		if errors.Is(err, store.ErrFutureRevision) {
			t.Fatalf("round %d: B.Watch(%d) after A showed %d = %v", round, a.Rev()+1, a.Rev(), err)
		}
		if err == nil {
			w.Close()
		} else if !errors.Is(err, errUnavailable) {
			t.Errorf("round %d: B.Watch = %v, want nil or %v", round, err, errUnavailable)
		}
	}
}
