package etcdstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/storetest"
)

// TestReadErrorWins: when a read fails (etcd out of reach) and the function then returns an
// error of its own, drawn from the empty answer it got, View and Update return the read's
// error, naming the store's prefix, and not the function's. The second Update meets the failure
// earlier, reading the store's counters before its function runs: that error names the prefix too.
func TestReadErrorWins(t *testing.T) {
	cli, err := cluster.Client()
	if err != nil {
		t.Fatal(err)
	}
	opts := testOptions(newPrefix(t), testBuckets)
	opts.Client = cli
	opts.RequestTimeout = 500 * time.Millisecond // each failed read takes this long
	db := openTest(t, opts)
	if err := db.Update(storetest.Context(t), put("k")); err != nil {
		t.Fatal(err)
	}
	_ = cli.Close() // every read from now on fails

	errNothing := errors.New("the store holds nothing")
	count := func(tx store.Tx) error {
		if tx.Count(bucketA) == 0 {
			return errNothing
		}
		return nil
	}
	get := func(tx store.Tx) error {
		if tx.Get(bucketA, []byte("missing")) == nil {
			return errNothing
		}
		return nil
	}
	update := func(fn func(store.Tx) error) error { return db.Update(context.Background(), fn) }
	for _, tc := range []struct {
		name string
		run  func(func(store.Tx) error) error
		fn   func(store.Tx) error
	}{
		{"View, Count", db.View, count},
		{"View, Get", db.View, get},
		{"Update, Count", update, count},
		{"Update, Get", update, get},
	} {
		err := tc.run(tc.fn)
		if err == nil || errors.Is(err, errNothing) {
			t.Errorf("%s with etcd out of reach = %v, want the read's error", tc.name, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "read from etcd") || !strings.Contains(msg, opts.Prefix) {
			t.Errorf("%s with etcd out of reach = %q, want it to say the etcd read of prefix %q failed", tc.name, msg, opts.Prefix)
		}
	}
}
