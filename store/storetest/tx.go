package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/erasured/erasured/store"
)

func testReadsAndWrites(t *testing.T, open Open) {
	ctx := context.Background()
	db := openFresh(t, open)
	var inTx []byte
	var countInTx int
	var leaked store.Tx
	err := db.Update(ctx, func(tx store.Tx) error {
		leaked = tx
		if err := tx.Put(bucketB, []byte("s1"), []byte("one")); err != nil {
			return err
		}
		if err := tx.Put(bucketB, []byte("s2"), []byte{}); err != nil {
			return err
		}
		if err := tx.Put(bucketB, []byte("s3"), []byte("three")); err != nil {
			return err
		}
		if err := tx.Delete(bucketB, []byte("s3")); err != nil {
			return err
		}
		if err := tx.Delete(bucketB, []byte("absent")); err != nil {
			return err
		}
		inTx = tx.Get(bucketB, []byte("s1"))
		countInTx = tx.Count(bucketB) // sees this transaction's own writes
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if string(inTx) != "one" {
		t.Errorf("Get(s1) inside Update = %q, want %q", inTx, "one")
	}
	if countInTx != 2 {
		t.Errorf("Count inside Update = %d, want 2", countInTx)
	}
	if err := leaked.Put(bucketB, []byte("late"), nil); err == nil {
		t.Errorf("Put after Update returned = nil, want an error")
	}

	var s1, s2, s3 []byte
	var count int
	err = db.View(func(tx store.Tx) error {
		s1, s2, s3 = tx.Get(bucketB, []byte("s1")), tx.Get(bucketB, []byte("s2")), tx.Get(bucketB, []byte("s3"))
		count = tx.Count(bucketB)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if string(s1) != "one" || s2 == nil || len(s2) != 0 || s3 != nil {
		t.Errorf("Get(s1, s2, s3) = %q, %q (nil %t), %q; want \"one\", empty non-nil, nil", s1, s2, s2 == nil, s3)
	}
	if count != 2 {
		t.Errorf("Count = %d, want 2", count)
	}
	s1[0] = 'X' // a copy: the stored value must not change
	db.View(func(tx store.Tx) error { s1 = tx.Get(bucketB, []byte("s1")); return nil })
	if string(s1) != "one" {
		t.Errorf("Get(s1) after modifying an earlier result = %q, want %q", s1, "one")
	}
}

// testScanOrder: keys sort bytewise, so U64 keys scan in numeric order whatever the insertion
// order.
func testScanOrder(t *testing.T, open Open) {
	nums := []uint64{0, 1, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, math.MaxUint64}
	db := openFresh(t, open)
	err := db.Update(context.Background(), func(tx store.Tx) error {
		for _, n := range slices.Backward(nums) { // insertion order must not matter
			if err := tx.Put(ascending, store.U64(n), []byte(strconv.FormatUint(n, 10))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	scan := func(reverse bool) []uint64 {
		var got []uint64
		err := db.View(func(tx store.Tx) error {
			visit := func(k, v []byte) (bool, error) {
				n, err := store.ParseU64(k)
				if err != nil {
					return false, err
				}
				if string(v) != strconv.FormatUint(n, 10) {
					return false, fmt.Errorf("value of %d = %q", n, v)
				}
				got = append(got, n)
				return true, nil
			}
			if reverse {
				return tx.ScanReverse(ascending, nil, visit)
			}
			return tx.Scan(ascending, nil, visit)
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if diff := cmp.Diff(nums, scan(false)); diff != "" {
		t.Errorf("Scan order mismatch (-want +got):\n%s", diff)
	}
	rev := slices.Clone(nums)
	slices.Reverse(rev)
	if diff := cmp.Diff(rev, scan(true)); diff != "" {
		t.Errorf("ScanReverse order mismatch (-want +got):\n%s", diff)
	}
}

func testScanStarts(t *testing.T, open Open) {
	db := openFresh(t, open)
	err := db.Update(context.Background(), func(tx store.Tx) error {
		for _, n := range []uint64{10, 20, 30} {
			if err := tx.Put(bucketA, store.U64(n), nil); err != nil {
				return err
			}
		}
		// Another bucket's keys are not seen.
		return tx.Put(bucketB, store.U64(15), nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		reverse bool
		start   []byte
		limit   int // stop after this many (0: all)
		want    []uint64
	}{
		{false, nil, 0, []uint64{10, 20, 30}},
		{false, store.U64(15), 0, []uint64{20, 30}},
		{false, store.U64(20), 0, []uint64{20, 30}},
		{false, store.U64(31), 0, nil},
		{false, nil, 2, []uint64{10, 20}},
		{true, nil, 0, []uint64{30, 20, 10}},
		{true, store.U64(25), 0, []uint64{20, 10}},
		{true, store.U64(20), 0, []uint64{20, 10}},
		{true, store.U64(5), 0, nil},
		{true, store.U64(100), 0, []uint64{30, 20, 10}},
		{true, nil, 1, []uint64{30}},
	} {
		var got []uint64
		err := db.View(func(tx store.Tx) error {
			fn := func(k, _ []byte) (bool, error) {
				n, err := store.ParseU64(k)
				got = append(got, n)
				return tc.limit == 0 || len(got) < tc.limit, err
			}
			if tc.reverse {
				return tx.ScanReverse(bucketA, tc.start, fn)
			}
			return tx.Scan(bucketA, tc.start, fn)
		})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Scan(reverse=%t, start=%x, limit=%d) mismatch (-want +got):\n%s", tc.reverse, tc.start, tc.limit, diff)
		}
	}

	errStop := errors.New("stop")
	err = db.View(func(tx store.Tx) error {
		return tx.Scan(bucketA, nil, func(k, v []byte) (bool, error) { return true, errStop })
	})
	if !errors.Is(err, errStop) {
		t.Errorf("Scan(fn fails) = %v, want %v", err, errStop)
	}
}

func testViewIsReadOnly(t *testing.T, open Open) {
	db := openFresh(t, open)
	var putErr, delErr, appendErr, hookErr error
	err := db.View(func(tx store.Tx) error {
		putErr = tx.Put(bucketA, []byte("k"), []byte("v"))
		delErr = tx.Delete(bucketA, []byte("k"))
		_, appendErr = tx.Append("k", nil)
		hookErr = tx.OnCommit(func() {})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{"Put": putErr, "Delete": delErr, "Append": appendErr, "OnCommit": hookErr} {
		if !errors.Is(err, store.ErrReadOnly) {
			t.Errorf("%s in View = %v, want %v", name, err, store.ErrReadOnly)
		}
	}
	if got := db.Rev(); got != 0 {
		t.Errorf("Rev() after a View that tried to append = %d, want 0", got)
	}
}

// testUndeclaredBucket: a bucket that was not declared does not exist, so that a typo cannot
// create one.
func testUndeclaredBucket(t *testing.T, open Open) {
	db := openFresh(t, open)
	for _, b := range []store.Bucket{{}, {Name: "typo"}, {Name: bucketA.Name + "s"}} {
		err := db.Update(context.Background(), func(tx store.Tx) error { return tx.Put(b, []byte("k"), []byte("v")) })
		if !errors.Is(err, store.ErrNoBucket) {
			t.Errorf("Put(%q) = %v, want %v", b.Name, err, store.ErrNoBucket)
		}
		err = db.Update(context.Background(), func(tx store.Tx) error { return tx.Delete(b, []byte("k")) })
		if !errors.Is(err, store.ErrNoBucket) {
			t.Errorf("Delete(%q) = %v, want %v", b.Name, err, store.ErrNoBucket)
		}
		err = db.View(func(tx store.Tx) error {
			if v := tx.Get(b, []byte("k")); v != nil {
				t.Errorf("Get(%q) = %q, want nil", b.Name, v)
			}
			return tx.Scan(b, nil, func(k, v []byte) (bool, error) { return true, nil })
		})
		if !errors.Is(err, store.ErrNoBucket) {
			t.Errorf("Scan(%q) = %v, want %v", b.Name, err, store.ErrNoBucket)
		}
	}
}

func testClose(t *testing.T, open Open) {
	ctx := context.Background()
	db := openFresh(t, open)
	AppendEvents(t, db, "a")
	if err := db.Err(); err != nil {
		t.Errorf("Err() of an open DB = %v, want nil", err)
	}
	w, err := db.Watch(0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := range 2 { // idempotent
		if err := db.Close(); err != nil {
			t.Fatalf("Close() #%d = %v", i+1, err)
		}
	}
	if err := db.Update(ctx, func(store.Tx) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Update after Close = %v, want %v", err, store.ErrClosed)
	}
	if err := db.View(func(store.Tx) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Errorf("View after Close = %v, want %v", err, store.ErrClosed)
	}
	if err := db.Err(); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Err after Close = %v, want %v", err, store.ErrClosed)
	}
	if _, err := db.Watch(0, ""); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Watch after Close = %v, want %v", err, store.ErrClosed)
	}
	if _, err := db.Events(1, 0); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Events after Close = %v, want %v", err, store.ErrClosed)
	}
	if _, err := w.Next(ctx); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Next of a watcher of a closed DB = %v, want %v", err, store.ErrClosed)
	}
	if err := db.Backup(func(store.Snapshot) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Backup after Close = %v, want %v", err, store.ErrClosed)
	}
}

// testReopenKeepsEverything: data, revision and compaction survive Close, and the revision
// counter continues where it stopped.
func testReopenKeepsEverything(t *testing.T, open Open) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openIn(t, dir, open)
	AppendEvents(t, db, "a", "b", "a", "c", "a")
	err := db.Update(ctx, func(tx store.Tx) error {
		return tx.Put(ascending, []byte("e1"), []byte("record-1"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Compact(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openIn(t, dir, open)
	if got, want := db.Rev(), uint64(5); got != want {
		t.Errorf("Rev() after reopen = %d, want %d", got, want)
	}
	if got, want := db.Oldest(), uint64(3); got != want {
		t.Errorf("Oldest() after reopen = %d, want %d", got, want)
	}
	evs, err := db.Events(3, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Event{WantEvent(3, "a"), WantEvent(4, "c"), WantEvent(5, "a")}
	if diff := cmp.Diff(want, evs); diff != "" {
		t.Errorf("Events(3, 0) after reopen mismatch (-want +got):\n%s", diff)
	}
	if ce := AsCompacted(func() error { _, err := db.Events(2, 0); return err }()); ce == nil || ce.Oldest != 3 {
		t.Errorf("Events(2, 0) after reopen = %v, want a CompactedError with Oldest 3", ce)
	}
	var got []byte
	if err := db.View(func(tx store.Tx) error { got = tx.Get(ascending, []byte("e1")); return nil }); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, []byte("record-1")) {
		t.Errorf("Get(e1) after reopen = %q, want %q", got, "record-1")
	}
	AppendEvents(t, db, "d")
	if got, want := db.Rev(), uint64(6); got != want {
		t.Errorf("Rev() after append = %d, want %d", got, want)
	}
}

// testBackup: a backup is a consistent copy at the revision it names, readable in full during fn,
// taken while writers go on.
func testBackup(t *testing.T, open Open) {
	ctx := Context(t)
	db := openFresh(t, open)
	AppendEvents(t, db, "a", "b", "c")
	err := db.Backup(func(s store.Snapshot) error {
		// A write while the copy is handed over neither blocks nor enters the copy's revision.
		if err := db.Update(ctx, func(tx store.Tx) error { _, err := tx.Append("d", nil); return err }); err != nil {
			return err
		}
		if s.Rev != 3 {
			t.Errorf("Snapshot.Rev = %d, want 3", s.Rev)
		}
		data, err := io.ReadAll(s.Data)
		if err != nil {
			return err
		}
		if int64(len(data)) != s.Size || s.Size == 0 {
			t.Errorf("Snapshot.Data holds %d bytes, Size says %d", len(data), s.Size)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Backup = %v", err)
	}
	errFn := errors.New("reader failed")
	if err := db.Backup(func(store.Snapshot) error { return errFn }); !errors.Is(err, errFn) {
		t.Errorf("Backup(fn fails) = %v, want %v", err, errFn)
	}
}
