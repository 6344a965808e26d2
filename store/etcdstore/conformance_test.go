package etcdstore

import (
	"context"
	"testing"

	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/storetest"
)

// TestConformance runs the store contract's suite with group commit, with one function per
// transaction, and with a ring and push buffers of one event (watchers then replay from etcd and
// drop out of the hub at almost every commit).
func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		tune func(*Options)
	}{
		{"group commit", func(*Options) {}},
		{"MaxBatch 1", func(o *Options) { o.MaxBatch = 1 }},
		{"tiny ring and buffers", func(o *Options) { o.RingSize, o.WatchBuffer = 1, 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T, dir string, buckets []store.Bucket) store.DB {
				opts := testOptions(prefixOf(dir), buckets)
				tc.tune(&opts)
				db, err := Open(context.Background(), opts)
				if err != nil {
					t.Fatal(err)
				}
				return db
			})
		})
	}
}
