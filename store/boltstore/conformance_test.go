package boltstore

import (
	"path/filepath"
	"testing"

	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/storetest"
)

// TestConformance runs the store contract's suite with the default tuning, and with a ring and push
// buffers of one event, so that watchers replay from the file and drop out of the hub at almost
// every commit.
func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"default", Options{}},
		{"tiny ring and buffers", Options{RingSize: 1, WatchBuffer: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T, dir string, buckets []store.Bucket) store.DB {
				opts := tc.opts
				opts.Buckets = buckets
				db, err := Open(filepath.Join(dir, "erasured.db"), opts)
				if err != nil {
					t.Fatal(err)
				}
				return db
			})
		})
	}
}
