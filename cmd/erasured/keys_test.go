package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/erasured/erasured/service"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store/boltstore"
)

func writeKey(t *testing.T, path string, key []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func randomKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func TestMasterKeyRefusals(t *testing.T) {
	dir := t.TempDir()
	few := bytes.Repeat([]byte("0123456789"), 4)[:32] // 10 distinct byte values
	equal := bytes.Repeat([]byte{7}, 32)
	noEnv := func(string) string { return "" }
	for _, tc := range []struct {
		name string
		key  []byte
		mode os.FileMode
		want string // "" = accepted
	}{
		{"random, 0600", randomKey(t), 0o600, ""},
		{"random, 0400", randomKey(t), 0o400, ""},
		{"readable by others", randomKey(t), 0o644, "accessible by group or others"},
		{"readable by group", randomKey(t), 0o640, "accessible by group or others"},
		{"all zero", make([]byte, 32), 0o600, "all its bytes are equal"},
		{"all equal", equal, 0o600, "all its bytes are equal"},
		{"few distinct bytes", few, 0o600, "distinct byte values"},
		{"a passphrase", []byte("Correct horse battery staple 42!"), 0o600, "printable characters"},
		{"printable but one byte", append([]byte("Correct horse battery staple 42"), 0x80), 0o600, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".key")
			writeKey(t, path, tc.key, tc.mode)
			_, _, err := readMasterKey(path, false, noEnv)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatal("accepted")
			case tc.want != "" && (!strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path)):
				t.Fatalf("error %q does not say %q naming %s", err, tc.want, path)
			case tc.want != "" && strings.Contains(err.Error(), masterKeyID("", tc.key)):
				t.Fatalf("error %q names the key id derived from the refused key", err)
			}
		})
	}

	// The environment wins over the file, even a missing one, and is checked the same way.
	key := randomKey(t)
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "ERASURED_MASTER_KEY" {
				return v
			}
			return ""
		}
	}
	got, src, err := readMasterKey(filepath.Join(dir, "missing.key"), false, env(base64.StdEncoding.EncodeToString(key)))
	if err != nil || !bytes.Equal(got, key) || src != "ERASURED_MASTER_KEY" {
		t.Errorf("env key: %v (source %q)", err, src)
	}
	if _, _, err := readMasterKey("", false, env(base64.StdEncoding.EncodeToString(make([]byte, 32)))); err == nil ||
		!strings.Contains(err.Error(), "ERASURED_MASTER_KEY") {
		t.Errorf("an all-zero env key: %v, want refused naming ERASURED_MASTER_KEY", err)
	}
}

// rotateSetup writes a configuration with a master key file and returns its path and the db's.
func rotateSetup(t *testing.T, dir, masterFile string) (cfgPath string) {
	t.Helper()
	cfgPath = filepath.Join(dir, "erasured.yaml")
	// privacy comes last: the rotation below appends to it.
	body := "listen: 127.0.0.1:0\ndb: " + filepath.Join(dir, "erasure.db") + "\n" + accountsYAML(t, dir) + "privacy:\n  master_key_file: " + masterFile + "\n"
	if err := os.WriteFile(cfgPath, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath
}

func loadTestConfig(t *testing.T, path string) Config {
	t.Helper()
	cfg, err := loadConfig([]string{"--config", path}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func submitOne(t *testing.T, svc *service.Service, rid, customer string) {
	t.Helper()
	_, err := svc.Submit(context.Background(), service.SubmitRequest{RequestID: rid, AccountID: "1234",
		Subject: service.Subject{Kind: service.SubjectCustomerID, Value: customer}})
	if err != nil {
		t.Fatal(err)
	}
}

func TestKeysRotate(t *testing.T) {
	t.Setenv("ERASURED_MASTER_KEY", "")
	dir := t.TempDir()
	oldFile, newFile := filepath.Join(dir, "old.key"), filepath.Join(dir, "new.key")
	oldKey, newKey := randomKey(t), randomKey(t)
	writeKey(t, oldFile, oldKey, 0o600)
	writeKey(t, newFile, newKey, 0o600)
	cfgPath := rotateSetup(t, dir, oldFile)
	cfg := loadTestConfig(t, cfgPath)

	// An erasure from before the key directory (its key wrapped by the master key), and one after.
	db, err := boltstore.Open(cfg.DB, boltstore.Options{Buckets: schema.Buckets})
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := loadKeyring(oldFile, "", false)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(db, legacy, service.Config{})
	if err != nil {
		t.Fatal(err)
	}
	submitOne(t, svc, "00000000-0000-4000-8000-000000000001", "ABC-123")
	keys, err := openKeyring(&cfg, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pub := keys.PublicKey()
	if svc, err = service.New(db, keys, service.Config{}); err != nil {
		t.Fatal(err)
	}
	submitOne(t, svc, "00000000-0000-4000-8000-000000000002", "DEF-456")
	if c, err := svc.CheckKeys(); err != nil || c.Open != 2 || c.Master != 1 {
		t.Fatalf("before rotation: %+v, %v; want 2 open, 1 wrapped by the master key", c, err)
	}

	// While the server holds the database, rotation fails fast.
	args := []string{"rotate", "--config", cfgPath, "--new-master-key-file", newFile, "--new-master-key-id", "mk-new"}
	start := time.Now()
	var out bytes.Buffer
	if err := keysMain(context.Background(), args, &out); err == nil || !strings.Contains(err.Error(), "stop the server") {
		t.Errorf("rotation with the database open: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("rotation waited %v for the locked database", d)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	out.Reset()
	if err := keysMain(context.Background(), args, &out); err != nil {
		t.Fatalf("rotate: %v\n%s", err, out.String())
	}
	for _, want := range []string{"moved 1 data keys", "to mk-new", "checked: 2 data keys open with master key mk-new"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("rotate output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), base64.StdEncoding.EncodeToString(newKey)) || strings.Contains(out.String(), base64.StdEncoding.EncodeToString(oldKey)) {
		t.Error("rotate printed a key")
	}

	// The server's configuration now names the new key: everything opens, receipts keep their key.
	newCfg := cfg
	newCfg.Privacy.MasterKeyFile, newCfg.Privacy.MasterKeyID = newFile, "mk-new"
	db, err = boltstore.Open(cfg.DB, boltstore.Options{Buckets: schema.Buckets})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	nk, err := openKeyring(&newCfg, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(nk.PublicKey(), pub) {
		t.Error("the receipt-signing key changed with the master key")
	}
	if svc, err = service.New(db, nk, service.Config{}); err != nil {
		t.Fatal(err)
	}
	if c, err := svc.CheckKeys(); err != nil || c.Open != 2 || c.Unreadable != 0 {
		t.Errorf("with the new key: %+v, %v; want both data keys open", c, err)
	}
	submitOne(t, svc, "00000000-0000-4000-8000-000000000003", "GHI-789")

	// The old key opens nothing: not the key directory, not a data key.
	if _, err := openKeyring(&cfg, time.Now()); !errors.Is(err, service.ErrOtherMasterKey) {
		t.Errorf("the old master key with the key directory: %v, want refused", err)
	}
	if svc, err = service.New(db, legacy, service.Config{}); err != nil {
		t.Fatal(err)
	}
	if c, err := svc.CheckKeys(); err != nil || c.Open != 0 {
		t.Errorf("with the old master key: %+v, %v; want nothing open", c, err)
	}

	// `erasured receipt public-key` prints the same key with the new configuration: it reads the
	// root secret of the key directory, not a key derived from the master key.
	rotated := filepath.Join(dir, "erasured-rotated.yaml")
	body0, _ := os.ReadFile(cfgPath)
	body0 = append(bytes.Replace(body0, []byte(oldFile), []byte(newFile), 1), []byte("  master_key_id: mk-new\n")...)
	if err := os.WriteFile(rotated, body0, 0o600); err != nil {
		t.Fatal(err)
	}
	var pk bytes.Buffer
	if err := receiptMain([]string{"public-key", "--config", rotated}, &pk); err != nil {
		t.Fatalf("receipt public-key after rotation: %v", err)
	}
	if got := strings.TrimSpace(pk.String()); got != base64.StdEncoding.EncodeToString(pub) {
		t.Errorf("receipt public-key after rotation = %s, want the key receipts were signed with, %s", got, base64.StdEncoding.EncodeToString(pub))
	}

	// Rotating again from the new key's configuration to the same key is refused.
	newPath := filepath.Join(dir, "erasured-new.yaml")
	body, _ := os.ReadFile(cfgPath)
	os.WriteFile(newPath, bytes.Replace(body, []byte(oldFile), []byte(newFile), 1), 0o600)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := keysMain(context.Background(), []string{"rotate", "--config", newPath, "--new-master-key-file", newFile}, &out); err == nil {
		t.Error("a rotation to the key in use was accepted")
	}
}
