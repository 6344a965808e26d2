package service

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestReadReceiptKey: the key found without the server is the one its keyring signs with, and
// looking writes nothing.
func TestReadReceiptKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	// No key directory yet: the key the server's first start will sign with, and still no
	// directory afterwards.
	k, err := ReadReceiptKey("test", testKey, dir)
	if err != nil {
		t.Fatal(err)
	}
	plain := testKeyring(t, string(testKey))
	if !bytes.Equal(k.PublicKey, plain.PublicKey()) || k.ID != plain.SigningKeyID() {
		t.Errorf("ReadReceiptKey before the first start = %s, want %s", k.ID, plain.SigningKeyID())
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("ReadReceiptKey made the key directory (stat: %v)", err)
	}

	// A key directory whose root secret is not the master key: a rotated master key.
	keys, err := OpenKeyring("test", testKey, dir, 24*time.Hour, time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	newMaster := []byte("fedcba9876543210fedcba9876543210")
	if _, err := RotateKeyDir(dir, "test", testKey, "new", newMaster); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadDir(dir)
	k, err = ReadReceiptKey("new", newMaster, dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.PublicKey, keys.PublicKey()) {
		t.Error("ReadReceiptKey after a rotation is not the key receipts were signed with")
	}
	if after, _ := os.ReadDir(dir); len(after) != len(before) {
		t.Errorf("ReadReceiptKey changed the key directory: %d files, then %d", len(before), len(after))
	}
	if _, err := ReadReceiptKey("test", testKey, dir); err == nil {
		t.Error("ReadReceiptKey with the master key rotated away = nil error, want refused")
	}
}
