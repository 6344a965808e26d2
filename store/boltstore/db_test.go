package boltstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/erasured/erasured/store"
)

func TestOpenCreatesPrivateFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	db := openAt(t, filepath.Join(dir, "erasured.db"), Options{})
	if got := db.Path(); got != filepath.Join(dir, "erasured.db") {
		t.Errorf("Path() = %q, want %q", got, filepath.Join(dir, "erasured.db"))
	}
	for _, tc := range []struct {
		path string
		want os.FileMode
	}{
		{dir, 0o700 | os.ModeDir},
		{db.Path(), 0o600},
	} {
		fi, err := os.Stat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode(); got != tc.want {
			t.Errorf("mode of %s = %v, want %v", tc.path, got, tc.want)
		}
	}
	if err := db.Err(); err != nil {
		t.Errorf("Err() = %v, want nil", err)
	}
	if got, want := db.Rev(), uint64(0); got != want {
		t.Errorf("Rev() = %d, want %d", got, want)
	}
	if got, want := db.Oldest(), uint64(1); got != want {
		t.Errorf("Oldest() = %d, want %d", got, want)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "erasured.db")
	db, err := Open(path, Options{Buckets: testBuckets})
	if err != nil {
		t.Fatal(err)
	}
	appendEvents(t, db, "a", "b", "a", "c", "a")
	err = db.Update(ctx, func(tx store.Tx) error {
		return tx.Put(ascBucket, []byte("e1"), []byte("record-1"))
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

	db = openAt(t, path, Options{})
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
	want := []store.Event{wantEvent(3, "a"), wantEvent(4, "c"), wantEvent(5, "a")}
	if diff := cmp.Diff(want, evs); diff != "" {
		t.Errorf("Events(3, 0) after reopen mismatch (-want +got):\n%s", diff)
	}
	var ce *store.CompactedError
	if _, err := db.Events(2, 0); !errors.As(err, &ce) || ce.Oldest != 3 {
		t.Errorf("Events(2, 0) after reopen = %v, want store.CompactedError with Oldest 3", err)
	}
	var got []byte
	if err := db.View(func(tx store.Tx) error { got = tx.Get(ascBucket, []byte("e1")); return nil }); err != nil {
		t.Fatal(err)
	}
	if string(got) != "record-1" {
		t.Errorf("Get(ascBucket, e1) after reopen = %q, want %q", got, "record-1")
	}
	// The revision counter continues where it stopped.
	appendEvents(t, db, "d")
	if got, want := db.Rev(), uint64(6); got != want {
		t.Errorf("Rev() after append = %d, want %d", got, want)
	}
}

func TestOpenRefusesNewerFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "erasured.db")
	db, err := Open(path, Options{Buckets: testBuckets})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	setFormat(t, path, fileFormat+1)

	db, err = Open(path, Options{Buckets: testBuckets})
	if err == nil {
		db.Close()
	}
	if !errors.Is(err, errFormatTooNew) {
		t.Fatalf("Open(newer format) = %v, want %v", err, errFormatTooNew)
	}
	t.Logf("Open(newer format) = %v", err)
}

// TestOpenChecksDeclaredBuckets: a declaration that would clash with the store's own buckets, or
// with itself, is refused before the file is touched.
func TestOpenChecksDeclaredBuckets(t *testing.T) {
	for _, tc := range []struct {
		name    string
		buckets []store.Bucket
	}{
		{"no name", []store.Bucket{{}}},
		{"the event log", []store.Bucket{{Name: "events"}}},
		{"the store's metadata", []store.Bucket{{Name: "meta"}}},
		{"twice", []store.Bucket{bucketA, {Name: bucketA.Name, Ascending: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "erasured.db")
			db, err := Open(path, Options{Buckets: tc.buckets})
			if err == nil {
				db.Close()
				t.Fatalf("Open(%v) = nil, want an error", tc.buckets)
			}
			if _, serr := os.Stat(path); !errors.Is(serr, os.ErrNotExist) {
				t.Errorf("Open(%v) failed but created the file (%v)", tc.buckets, serr)
			}
		})
	}
}

// setFormat writes file format v into the closed store file at path.
func setFormat(t *testing.T, path string, v uint64) {
	t.Helper()
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Update(func(btx *bolt.Tx) error { return btx.Bucket(metaBucket.key()).Put(metaFormat, store.U64(v)) }); err != nil {
		t.Fatal(err)
	}
	if err := bdb.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenLockTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "erasured.db")
	openAt(t, path, Options{})
	db, err := Open(path, Options{Buckets: testBuckets, LockTimeout: 10 * time.Millisecond})
	if err == nil {
		db.Close()
	}
	if !errors.Is(err, bolt.ErrTimeout) {
		t.Errorf("Open(locked file) = %v, want %v", err, bolt.ErrTimeout)
	}
}

func TestU64SortsLikeNumbers(t *testing.T) {
	nums := []uint64{0, 1, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, math.MaxUint64}
	for i := 1; i < len(nums); i++ {
		if got := bytes.Compare(store.U64(nums[i-1]), store.U64(nums[i])); got != -1 {
			t.Errorf("bytes.Compare(store.U64(%d), store.U64(%d)) = %d, want -1", nums[i-1], nums[i], got)
		}
	}
	db := openTest(t, Options{})
	err := db.Update(context.Background(), func(tx store.Tx) error {
		for _, n := range slices.Backward(nums) { // insertion order must not matter
			if err := tx.Put(bucketD, store.U64(n), []byte(strconv.FormatUint(n, 10))); err != nil {
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
				return tx.ScanReverse(bucketD, nil, visit)
			}
			return tx.Scan(bucketD, nil, visit)
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

func TestParseU64(t *testing.T) {
	for _, tc := range []struct {
		in      []byte
		want    uint64
		wantErr bool
	}{
		{store.U64(0), 0, false},
		{store.U64(math.MaxUint64), math.MaxUint64, false},
		{[]byte{1, 2, 3}, 0, true},
		{nil, 0, true},
		{make([]byte, 9), 0, true},
	} {
		got, err := store.ParseU64(tc.in)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("store.ParseU64(%x) = %d, %v; want %d, error %t", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestScanStarts(t *testing.T) {
	db := openTest(t, Options{})
	err := db.Update(context.Background(), func(tx store.Tx) error {
		for _, n := range []uint64{10, 20, 30} {
			if err := tx.Put(bucketE, store.U64(n), nil); err != nil {
				return err
			}
		}
		return nil
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
				return tx.ScanReverse(bucketE, tc.start, fn)
			}
			return tx.Scan(bucketE, tc.start, fn)
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
		return tx.Scan(bucketE, nil, func(k, v []byte) (bool, error) { return true, errStop })
	})
	if !errors.Is(err, errStop) {
		t.Errorf("Scan(fn fails) = %v, want %v", err, errStop)
	}
}

func TestTxReadsAndWrites(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, Options{})
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
		t.Errorf("Count(bucketB) inside Update = %d, want 2", countInTx)
	}
	if err := leaked.Put(bucketB, []byte("late"), nil); !errors.Is(err, errTxDone) {
		t.Errorf("Put after Update returned = %v, want %v", err, errTxDone)
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
		t.Errorf("Count(bucketB) = %d, want 2", count)
	}
	s1[0] = 'X' // a copy: the stored value must not change
	db.View(func(tx store.Tx) error { s1 = tx.Get(bucketB, []byte("s1")); return nil })
	if string(s1) != "one" {
		t.Errorf("Get(s1) after modifying an earlier result = %q, want %q", s1, "one")
	}
}

func TestViewIsReadOnly(t *testing.T) {
	db := openTest(t, Options{})
	var putErr, delErr, appendErr, hookErr error
	err := db.View(func(tx store.Tx) error {
		putErr = tx.Put(bucketE, []byte("k"), []byte("v"))
		delErr = tx.Delete(bucketE, []byte("k"))
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
}

// TestUndeclaredBucket: a bucket the user did not declare does not exist, even if its name is
// that of one of the store's own buckets, so that a typo cannot create a bucket nor reach the log.
func TestUndeclaredBucket(t *testing.T) {
	db := openTest(t, Options{})
	for _, b := range []store.Bucket{{}, {Name: "typo"}, {Name: "events"}, {Name: "meta"}} {
		err := db.Update(context.Background(), func(tx store.Tx) error { return tx.Put(b, []byte("k"), []byte("v")) })
		if !errors.Is(err, store.ErrNoBucket) {
			t.Errorf("Put(%q) = %v, want %v", b.Name, err, store.ErrNoBucket)
		}
		err = db.View(func(tx store.Tx) error {
			if v := tx.Get(b, []byte("schema")); v != nil {
				t.Errorf("Get(%q) = %q, want nil", b.Name, v)
			}
			return tx.Scan(b, nil, func(k, v []byte) (bool, error) { return true, nil })
		})
		if !errors.Is(err, store.ErrNoBucket) {
			t.Errorf("Scan(%q) = %v, want %v", b.Name, err, store.ErrNoBucket)
		}
	}
}

func TestClose(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, Options{})
	appendEvents(t, db, "a")
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
}
