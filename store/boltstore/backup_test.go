package boltstore

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/erasured/erasured/store"
)

// TestBackupWhileWriting takes a snapshot while updates commit, commits more while the
// snapshot is being read, and checks that the copy is a sound bbolt file holding exactly the
// changes up to its revision.
func TestBackupWhileWriting(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openAt(t, filepath.Join(dir, "erasured.db"), Options{})
	put := func(i int) error {
		return db.Update(ctx, func(tx store.Tx) error {
			if err := tx.Put(ascBucket, fmt.Appendf(nil, "e%05d", i), []byte("v")); err != nil {
				return err
			}
			_, err := tx.Append(fmt.Sprintf("e%05d", i), []byte("v"))
			return err
		})
	}
	for i := range 200 {
		if err := put(i); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writeErr error
	wg.Add(1)
	go func() { // writers keep committing during the whole backup
		defer wg.Done()
		for i := 200; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := put(i); err != nil {
				writeErr = err
				return
			}
		}
	}()
	out := filepath.Join(dir, "backup.db")
	var snapRev uint64
	err := db.Backup(func(s store.Snapshot) error {
		snapRev = s.Rev
		// A commit goes through while the copy is held: the backup blocks no writer.
		if err := put(1_000_000); err != nil {
			return err
		}
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := io.Copy(f, s.Data)
		if err == nil && n != s.Size {
			err = fmt.Errorf("copied %d bytes, snapshot size %d", n, s.Size)
		}
		return err
	})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("Backup = %v", err)
	}
	if writeErr != nil {
		t.Fatalf("concurrent Update = %v", writeErr)
	}
	if snapRev < 200 {
		t.Fatalf("snapshot revision %d, want at least the 200 committed before it", snapRev)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".erasured.db.backup-*")); len(left) != 0 {
		t.Errorf("temporary copies left behind: %v", left)
	}

	if err := CheckFile(out); err != nil {
		t.Fatalf("bbolt check of the backup: %v", err)
	}

	restored := openAt(t, out, Options{})
	if got := restored.Rev(); got != snapRev {
		t.Errorf("restored Rev() = %d, want the snapshot's %d", got, snapRev)
	}
	err = restored.View(func(tx store.Tx) error {
		if n := uint64(tx.Count(ascBucket)); n != snapRev {
			return fmt.Errorf("restored store holds %d records, want %d (one per revision)", n, snapRev)
		}
		if tx.Get(ascBucket, []byte("e00199")) == nil {
			return fmt.Errorf("a record committed before the backup is missing")
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func TestBackupAfterClose(t *testing.T) {
	db := openAt(t, filepath.Join(t.TempDir(), "erasured.db"), Options{})
	_ = db.Close()
	called := false
	if err := db.Backup(func(store.Snapshot) error { called = true; return nil }); err != store.ErrClosed || called {
		t.Errorf("Backup after Close = %v (fn called %v), want store.ErrClosed", err, called)
	}
}

// TestCheckFileRefusesDamage: a copy with damaged meta pages fails the check a backup must pass.
func TestCheckFileRefusesDamage(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(filepath.Join(dir, "erasured.db"), Options{Buckets: testBuckets})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "copy.db")
	err = db.Backup(func(s store.Snapshot) error {
		raw, err := io.ReadAll(s.Data)
		if err != nil {
			return err
		}
		return os.WriteFile(out, raw, 0o600)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckFile(out); err != nil {
		t.Fatalf("an intact copy: %v", err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// Both meta pages damaged (their checksums fail). Damaged data pages are not tried: bbolt
	// rebuilds its freelist in a goroutine of its own at open and panics on them.
	page := os.Getpagesize()
	for i := 16; i < 2*page && i < len(raw); i++ {
		raw[i] = 0xff
	}
	if err := os.WriteFile(out, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CheckFile(out); err == nil {
		t.Error("a copy with overwritten pages passed the check")
	}
}
