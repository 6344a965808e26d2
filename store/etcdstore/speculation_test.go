package etcdstore

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/storetest"
)

// TestSpeculativeReadWrongGuess: a read that the committer's cache cannot answer is assumed
// absent and compared in the commit; when the key exists (another process wrote it), the
// transaction writes nothing, and the function runs again on the key's value. A function whose
// outcome rests on the wrong guess (an error for a missing key) never returns that outcome.
func TestSpeculativeReadWrongGuess(t *testing.T) {
	errMissing := errors.New("missing")
	for _, tc := range []struct {
		name string
		fn   func(tx store.Tx) error
	}{
		{"writes from what it read", func(tx store.Tx) error {
			v := tx.Get(bucketA, []byte("k"))
			if v == nil {
				v = []byte("none")
			}
			return tx.Put(bucketA, []byte("copy"), v)
		}},
		{"fails on a missing key", func(tx store.Tx) error {
			v := tx.Get(bucketA, []byte("k"))
			if v == nil {
				return errMissing
			}
			return tx.Put(bucketA, []byte("copy"), v)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := storetest.Context(t)
			prefix := newPrefix(t)
			db := openTest(t, testOptions(prefix, testBuckets))
			other := openTest(t, testOptions(prefix, testBuckets))
			if err := other.Update(ctx, func(tx store.Tx) error { return tx.Put(bucketA, []byte("k"), []byte("v1")) }); err != nil {
				t.Fatal(err)
			}
			seen(t, db)
			var runs atomic.Int32
			if err := db.Update(ctx, func(tx store.Tx) error {
				runs.Add(1)
				return tc.fn(tx)
			}); err != nil {
				t.Fatalf("Update = %v", err)
			}
			if v := getKey2(t, db, bucketA, "copy"); string(v) != "v1" {
				t.Errorf("copy = %q, want v1", v)
			}
			if n := db.misguesses.Load(); n != 1 {
				t.Errorf("%d wrong guesses, want 1", n)
			}
			if n := runs.Load(); n != 2 {
				t.Errorf("the function ran %d times, want 2", n)
			}
			// The group's run again after the wrong guess read before it ran (a backoff of
			// one group); the next group guesses again, wrongly, and doubles the backoff.
			if err := other.Update(ctx, func(tx store.Tx) error { return tx.Put(bucketA, []byte("k"), []byte("v2")) }); err != nil {
				t.Fatal(err)
			}
			seen(t, db)
			if err := db.Update(ctx, tc.fn); err != nil {
				t.Fatalf("second Update = %v", err)
			}
			if v := getKey2(t, db, bucketA, "copy"); string(v) != "v2" {
				t.Errorf("copy = %q, want v2", v)
			}
			if n := db.misguesses.Load(); n != 2 {
				t.Errorf("%d wrong guesses in all, want 2", n)
			}
			if db.specBackoff != 2 {
				t.Errorf("backoff %d groups after two wrong guesses in a row, want 2", db.specBackoff)
			}
		})
	}
}

// TestSpeculativeInsertAcrossProcesses: two processes insert the same new key at once, each
// after reading it absent without asking etcd; the compare of the assumed key lets one insert
// it, and the other sees it when it runs again.
func TestSpeculativeInsertAcrossProcesses(t *testing.T) {
	ctx := storetest.Context(t)
	prefix := newPrefix(t)
	dbs := []*DB{openTest(t, testOptions(prefix, testBuckets)), openTest(t, testOptions(prefix, testBuckets))}
	var inserted atomic.Int32
	errs := make(chan error, 2*50)
	for round := range 50 {
		key := []byte{'r', byte(round)}
		done := make(chan struct{})
		for _, db := range dbs {
			go func() {
				<-done
				errs <- db.Update(ctx, func(tx store.Tx) error {
					if tx.Get(bucketA, key) != nil {
						return nil
					}
					if err := tx.OnCommit(func() { inserted.Add(1) }); err != nil {
						return err
					}
					return tx.Put(bucketA, key, []byte("taken"))
				})
			}()
		}
		close(done)
	}
	for range 2 * 50 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	if err := dbs[0].View(func(tx store.Tx) error {
		return tx.Scan(bucketA, nil, func(k, v []byte) (bool, error) { n++; return true, nil })
	}); err != nil {
		t.Fatal(err)
	}
	if n != 50 {
		t.Errorf("%d keys, want 50", n)
	}
	if got := inserted.Load(); got != 50 {
		t.Errorf("%d inserts committed for 50 keys, want 50", got)
	}
}

// seen waits until db has heard of every commit in the store, so that its next group starts
// on the store's state rather than conflicting first.
func seen(t *testing.T, db *DB) {
	t.Helper()
	b, err := db.readBase(storetest.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	for db.foreignSeq.Load() < b.seq {
		time.Sleep(time.Millisecond)
	}
}
