package schema

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/boltstore"
)

func openStore(t *testing.T) store.DB {
	t.Helper()
	db, err := boltstore.Open(filepath.Join(t.TempDir(), "erasure.db"), boltstore.Options{Buckets: Buckets})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func storedVersion(t *testing.T, db store.DB) []byte {
	t.Helper()
	var v []byte
	if err := db.View(func(tx store.Tx) error { v = tx.Get(Meta, versionKey); return nil }); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestEnsureMarksAFreshStore(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	for i := range 2 { // the second finds the version it wrote
		if err := Ensure(ctx, db); err != nil {
			t.Fatalf("Ensure #%d = %v", i+1, err)
		}
	}
	if got, want := storedVersion(t, db), store.U64(Version); !bytes.Equal(got, want) {
		t.Errorf("stored version = %x, want %x", got, want)
	}
}

// TestEnsureRefuses: a store of any other layout is refused, and left as it was.
func TestEnsureRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(tx store.Tx) error
	}{
		{"newer", func(tx store.Tx) error { return tx.Put(Meta, versionKey, store.U64(Version+1)) }},
		{"the first layout", func(tx store.Tx) error { return tx.Put(Meta, versionKey, store.U64(1)) }},
		{"a malformed version", func(tx store.Tx) error { return tx.Put(Meta, versionKey, []byte("2")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db := openStore(t)
			if err := db.Update(ctx, tc.setup); err != nil {
				t.Fatal(err)
			}
			before := storedVersion(t, db)
			err := Ensure(ctx, db)
			if err == nil {
				t.Fatal("Ensure = nil, want a refusal")
			}
			if tc.name != "a malformed version" && !errors.Is(err, ErrVersion) {
				t.Errorf("Ensure = %v, want %v", err, ErrVersion)
			}
			if after := storedVersion(t, db); !bytes.Equal(before, after) {
				t.Errorf("Ensure changed the version from %x to %x", before, after)
			}
			t.Logf("Ensure = %v", err)
		})
	}
}

func TestAuditKeysSortEntriesBeforeTheIndex(t *testing.T) {
	last := AuditKey(1<<56 - 1)
	first := AuditIndexKey("", 0)
	if bytes.Compare(last, first) >= 0 || bytes.Compare(last, []byte{AuditIndexByte}) >= 0 {
		t.Errorf("entry key %x does not sort before index key %x and %x", last, first, []byte{AuditIndexByte})
	}
	if k := AuditIndexKey("e1", 7); !bytes.HasPrefix(k, AuditIndexPrefix("e1")) || bytes.HasPrefix(k, AuditIndexPrefix("e")) {
		t.Errorf("AuditIndexKey(e1, 7) = %q: prefixes wrong", k)
	}
}

func TestScheduleKeyRoundTrip(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 5, time.UTC)
	k := ScheduleKey(at, "batch/7")
	gotAt, gotTask, err := ParseScheduleKey(k)
	if err != nil || !gotAt.Equal(at) || gotTask != "batch/7" {
		t.Errorf("ParseScheduleKey(ScheduleKey(%v, batch/7)) = %v, %q, %v", at, gotAt, gotTask, err)
	}
	if later := ScheduleKey(at.Add(time.Nanosecond), "a"); bytes.Compare(k, later) >= 0 {
		t.Errorf("a later task's key %x sorts before %x", later, k)
	}
	if _, _, err := ParseScheduleKey(k[:8]); err == nil {
		t.Error("ParseScheduleKey(8 bytes) = nil error, want one")
	}
}

func TestQueueKeysOfOneKindSharePrefix(t *testing.T) {
	k := QueueKey("1234", 2, "e1")
	if !bytes.HasPrefix(k, QueuePrefix("1234", 2)) {
		t.Errorf("QueueKey %q lacks its prefix", k)
	}
	for _, other := range [][]byte{QueuePrefix("123", 2), QueuePrefix("1234", 20), QueuePrefix("1234", 1)} {
		if bytes.HasPrefix(k, other) {
			t.Errorf("QueueKey %q has another account's or kind's prefix %q", k, other)
		}
	}
}

// TestEnsureAdoptsAStoreOfTheReleasesBefore: a store holding data or events but no version was
// written by a release that kept the version in the store's file format (layout 2): it is marked
// 2, not taken for a fresh one, and opens.
func TestEnsureAdoptsAStoreOfTheReleasesBefore(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(tx store.Tx) error
	}{
		{"data", func(tx store.Tx) error { return tx.Put(Erasures, []byte("an-erasure"), []byte(`{}`)) }},
		{"events", func(tx store.Tx) error { _, err := tx.Append("x", nil); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db := openStore(t)
			if err := db.Update(ctx, tc.setup); err != nil {
				t.Fatal(err)
			}
			if err := Ensure(ctx, db); err != nil {
				t.Fatalf("Ensure = %v", err)
			}
			if got, want := storedVersion(t, db), store.U64(legacyVersion); !bytes.Equal(got, want) {
				t.Errorf("stored version = %x, want %x (the releases before)", got, want)
			}
		})
	}
}
