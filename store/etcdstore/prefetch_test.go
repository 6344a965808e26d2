package etcdstore

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/storetest"
)

// TestPrefetchStopsAtOneTransaction: when more updates are queued than one transaction holds,
// the prefetch dry-runs only about what the next transaction takes, not the whole queue again
// before each of its transactions; every update still commits once, with its reads prefetched.
func TestPrefetchStopsAtOneTransaction(t *testing.T) {
	ctx := storetest.Context(t)
	opts := testOptions(newPrefix(t), testBuckets)
	opts.MaxTxnOps = 32 // 2 keys per update: about 14 updates per transaction
	db := openTest(t, opts)
	release := blockCommitter(t, db)
	const n = 100
	var runs atomic.Int64
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = db.Update(ctx, func(tx store.Tx) error {
				runs.Add(1)
				if tx.Get(bucketA, fmt.Appendf(nil, "absent-%d", i)) != nil {
					return fmt.Errorf("found absent-%d", i)
				}
				if err := tx.Put(bucketA, fmt.Appendf(nil, "a-%d", i), []byte("v")); err != nil {
					return err
				}
				return tx.Put(bucketB, fmt.Appendf(nil, "b-%d", i), []byte("v"))
			})
		})
	}
	waitQueued(t, db, n)
	reads0 := db.readRequests.Load()
	runs0 := runs.Load()
	release()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Update %d = %v", i, err)
		}
	}
	// Each update runs once for real and about once dry; the crossing one of each transaction
	// twice. Dry-running the whole rest of the queue before every transaction takes ~4.5 n.
	if got := runs.Load() - runs0; got > 2*n+n/4 {
		t.Errorf("%d runs of %d update functions, want at most %d", got, n, 2*n+n/4)
	}
	// One read request per transaction at most: the updates' reads were all prefetched.
	if reads := db.readRequests.Load() - reads0; reads > n/10 {
		t.Errorf("%d read requests for %d updates, want at most %d (one per transaction)", reads, n, n/10)
	}
	for i := range n {
		if v := getKey2(t, db, bucketB, fmt.Sprintf("b-%d", i)); string(v) != "v" {
			t.Fatalf("b-%d = %q, want v", i, v)
		}
	}
}
