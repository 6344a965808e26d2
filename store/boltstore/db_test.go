package boltstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

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

// TestOpenRefusesTheFirstFormat: a file of format 1 (the first layout) is refused, not rewritten.
func TestOpenRefusesTheFirstFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "erasured.db")
	db, err := Open(path, Options{Buckets: testBuckets})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	setFormat(t, path, 1)
	db, err = Open(path, Options{Buckets: testBuckets})
	if err == nil {
		db.Close()
	}
	if !errors.Is(err, errFormatTooOld) {
		t.Fatalf("Open(format 1) = %v, want %v", err, errFormatTooOld)
	}
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

// TestOwnBucketsUnreachable: the store's own buckets are not reachable as user buckets, so no
// write can corrupt the log or the revision.
func TestOwnBucketsUnreachable(t *testing.T) {
	db := openTest(t, Options{})
	for _, b := range []store.Bucket{{Name: "events"}, {Name: "meta"}} {
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
