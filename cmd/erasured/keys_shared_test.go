package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/erasured/erasured/service"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store/etcdstore"
	"github.com/erasured/erasured/store/etcdstore/etcdtest"
)

// TestKeysRotateShared: keys rotate on a store shared by replicas (etcd) refuses while a replica
// runs (one holds the pipeline's leadership); with every replica stopped it seals the store's key
// records again under the new master key, after which the new key opens every data key and the
// receipt key is unchanged, and the old key opens nothing.
func TestKeysRotateShared(t *testing.T) {
	t.Setenv("ERASURED_MASTER_KEY", "")
	c := etcdtest.Start(t, 1)
	dir := t.TempDir()
	oldFile, newFile := filepath.Join(dir, "old.key"), filepath.Join(dir, "new.key")
	oldKey, newKey := randomKey(t), randomKey(t)
	writeKey(t, oldFile, oldKey, 0o600)
	writeKey(t, newFile, newKey, 0o600)
	cfgPath := rotateSetup(t, dir, oldFile)
	f, err := os.OpenFile(cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("store:\n  backend: etcd\n  etcd:\n    endpoints: [\"" + c.Endpoints()[0] + "\"]\n    prefix: /erasured/rotate/\n")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	cfg := loadTestConfig(t, cfgPath)
	ctx := context.Background()

	// A replica's store and keyring, with one erasure whose data key the store's period key wraps.
	db, err := etcdstore.Open(ctx, etcdstore.Options{Endpoints: c.Endpoints(), Prefix: "/erasured/rotate/", Buckets: schema.Buckets})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	oldID := masterKeyID("", oldKey)
	keys, err := service.OpenSharedKeyring(ctx, oldID, oldKey, db, cfg.Privacy.KeyPeriod.Duration, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(db, keys, service.Config{Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	submitOne(t, svc, "00000000-0000-4000-8000-000000000001", "ABC-123")
	pub := keys.PublicKey()
	args := []string{"rotate", "--config", cfgPath, "--new-master-key-file", newFile}

	// While it runs (it leads the pipeline), the rotation is refused and changes nothing.
	term, err := db.Campaign(ctx, "replica-a")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := keysMain(ctx, args, &out); err == nil || !strings.Contains(err.Error(), `replica "replica-a" is running`) {
		t.Fatalf("keys rotate with a replica running = %v, want refused naming it", err)
	}
	if _, err := service.OpenSharedKeyring(ctx, oldID, oldKey, db, cfg.Privacy.KeyPeriod.Duration, time.Now()); err != nil {
		t.Fatalf("the refused rotation changed the keys: %v", err)
	}
	if err := term.Resign(ctx); err != nil {
		t.Fatal(err)
	}

	out.Reset()
	if err := keysMain(ctx, args, &out); err != nil {
		t.Fatalf("keys rotate = %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "checked: 1 data keys open with master key "+masterKeyID("", newKey)) {
		t.Errorf("keys rotate printed:\n%s", out.String())
	}
	nk, err := service.OpenSharedKeyring(ctx, masterKeyID("", newKey), newKey, db, cfg.Privacy.KeyPeriod.Duration, time.Now())
	if err != nil {
		t.Fatalf("the new master key does not open the store's keys: %v", err)
	}
	if !bytes.Equal(nk.PublicKey(), pub) {
		t.Error("the receipt-signing key changed with the rotation")
	}
	if _, err := service.OpenSharedKeyring(ctx, oldID, oldKey, db, cfg.Privacy.KeyPeriod.Duration, time.Now()); !errors.Is(err, service.ErrOtherMasterKey) {
		t.Errorf("the old master key after the rotation: %v, want %v", err, service.ErrOtherMasterKey)
	}
}
