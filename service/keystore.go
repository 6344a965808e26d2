package service

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/erasured/erasured/store"
)

// The key directory holds the keys that must live outside the database so that they can be
// destroyed: a copy of the database file (a backup, or the freed pages bbolt leaves in the file)
// keeps every wrapped data key it ever held, and only destroying the key that wraps them makes
// those copies unreadable.
//
// It holds one file per key, each sealed by the master key (AES-256-GCM, with the file's name
// and the master key's id as associated data, so a file cannot be renamed into another's place
// or opened under another master key id):
//
//   - root.key: the root secret, from which the fingerprint key, the request-hash key and the
//     receipt-signing key are derived. It is made once, equal to the master key then in use, so
//     that a database written before the key directory existed keeps its fingerprints, request
//     hashes and receipt-signing key; rotating the master key re-seals it and leaves it as it is.
//   - p-<start>.key: the period key of the period starting at <start> (UTC, 20060102T150405Z).
//     Data keys (of erasures and of deletion batches) are wrapped by a period key.
//
// Files are written atomically (temporary file, fsync, rename, fsync of the directory) with
// mode 0600 in a directory of mode 0700. A destroyed key's file is overwritten, synced and
// removed; on storage that remaps writes (SSDs, copy-on-write file systems, snapshots) the old
// blocks may survive the overwrite, so the directory belongs on storage that is not snapshotted
// or backed up beside the database.

const (
	rootKeyName  = "root"
	periodPrefix = "p-"
	keyFileExt   = ".key"
	periodLayout = "20060102T150405Z"
)

// keyFile is a key file's content.
type keyFile struct {
	Name        string    `json:"name"`
	MasterKeyID string    `json:"master_key_id"`
	Created     time.Time `json:"created"`
	// Start is when a period key's period begins; zero for the root secret.
	Start  time.Time `json:"start,omitzero"`
	Sealed []byte    `json:"sealed"`
}

func keyFileAAD(name, masterID string) []byte {
	return []byte("erasured-key-file\x00" + name + "\x00" + masterID)
}

// ErrOtherMasterKey is wrapped by the error for a key file sealed by another master key id than
// the keyring's (after a rotation, the old key's).
var ErrOtherMasterKey = errors.New("key file sealed by another master key")

// periodKeyName names the period key of the period starting at start.
func periodKeyName(start time.Time) string { return periodPrefix + start.UTC().Format(periodLayout) }

// periodKey is one period key, unsealed.
type periodKey struct {
	name  string
	start time.Time
	aead  cipher.AEAD
}

// keyDir is the key directory of a Keyring.
type keyDir struct {
	path string
}

// openKeyDir creates dir (0700) if needed and refuses one that group or others can reach.
func openKeyDir(path string) (*keyDir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("key directory: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("key directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("key directory %s is not a directory", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("key directory %s is accessible by group or others (mode %04o): chmod 700 it", path, perm)
	}
	return &keyDir{path: path}, nil
}

func (d *keyDir) file(name string) string { return filepath.Join(d.path, name+keyFileExt) }

// read loads and unseals the key file name with the master wrap key.
func (d *keyDir) read(name string, wrap cipher.AEAD, masterID string) (keyFile, []byte, error) {
	path := d.file(name)
	fi, err := os.Stat(path)
	if err != nil {
		return keyFile{}, nil, err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return keyFile{}, nil, fmt.Errorf("key file %s is accessible by group or others (mode %04o): chmod 600 it", path, perm)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return keyFile{}, nil, err
	}
	var kf keyFile
	if err := json.Unmarshal(raw, &kf); err != nil {
		return keyFile{}, nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if kf.Name != name {
		return keyFile{}, nil, fmt.Errorf("key file %s names itself %q", path, kf.Name)
	}
	if kf.MasterKeyID != masterID {
		return keyFile{}, nil, fmt.Errorf("key file %s is sealed by master key %q, not by the configured %q: %w", path, kf.MasterKeyID, masterID, ErrOtherMasterKey)
	}
	plain, err := openWith(wrap, kf.Sealed, keyFileAAD(name, masterID))
	if err != nil {
		return keyFile{}, nil, fmt.Errorf("key file %s does not open with master key %q", path, masterID)
	}
	return kf, plain, nil
}

// write seals secret under the master wrap key and stores it atomically as the file kf.Name.
func (d *keyDir) write(kf keyFile, secret []byte, wrap cipher.AEAD) error {
	sealed, err := sealWith(wrap, secret, keyFileAAD(kf.Name, kf.MasterKeyID))
	if err != nil {
		return err
	}
	kf.Sealed = sealed
	raw, err := json.Marshal(kf)
	if err != nil {
		return err
	}
	return writeFileAtomic(d.file(kf.Name), append(raw, '\n'))
}

// names lists the period keys of the directory, oldest first.
func (d *keyDir) periodNames() ([]string, error) {
	entries, err := os.ReadDir(d.path)
	if err != nil {
		return nil, fmt.Errorf("key directory: %w", err)
	}
	var out []string
	for _, e := range entries {
		n := e.Name()
		if e.Type().IsRegular() && strings.HasPrefix(n, periodPrefix) && strings.HasSuffix(n, keyFileExt) {
			out = append(out, strings.TrimSuffix(n, keyFileExt))
		}
	}
	slices.Sort(out) // the start time's layout sorts as time does
	return out, nil
}

// destroy overwrites the key file name, syncs it, and removes it.
func (d *keyDir) destroy(name string) error {
	path := d.file(name)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err == nil {
		_, err = f.WriteAt(bytes.Repeat([]byte{0}, int(fi.Size())), 0)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("destroy key file %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	return syncDir(d.path)
}

// writeFileAtomic writes data to path (mode 0600) so that path holds either its old content or
// all of data, even across a crash.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			_ = os.Remove(name)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return err
	}
	ok = true
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// newSecret is 32 random bytes.
func newSecret() ([]byte, error) {
	b := make([]byte, 32)
	_, err := rand.Read(b)
	return b, err
}

// RotateStats says what a master-key rotation did. It holds no secrets.
type RotateStats struct {
	OldKeyID, NewKeyID string
	Rewrapped          int // key files sealed again under the new master key
	AlreadyNew         int // key files already sealed by the new master key (an earlier, interrupted run)
}

// RotateKeyDir seals every file of the key directory dir again under the new master key,
// atomically per file. The files sealed by oldID are opened with oldMaster; files already
// sealed by newID (an interrupted earlier run) are checked with newMaster and left. Afterwards
// the old master key opens no file of the directory. Data keys wrapped directly by the master
// key must be moved under period keys first (Service.MigrateKeys).
func RotateKeyDir(dir, oldID string, oldMaster []byte, newID string, newMaster []byte) (RotateStats, error) {
	st := RotateStats{OldKeyID: oldID, NewKeyID: newID}
	if oldID == newID {
		return st, errors.New("the new master key id must differ from the old one")
	}
	if bytes.Equal(oldMaster, newMaster) {
		return st, errors.New("the new master key is the old one")
	}
	if err := checkMasterKey(newMaster); err != nil {
		return st, err
	}
	oldWrap, err := newGCM(derive(oldMaster, wrapLabel))
	if err != nil {
		return st, err
	}
	newWrap, err := newGCM(derive(newMaster, wrapLabel))
	if err != nil {
		return st, err
	}
	d, err := openKeyDir(dir)
	if err != nil {
		return st, err
	}
	names, err := d.periodNames()
	if err != nil {
		return st, err
	}
	if _, err := os.Stat(d.file(rootKeyName)); err == nil {
		names = append([]string{rootKeyName}, names...)
	}
	for _, name := range names {
		raw, err := os.ReadFile(d.file(name))
		if err != nil {
			return st, err
		}
		var head keyFile
		if err := json.Unmarshal(raw, &head); err != nil {
			return st, fmt.Errorf("key file %s: %w", d.file(name), err)
		}
		if head.MasterKeyID == newID {
			if _, _, err := d.read(name, newWrap, newID); err != nil {
				return st, err
			}
			st.AlreadyNew++
			continue
		}
		kf, secret, err := d.read(name, oldWrap, oldID)
		if err != nil {
			return st, err
		}
		kf.MasterKeyID = newID
		if err := d.write(kf, secret, newWrap); err != nil {
			return st, err
		}
		st.Rewrapped++
	}
	return st, nil
}

// CheckMasterKey refuses a master key that is not 32 bytes or is plainly not random: all bytes
// equal, or fewer than 16 distinct byte values (32 random bytes have about 30).
func CheckMasterKey(key []byte) error { return checkMasterKey(key) }

func checkMasterKey(key []byte) error {
	if len(key) != 32 {
		return fmt.Errorf("master key must be 32 bytes, got %d", len(key))
	}
	seen := map[byte]bool{}
	for _, b := range key {
		seen[b] = true
	}
	switch {
	case len(seen) == 1:
		return errors.New("master key is weak: all its bytes are equal")
	case len(seen) < 16:
		return fmt.Errorf("master key is weak: only %d distinct byte values; generate one with `head -c 32 /dev/urandom | base64`", len(seen))
	}
	return nil
}

// KeyCheck counts the wrapped data keys of a database by whether the keyring opens them.
type KeyCheck struct {
	Open       int // data keys the keyring unwraps
	Unreadable int // data keys it does not (destroyed period keys, another master key)
	Master     int // of the open ones, keys the master key wraps directly
}

// CheckKeys tries to unwrap every data key the database holds (of erasures and of batches).
func (s *Service) CheckKeys() (KeyCheck, error) {
	var c KeyCheck
	try := func(purpose string, w []byte) {
		if _, err := s.keys.unwrap(purpose, w); err != nil {
			c.Unreadable++
			return
		}
		c.Open++
		if wrappedBy(w) == "" {
			c.Master++
		}
	}
	err := s.db.View(func(tx *store.Tx) error {
		err := tx.Scan(store.Erasures, nil, func(k, v []byte) (bool, error) {
			var r struct {
				DataKey []byte `json:"data_key"`
			}
			if err := json.Unmarshal(v, &r); err != nil {
				return false, fmt.Errorf("decode erasure %s: %w", k, err)
			}
			if r.DataKey != nil {
				try(string(k), r.DataKey)
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		return tx.Scan(store.Keys, nil, func(k, v []byte) (bool, error) {
			try(string(k), v)
			return true, nil
		})
	})
	return c, err
}
