package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/erasured/erasured/server"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/boltstore"
)

// TestCtlBackup: `ctl backup FILE` writes a private, complete bbolt file holding the erasures
// (a restored store lists them by their external_ref), replaces an older backup and leaves no
// temporary file behind.
func TestCtlBackup(t *testing.T) {
	addr := serveCtl(t, ctlService(t), server.Options{})
	mustCtl(t, addr, "submit", "--account", "1234", "--customer-id", "DEMO-CUST-1", "--external-ref", "TICKET-9")
	listed := mustCtl(t, addr, "list", "--external-ref", "TICKET-9", "-o", "name")
	if strings.Count(listed, "erasures/") != 1 {
		t.Fatalf("list --external-ref TICKET-9 printed %q, want the one erasure", listed)
	}
	if out := mustCtl(t, addr, "list", "--external-ref", "TICKET-10", "-o", "name"); out != "" {
		t.Errorf("list --external-ref TICKET-10 printed %q, want nothing", out)
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "erasured.backup")
	if err := os.WriteFile(path, []byte("an older backup"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := mustCtl(t, addr, "backup", path)
	if !strings.Contains(out, "wrote "+path) {
		t.Errorf("backup printed %q", out)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, %v; want mode 0600", fi, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if err := boltstore.CheckFile(path); err != nil {
		t.Fatalf("bbolt check: %v", err)
	}
	db, err := boltstore.Open(path, boltstore.Options{Buckets: schema.Buckets})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := 0
	_ = db.View(func(tx store.Tx) error { n = tx.Count(schema.Erasures); return nil })
	if n != 1 {
		t.Errorf("restored store holds %d erasures, want 1", n)
	}

	// A backup into a directory that does not exist fails and writes nothing.
	if _, _, err := runCtl(t, nil, addr, "backup", filepath.Join(dir, "missing", "b")); err == nil {
		t.Error("backup into a missing directory succeeded")
	}
}
