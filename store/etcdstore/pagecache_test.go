package etcdstore

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/erasured/erasured/store"
)

// scanAll is every key of bucketA in tx, in scan order, from start (nil: the bucket's end).
func scanAll(tx store.Tx, start []byte, reverse bool) ([]string, error) {
	var keys []string
	scan := tx.Scan
	if reverse {
		scan = tx.ScanReverse
	}
	err := scan(bucketA, start, func(k, _ []byte) (bool, error) {
		keys = append(keys, string(k))
		return true, nil
	})
	return keys, err
}

// TestScanPagesFollowCommits: the committer keeps its scans' pages across its own commits, merging
// what each commit writes. Updates that scan the bucket in both directions, from its ends and
// from a key, while other Updates add and delete keys (more than two pages of them, so that the
// kept page is cut), see what a View sees.
func TestScanPagesFollowCommits(t *testing.T) {
	db := openTest(t, testOptions(prefixOf(t.TempDir()), testBuckets))
	ctx := context.Background()
	from := []byte("k0300")
	for i := range 3*scanPage + 40 {
		err := db.Update(ctx, func(tx store.Tx) error {
			if err := tx.Put(bucketA, fmt.Appendf(nil, "k%04d", i), []byte("v")); err != nil {
				return err
			}
			if i%7 == 3 { // a deletion behind the newest key, and one in the middle
				if err := tx.Delete(bucketA, fmt.Appendf(nil, "k%04d", i-2)); err != nil {
					return err
				}
				return tx.Delete(bucketA, fmt.Appendf(nil, "k%04d", i/2))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if i%5 != 0 && i < 3*scanPage {
			continue
		}
		for _, c := range []struct {
			start   []byte
			reverse bool
		}{{nil, false}, {nil, true}, {from, false}, {from, true}} {
			var want, got []string
			if err := db.View(func(tx store.Tx) (err error) { want, err = scanAll(tx, c.start, c.reverse); return err }); err != nil {
				t.Fatal(err)
			}
			if err := db.Update(ctx, func(tx store.Tx) (err error) { got, err = scanAll(tx, c.start, c.reverse); return err }); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("after %d commits, scan from %q (reverse %v) in an Update = %d keys, a View %d; first difference at %d",
					i+1, c.start, c.reverse, len(got), len(want), firstDiff(got, want))
			}
		}
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestScanPageServedFromCache: Updates that each read the bucket's last key and append after it
// (as every Submit reads the audit trail's last entry) send etcd one range read, not one each.
func TestScanPageServedFromCache(t *testing.T) {
	db := openTest(t, testOptions(prefixOf(t.TempDir()), testBuckets))
	ctx := context.Background()
	before := db.readRequests.Load()
	const updates = 50
	for i := range updates {
		err := db.Update(ctx, func(tx store.Tx) error {
			var last string
			err := tx.ScanReverse(bucketA, nil, func(k, _ []byte) (bool, error) { last = string(k); return false, nil })
			if err != nil {
				return err
			}
			if want := fmt.Sprintf("k%04d", i-1); i > 0 && last != want {
				return fmt.Errorf("last key %q, want %q", last, want)
			}
			return tx.Put(bucketA, fmt.Appendf(nil, "k%04d", i), []byte("v"))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if reads := db.readRequests.Load() - before; reads > 2 {
		t.Errorf("%d Updates that scan the same range sent %d read requests, want at most 2", updates, reads)
	}
}
