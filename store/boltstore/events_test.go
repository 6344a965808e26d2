package boltstore

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/storetest"
)

func TestCompact(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		ring  int
		chunk uint64
	}{
		{"one chunk", 1024, compactChunk},
		{"many chunks", 1024, 3},
		{"disk", 2, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "erasured.db")
			db := openAt(t, path, Options{RingSize: tc.ring})
			db.compactChunk = tc.chunk
			keys := make([]string, 20)
			for i := range keys {
				keys[i] = "k"
			}
			storetest.AppendEvents(t, db, keys...)

			if err := db.Compact(ctx, 10); err != nil {
				t.Fatalf("Compact(10) = %v", err)
			}
			if got := db.Oldest(); got != 10 {
				t.Errorf("Oldest() = %d, want 10", got)
			}
			if err := db.Compact(ctx, 5); err != nil { // lower: no-op
				t.Errorf("Compact(5) after Compact(10) = %v, want nil", err)
			}
			if got := db.Oldest(); got != 10 {
				t.Errorf("Oldest() after Compact(5) = %d, want 10", got)
			}
			if err := db.Compact(ctx, 21); !errors.Is(err, store.ErrFutureRevision) {
				t.Errorf("Compact(21) with Rev 20 = %v, want %v", err, store.ErrFutureRevision)
			}
			var stored int
			db.View(func(tx store.Tx) error { stored = tx.(*boltTx).btx.Bucket(eventsBucket.key()).Stats().KeyN; return nil })
			if stored != 11 {
				t.Errorf("events stored after Compact(10) = %d, want 11", stored)
			}

			wantCompacted := &store.CompactedError{Requested: 9, Oldest: 10}
			_, err := db.Events(9, 0)
			if diff := cmp.Diff(wantCompacted, storetest.AsCompacted(err)); diff != "" {
				t.Errorf("Events(9, 0) error mismatch (-want +got):\n%s", diff)
			}
			_, err = db.Watch(9, "")
			if diff := cmp.Diff(wantCompacted, storetest.AsCompacted(err)); diff != "" {
				t.Errorf("Watch(9) error mismatch (-want +got):\n%s", diff)
			}
			evs, err := db.Events(10, 0)
			if err != nil || len(evs) != 11 || evs[0].Rev != 10 {
				t.Errorf("Events(10, 0) = %d events, %v; want 11 from revision 10", len(evs), err)
			}

			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db = openAt(t, path, Options{RingSize: tc.ring})
			if got := db.Oldest(); got != 10 {
				t.Errorf("Oldest() after reopen = %d, want 10", got)
			}
			_, err = db.Events(9, 0)
			if diff := cmp.Diff(wantCompacted, storetest.AsCompacted(err)); diff != "" {
				t.Errorf("Events(9, 0) after reopen error mismatch (-want +got):\n%s", diff)
			}
			if err := db.Compact(ctx, 20); err != nil {
				t.Fatalf("Compact(20) = %v", err)
			}
			evs, err = db.Events(0, 0)
			if diff := cmp.Diff(&store.CompactedError{Requested: 1, Oldest: 20}, storetest.AsCompacted(err)); diff != "" {
				t.Errorf("Events(0, 0) after Compact(20) error mismatch (-want +got):\n%s", diff)
			}
			if evs, err = db.Events(20, 0); err != nil || len(evs) != 1 {
				t.Errorf("Events(20, 0) = %v, %v; want the last event", evs, err)
			}
		})
	}
}
