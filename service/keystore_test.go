package service

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRotateKeyDirKeepsDataAndReceipts(t *testing.T) {
	e := newKeyEnv(t)
	e.seedCustomer()
	res := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123")))
	id, name := res.Erasure.ID, res.Erasure.Name()
	e.settle()
	e.advance(e.cfg.BatchMaxWait)
	e.runLivePersonTimeline()
	done := e.wantState(name, StateCompleted)
	open := e.submit(submitReq("00000000-0000-4000-8000-000000000002", "1234", customer("DEF-456"))).Erasure.ID
	pub := e.keys.PublicKey()
	e.close()

	newMaster := []byte("fedcba9876543210FEDCBA9876543210")
	st, err := RotateKeyDir(e.keyDir, "test", testKey, "new", newMaster)
	if err != nil || st.Rewrapped < 2 || st.AlreadyNew != 0 {
		t.Fatalf("RotateKeyDir: %+v, %v; want the root and the period keys re-sealed", st, err)
	}
	// Run again (as after an interruption): nothing left to do, and it says so.
	if again, err := RotateKeyDir(e.keyDir, "test", testKey, "new", newMaster); err != nil || again.Rewrapped != 0 || again.AlreadyNew != st.Rewrapped {
		t.Errorf("a second RotateKeyDir: %+v, %v", again, err)
	}
	if _, err := OpenKeyring("test", testKey, e.keyDir, testPeriod, e.clock.Now()); !errors.Is(err, ErrOtherMasterKey) {
		t.Errorf("the old master key opens the key directory: %v", err)
	}
	ents, err := os.ReadDir(e.keyDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range ents {
		fi, _ := os.Stat(filepath.Join(e.keyDir, en.Name()))
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("key file %s has mode %04o, want 0600", en.Name(), fi.Mode().Perm())
		}
	}
	if fi, _ := os.Stat(e.keyDir); fi.Mode().Perm() != 0o700 {
		t.Errorf("key directory mode %04o, want 0700", fi.Mode().Perm())
	}

	e.masterID, e.master = "new", newMaster
	e.reopen()
	for _, id := range []string{id, open} {
		if _, err := e.svc.identities(id); err != nil {
			t.Errorf("after rotation erasure %s does not unseal: %v", id, err)
		}
	}
	got := e.wantState(name, StateCompleted)
	if VerifyReceipt(*got.Receipt, e.keys.PublicKey()) != nil || string(e.keys.PublicKey()) != string(pub) || got.Receipt.Hash != done.Receipt.Hash {
		t.Error("the receipt does not verify against the public key of before the rotation")
	}
	// Dedup still finds the open erasure: fingerprints did not change.
	if res, err := e.svc.Submit(context.Background(), submitReq("00000000-0000-4000-8000-000000000003", "1234", customer("DEF-456"))); err != nil || !res.Deduplicated {
		t.Errorf("Submit after rotation: deduplicated %v, %v", res.Deduplicated, err)
	}
	e.close()
	oldKeys, _ := wrappedKeys(t, e.path)
	if len(oldKeys) == 0 {
		t.Fatal("no wrapped keys to try")
	}
	oldRing, err := NewKeyring("test", testKey)
	if err != nil {
		t.Fatal(err)
	}
	for purpose, w := range oldKeys {
		if opensAny(oldRing, purpose, w) {
			t.Errorf("the old master key opens the data key %q", purpose)
		}
	}
}

var testNow = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func TestOpenKeyringRefusesOpenPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	k, err := OpenKeyring("test", testKey, dir, testPeriod, testNow)
	if err != nil {
		t.Fatal(err)
	}
	name := k.PeriodKeys()[0]
	if err := os.Chmod(filepath.Join(dir, name+keyFileExt), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenKeyring("test", testKey, dir, testPeriod, testNow); err == nil {
		t.Error("a period key file readable by others was accepted")
	}
	if err := os.Chmod(filepath.Join(dir, name+keyFileExt), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenKeyring("test", testKey, dir, testPeriod, testNow); err == nil {
		t.Error("a key directory others can list was accepted")
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenKeyring("other", testKey, dir, testPeriod, testNow); !errors.Is(err, ErrOtherMasterKey) {
		t.Error("a key directory sealed under another master key id was accepted")
	}
}
