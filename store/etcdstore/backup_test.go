package etcdstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/storetest"
)

// dump takes a backup of db and returns its bytes and revision.
func dump(t *testing.T, db *DB) ([]byte, uint64) {
	t.Helper()
	var data []byte
	var rev uint64
	err := db.Backup(func(s store.Snapshot) error {
		var err error
		data, err = io.ReadAll(s.Data)
		rev = s.Rev
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return data, rev
}

// TestBackupRestore: a dump restored into an empty prefix opens as the same store (data, events,
// revision, oldest revision), and goes on from there; the election's keys stay behind.
func TestBackupRestore(t *testing.T) {
	ctx := storetest.Context(t)
	src := openTest(t, testOptions(newPrefix(t), testBuckets))
	storetest.AppendEvents(t, src, "a", "b", "c", "d")
	if err := src.Compact(ctx, 2); err != nil {
		t.Fatal(err)
	}
	err := src.Update(ctx, func(tx store.Tx) error {
		if err := tx.Put(bucketA, []byte{0, 1, 0xff}, []byte("binary key")); err != nil {
			return err
		}
		return tx.Put(bucketB, []byte("empty"), nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Campaign(ctx, "leader"); err != nil {
		t.Fatal(err)
	}
	data, rev := dump(t, src)
	if rev != 4 {
		t.Errorf("Snapshot.Rev = %d, want 4", rev)
	}

	dst := newPrefix(t)
	if err := Restore(ctx, testOptions(dst, testBuckets), bytes.NewReader(data)); err != nil {
		t.Fatalf("Restore = %v", err)
	}
	db := openTest(t, testOptions(dst, testBuckets))
	if db.Rev() != 4 || db.Oldest() != 2 {
		t.Errorf("restored Rev, Oldest = %d, %d; want 4, 2", db.Rev(), db.Oldest())
	}
	want, err := src.Events(2, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.Events(2, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("restored events mismatch (-want +got):\n%s", diff)
	}
	var bin, empty []byte
	err = db.View(func(tx store.Tx) error {
		bin, empty = tx.Get(bucketA, []byte{0, 1, 0xff}), tx.Get(bucketB, []byte("empty"))
		return nil
	})
	if err != nil || string(bin) != "binary key" || empty == nil || len(empty) != 0 {
		t.Errorf("restored values = %q, %q (nil %t), %v", bin, empty, empty == nil, err)
	}
	if who, err := db.Leader(ctx); err != nil || who != "" {
		t.Errorf("restored Leader() = %q, %v; want none", who, err)
	}
	storetest.AppendEvents(t, db, "e")
	if db.Rev() != 5 {
		t.Errorf("Rev() after an append to the restored store = %d, want 5", db.Rev())
	}
	again, _ := dump(t, db)
	if bytes.Equal(again, data) {
		t.Error("a dump after a new commit equals the old one")
	}

	// Refusals: a prefix that is not empty, a damaged or cut dump.
	if err := Restore(ctx, testOptions(dst, testBuckets), bytes.NewReader(data)); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("Restore into a non-empty prefix = %v, want a refusal", err)
	}
	damaged := bytes.Clone(data)
	damaged[len(damaged)/2] ^= 1
	for name, d := range map[string][]byte{"damaged": damaged, "cut": data[:len(data)-10], "empty": nil} {
		p := newPrefix(t)
		if err := Restore(ctx, testOptions(p, testBuckets), bytes.NewReader(d)); err == nil {
			t.Errorf("Restore(%s dump) = nil, want an error", name)
		}
		resp, err := rawClient(t).Get(ctx, p, clientOptsPrefixCount()...)
		if err != nil || resp.Count != 0 {
			t.Errorf("Restore(%s dump) left %d keys, %v", name, resp.Count, err)
		}
	}
}

// TestRestoreCutShortRefused: a prefix holding a restore's keys without its format key (the last
// one written) does not open.
func TestRestoreCutShortRefused(t *testing.T) {
	ctx := storetest.Context(t)
	src := openTest(t, testOptions(newPrefix(t), testBuckets))
	storetest.AppendEvents(t, src, "a")
	data, _ := dump(t, src)
	dst := newPrefix(t)
	if err := Restore(ctx, testOptions(dst, testBuckets), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := rawClient(t).Delete(ctx, dst+metaFormat); err != nil {
		t.Fatal(err)
	}
	db, err := Open(context.Background(), testOptions(dst, testBuckets))
	if err == nil {
		db.Close()
		t.Fatal("Open of a prefix without its format key = nil, want an error")
	}
	if errors.Is(err, errFormatTooNew) {
		t.Errorf("Open = %v, want the missing format, not a newer one", err)
	}
}
