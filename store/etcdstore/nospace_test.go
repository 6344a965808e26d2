package etcdstore

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/etcdstore/etcdtest"
)

// TestNoSpace: etcd whose database fills up answers ErrNoSpace, to some transactions after it
// applied them. Updates of several stores at once (so that etcd has several transactions in
// flight), each writing a unique key until etcd is full: each returned nil exactly when its key
// is in the store.
func TestNoSpace(t *testing.T) {
	if testing.Short() {
		t.Skip("fills an etcd database")
	}
	c, err := etcdtest.New(etcdtest.Config{Dir: t.TempDir(), NoFsync: true, QuotaBackendBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close) // after the stores close
	value := []byte(strings.Repeat("x", 100<<10))
	type result struct {
		db  *DB
		key string
		err error
	}
	var mu sync.Mutex
	var results []result
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var once sync.Once
	refused := 0
	for s := range 4 {
		opts := testOptions(fmt.Sprintf("nospace/%d/", s), testBuckets)
		opts.Endpoints = c.Endpoints()
		opts.MaxTxnOps = etcdtest.MaxTxnOps
		db := openTest(t, opts)
		for w := range 4 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					key := fmt.Sprintf("k-%d-%d", w, i)
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					err := db.Update(ctx, func(tx store.Tx) error { return tx.Put(bucketA, []byte(key), value) })
					cancel()
					mu.Lock()
					results = append(results, result{db, key, err})
					if err != nil {
						if refused++; refused >= 40 {
							once.Do(func() { close(stop) })
						}
					}
					mu.Unlock()
				}
			})
		}
	}
	select {
	case <-stop:
	case <-time.After(30 * time.Second):
		once.Do(func() { close(stop) })
		t.Error("etcd did not fill up in 30s")
	}
	wg.Wait()
	var committed, failed int
	for _, r := range results {
		var v []byte
		if err := r.db.View(func(tx store.Tx) error { v = tx.Get(bucketA, []byte(r.key)); return nil }); err != nil {
			t.Fatal(err)
		}
		switch {
		case r.err == nil && v == nil:
			t.Errorf("Update of %s returned nil; the key is absent", r.key)
		case r.err != nil && v != nil:
			t.Errorf("Update of %s returned %v; the key is present", r.key, r.err)
		case r.err == nil:
			committed++
		default:
			failed++
			if failed == 1 {
				t.Logf("a refused Update: %v", r.err)
			}
		}
	}
	t.Logf("%d Updates committed, %d refused", committed, failed)
}

// TestErrWhileUnsettled: a commit whose outcome has stayed unknown past HealthTimeout (etcd
// answering, but not whether it applied) makes Err report it, and Err clears once it is settled.
func TestErrWhileUnsettled(t *testing.T) {
	db := openTest(t, testOptions(newPrefix(t), testBuckets))
	db.unsettledSince.Store(time.Now().Add(-2 * db.opts.HealthTimeout).UnixNano())
	if err := db.Err(); err == nil {
		t.Error("Err() = nil while a commit's outcome has been unknown past HealthTimeout")
	}
	db.unsettledSince.Store(0)
	if err := db.Err(); err != nil {
		t.Errorf("Err() = %v once settled", err)
	}
}
