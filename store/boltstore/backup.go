package boltstore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/erasured/erasured/store"
)

// Backup takes a consistent copy of the whole file while the store keeps serving, and calls fn
// with it: a complete bbolt file that Open accepts. The copy is written inside a read transaction (writers are not blocked) into a
// temporary file next to the store's own, mode 0600, which is removed when fn returns. The read
// transaction ends before fn is called, so a slow reader of the copy (a remote client) never
// holds it open: a long read transaction would keep bbolt from reusing pages and would stall a
// commit that has to grow the file.
func (db *DB) Backup(fn func(s store.Snapshot) error) error {
	if db.isClosing() {
		return store.ErrClosed
	}
	f, err := os.CreateTemp(filepath.Dir(db.path), "."+filepath.Base(db.path)+".backup-*")
	if err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	defer func() {
		_ = f.Close()
		_ = os.Remove(f.Name())
	}()
	snap, err := db.copyTo(f)
	if err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	snap.Data = io.LimitReader(f, snap.Size)
	return fn(snap)
}

// copyTo writes a consistent copy of the file to w in one read transaction.
func (db *DB) copyTo(w io.Writer) (store.Snapshot, error) {
	btx, err := db.bolt.Begin(false)
	if err != nil {
		if errors.Is(err, bolt.ErrDatabaseNotOpen) {
			return store.Snapshot{}, store.ErrClosed
		}
		return store.Snapshot{}, fmt.Errorf("store: backup: begin read: %w", err)
	}
	defer func() { _ = btx.Rollback() }()
	rev, err := metaU64(btx.Bucket(metaBucket.key()), metaRev)
	if err != nil {
		return store.Snapshot{}, fmt.Errorf("store: backup: %w", err)
	}
	n, err := btx.WriteTo(w)
	if err != nil {
		return store.Snapshot{}, fmt.Errorf("store: backup: write copy: %w", err)
	}
	return store.Snapshot{Rev: rev, Size: n}, nil
}

// CheckFile opens the bbolt file at path read-only and runs bbolt's consistency check on it
// (every page reachable once, the freelist sound): what a backup must pass before it is trusted.
func CheckFile(path string) error {
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("store: check %s: %w", path, err)
	}
	err = bdb.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	if cerr := bdb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store: check %s: %w", path, err)
	}
	return nil
}
