package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/erasured/erasured/service"
)

// loadKeyring reads the master key (32 random bytes, base64) from env ERASURED_MASTER_KEY or,
// when that is unset, from path, and derives the keys from it alone, without the key directory
// (see openKeyring). In the sandbox a missing key file is created. The key id defaults to a hash
// prefix of the key.
func loadKeyring(path, id string, create bool) (*service.Keyring, error) {
	key, _, err := readMasterKey(path, create, os.Getenv)
	if err != nil {
		return nil, err
	}
	return service.NewKeyring(masterKeyID(id, key), key)
}

// openKeyring is the server's keyring: the master key, and the key directory it seals. On a
// store shared by replicas the wrapping keys live in the store itself, which is not open yet: this
// reads and checks only the master key, and wire opens the rest (openSharedKeyring).
func openKeyring(cfg *Config, now time.Time) (*service.Keyring, error) {
	key, _, err := readMasterKey(cfg.Privacy.MasterKeyFile, cfg.sandbox, cfg.env)
	if err != nil {
		return nil, err
	}
	if cfg.Store.shared() {
		return service.NewKeyring(masterKeyID(cfg.Privacy.MasterKeyID, key), key)
	}
	return service.OpenKeyring(masterKeyID(cfg.Privacy.MasterKeyID, key), key, keyDirOf(cfg), cfg.Privacy.KeyPeriod.Duration, now)
}

// openSharedKeyring is the server's keyring on a store shared by replicas: the master key, and
// the root secret and period keys it seals, kept in db (created there by the first replica).
func openSharedKeyring(ctx context.Context, cfg *Config, db service.Store, now time.Time) (*service.Keyring, error) {
	key, _, err := readMasterKey(cfg.Privacy.MasterKeyFile, false, cfg.env)
	if err != nil {
		return nil, err
	}
	return service.OpenSharedKeyring(ctx, masterKeyID(cfg.Privacy.MasterKeyID, key), key, db, cfg.Privacy.KeyPeriod.Duration, now)
}

// keyDirOf is privacy.key_dir, by default a "keys" directory beside the db file.
func keyDirOf(cfg *Config) string {
	if cfg.Privacy.KeyDir != "" {
		return cfg.Privacy.KeyDir
	}
	return filepath.Join(filepath.Dir(cfg.DB), "keys")
}

// masterKeyID is id, or by default a hash prefix of the key.
func masterKeyID(id string, key []byte) string {
	if id != "" {
		return id
	}
	sum := sha256.Sum256(key)
	return "mk-" + hex.EncodeToString(sum[:4])
}

// readMasterKey reads the master key from env ERASURED_MASTER_KEY (base64), or else from the file
// path, which group and others must not be able to read. It refuses a weak key, naming where it
// came from. source is that name.
func readMasterKey(path string, create bool, getenv func(string) string) (key []byte, source string, err error) {
	var raw []byte
	if v := getenv("ERASURED_MASTER_KEY"); v != "" {
		source, raw = "ERASURED_MASTER_KEY", []byte(v)
	} else {
		source = path
		raw, err = readSecretFile(path)
		if errors.Is(err, fs.ErrNotExist) && create {
			raw, err = newKeyFile(path)
		}
		if err != nil {
			return nil, source, fmt.Errorf("master key: %w", err)
		}
	}
	key, err = base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(key) != 32 {
		return nil, source, fmt.Errorf("master key %s: want 32 bytes in base64", source)
	}
	if err := service.CheckMasterKey(key); err != nil {
		return nil, source, fmt.Errorf("master key %s: %w", source, err)
	}
	return key, source, nil
}

func newKeyFile(path string) ([]byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	enc := []byte(base64.StdEncoding.EncodeToString(key) + "\n")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(enc); err != nil {
		f.Close()
		return nil, err
	}
	return enc, f.Close()
}
