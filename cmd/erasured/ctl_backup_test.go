package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/erasured/erasured/server"
	"github.com/erasured/erasured/service"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/boltstore"
	"github.com/erasured/erasured/store/etcdstore"
	"github.com/erasured/erasured/store/etcdstore/etcdtest"
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
	if !strings.Contains(out, "wrote "+path+": a bbolt file") {
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

// TestCtlBackupEtcd: against a server on etcd, `ctl backup FILE` keeps the store's dump once it
// passes the dump's check; Restore loads it into an empty prefix, which opens holding the
// erasure. A damaged dump, or one of another revision than the server announced, does not pass.
func TestCtlBackupEtcd(t *testing.T) {
	c := etcdtest.Start(t, 1)
	opts := etcdstore.Options{Endpoints: c.Endpoints(), Prefix: "/erasured/backup/", Buckets: schema.Buckets}
	db, err := etcdstore.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	keys, err := service.NewKeyring("ctl", []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(db, keys, service.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveCtl(t, svc, server.Options{})
	mustCtl(t, addr, "submit", "--account", "1234", "--customer-id", "DEMO-CUST-1", "--external-ref", "TICKET-9")

	path := filepath.Join(t.TempDir(), "erasured.dump")
	out := mustCtl(t, addr, "backup", path)
	if !strings.Contains(out, "wrote "+path+": an etcd store dump") {
		t.Errorf("backup printed %q", out)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, %v; want mode 0600", fi, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := etcdstore.CheckDump(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("CheckDump(the backup) = %v", err)
	}
	if info.Rev == 0 || info.Rev != db.Rev() {
		t.Errorf("the dump's revision %d, the store's %d", info.Rev, db.Rev())
	}
	jsonOut := mustCtl(t, addr, "-o", "json", "backup", path)
	if !strings.Contains(jsonOut, `"format": "etcd-dump"`) {
		t.Errorf("backup -o json printed %q", jsonOut)
	}

	restored := opts
	restored.Prefix = "/erasured/restored/"
	if err := etcdstore.Restore(context.Background(), restored, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	rdb, err := etcdstore.Open(context.Background(), restored)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	n := 0
	if err := rdb.View(func(tx store.Tx) error { n = tx.Count(schema.Erasures); return nil }); err != nil || n != 1 {
		t.Errorf("the restored store holds %d erasures (%v), want 1", n, err)
	}

	damaged := bytes.Clone(data)
	damaged[len(damaged)/2] ^= 1
	bad := filepath.Join(t.TempDir(), "damaged.dump")
	if err := os.WriteFile(bad, damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := checkBackup(bad, int64(info.Rev)); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Errorf("checkBackup(a damaged dump) = %v, want a checksum mismatch", err)
	}
	if _, err := checkBackup(path, int64(info.Rev)+1); err == nil || !strings.Contains(err.Error(), "revision") {
		t.Errorf("checkBackup(a dump of another revision) = %v, want a refusal", err)
	}
	if f, err := checkBackup(path, int64(info.Rev)); err != nil || f != formatEtcd {
		t.Errorf("checkBackup(the dump) = %q, %v", f, err)
	}
}
