package service

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The key directory holds the keys that must live outside the database so that they can be
// destroyed: a copy of the database file (a backup, or the freed pages bbolt leaves in the file)
// keeps every wrapped data key it ever held, and only destroying the key that wraps them makes
// those copies unreadable. (On a store shared by several processes the same keys are records of
// the store instead: keystore_shared.go.)
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
// mode 0600 in a directory of mode 0700. A destroyed key's file is first renamed out of the way
// (to .destroy-<name>.key), then overwritten, synced and removed, so that a crash at any point
// leaves either the whole key file or a file the next start finishes destroying, never a
// damaged key file that would keep the server from starting. Temporary files an interrupted
// write left (each holds a complete key) are destroyed the same way once they are old enough
// not to be another process's write in progress. On storage that remaps writes (SSDs,
// copy-on-write file systems, snapshots) the old blocks may survive the overwrite, so the
// directory belongs on storage that is not snapshotted or backed up beside the database.

const (
	rootKeyName   = "root"
	periodPrefix  = "p-"
	keyFileExt    = ".key"
	periodLayout  = "20060102T150405Z"
	tempPrefix    = ".tmp-"     // a key file being written (writeFileAtomic)
	destroyPrefix = ".destroy-" // a key file being destroyed
	// staleTempAge is how old a temporary file must be to count as left by an interrupted
	// write: writing one takes milliseconds, so an older one is no write in progress.
	staleTempAge = time.Minute
)

// keyFile is a key file's content.
type keyFile struct {
	Name        string    `json:"name"`
	MasterKeyID string    `json:"master_key_id"`
	Created     time.Time `json:"created"`
	// Start is when a period key's period begins; zero for the root secret.
	Start time.Time `json:"start,omitzero"`
	// Period is how long the period key is current at most (nanoseconds): the key period
	// configured when it was made. Zero for the root secret and for period keys made before
	// the field existed.
	Period time.Duration `json:"period,omitzero"`
	Sealed []byte        `json:"sealed"`
}

func keyFileAAD(name, masterID string) []byte {
	return []byte("erasured-key-file\x00" + name + "\x00" + masterID)
}

// ErrOtherMasterKey is wrapped by the error for a key file sealed by another master key id than
// the keyring's (after a rotation, the old key's).
var ErrOtherMasterKey = errors.New("key file sealed by another master key")

// keyStore keeps a Keyring's root secret and period keys, each sealed by the master key (a
// keyFile): a key directory on a store only this process opens, the store itself when it is
// shared with other processes (keystore_shared.go), so that every process wraps with the same
// keys. Its methods are called with no Keyring lock held: they may wait on disk or network.
type keyStore interface {
	// read returns the key name, unsealed; an error wrapping fs.ErrNotExist if there is none.
	read(name string, wrap cipher.AEAD, masterID string) (keyFile, []byte, error)
	// create stores the key kf.Name with secret unless a key of that name exists, and returns
	// the key the name holds then: the new one, or the one another process made first.
	create(ctx context.Context, kf keyFile, secret []byte, wrap cipher.AEAD) (keyFile, []byte, error)
	// periods returns every period key, unsealed, oldest first.
	periods(wrap cipher.AEAD, masterID string) ([]*periodKey, error)
	// destroy destroys the key name.
	destroy(ctx context.Context, name string) error
	// finishLeftovers destroys what interrupted writes and destructions left behind, and
	// returns their names.
	finishLeftovers() ([]string, error)
	// String names the key store in logs.
	String() string
}

var _ keyStore = (*keyDir)(nil)

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
	return openKeyFile("key file "+path, name, raw, wrap, masterID)
}

// openKeyFile decodes and unseals raw, the key stored as name (what names it in errors), with
// the master wrap key. A key stored under another name than its own, or sealed by another
// master key, is refused.
func openKeyFile(what, name string, raw []byte, wrap cipher.AEAD, masterID string) (keyFile, []byte, error) {
	var kf keyFile
	if err := json.Unmarshal(raw, &kf); err != nil {
		return keyFile{}, nil, fmt.Errorf("%s: %w", what, err)
	}
	if kf.Name != name {
		return keyFile{}, nil, fmt.Errorf("%s names itself %q", what, kf.Name)
	}
	if kf.MasterKeyID != masterID {
		return keyFile{}, nil, fmt.Errorf("%s is sealed by master key %q, not by the configured %q: %w", what, kf.MasterKeyID, masterID, ErrOtherMasterKey)
	}
	plain, err := openWith(wrap, kf.Sealed, keyFileAAD(name, masterID))
	if err != nil {
		return keyFile{}, nil, fmt.Errorf("%s does not open with master key %q", what, masterID)
	}
	return kf, plain, nil
}

// write seals secret under the master wrap key and stores it atomically as the file kf.Name,
// replacing the file if it exists (rotation re-seals files in place).
func (d *keyDir) write(kf keyFile, secret []byte, wrap cipher.AEAD) error {
	raw, err := sealKeyFile(kf, secret, wrap)
	if err != nil {
		return err
	}
	return writeFileAtomic(d.file(kf.Name), raw, true)
}

// create is write for a new key: it never replaces a file. If the file exists it reads the key
// there instead, and returns that one. Another process using the same directory (a second
// server started by mistake, a command) may have made the key for the same period a moment
// before; replacing it would orphan every data key wrapped by it.
func (d *keyDir) create(_ context.Context, kf keyFile, secret []byte, wrap cipher.AEAD) (keyFile, []byte, error) {
	raw, err := sealKeyFile(kf, secret, wrap)
	if err != nil {
		return keyFile{}, nil, err
	}
	err = writeFileAtomic(d.file(kf.Name), raw, false)
	if errors.Is(err, fs.ErrExist) {
		return d.read(kf.Name, wrap, kf.MasterKeyID)
	}
	if err != nil {
		return keyFile{}, nil, err
	}
	return kf, secret, nil
}

func sealKeyFile(kf keyFile, secret []byte, wrap cipher.AEAD) ([]byte, error) {
	sealed, err := sealWith(wrap, secret, keyFileAAD(kf.Name, kf.MasterKeyID))
	if err != nil {
		return nil, err
	}
	kf.Sealed = sealed
	raw, err := json.Marshal(kf)
	if err != nil {
		return nil, err
	}
	return append(raw, '\n'), nil
}

// periods loads and unseals every period key of the directory, oldest first.
func (d *keyDir) periods(wrap cipher.AEAD, masterID string) ([]*periodKey, error) {
	names, err := d.periodNames()
	if err != nil {
		return nil, err
	}
	var out []*periodKey
	for _, name := range names {
		kf, secret, err := d.read(name, wrap, masterID)
		if err != nil {
			return nil, err
		}
		pk, err := newPeriodKey(kf, secret)
		if err != nil {
			return nil, err
		}
		out = append(out, pk)
	}
	return out, nil
}

// String is the directory's path.
func (d *keyDir) String() string { return d.path }

// periodNames lists the period keys of the directory, oldest first.
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

// destroy destroys the key file name: it renames it out of the way, overwrites it, syncs it and
// removes it. After a crash the rename leaves the file to finishLeftovers; without it the
// overwritten file would keep its name and no longer open, and the server would not start.
func (d *keyDir) destroy(_ context.Context, name string) error {
	path, doomed := d.file(name), filepath.Join(d.path, destroyPrefix+name+keyFileExt)
	if err := os.Rename(path, doomed); err != nil {
		return fmt.Errorf("destroy key file %s: %w", path, err)
	}
	if err := syncDir(d.path); err != nil {
		return fmt.Errorf("destroy key file %s: %w", path, err)
	}
	return d.shredFile(doomed)
}

// shredFile overwrites the file at path with zeros, syncs it, and removes it. A file already
// gone (another process finished it) is no error.
func (d *keyDir) shredFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("destroy key file %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err == nil {
		_, err = f.WriteAt(make([]byte, fi.Size()), 0)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if err = os.Remove(path); errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
	}
	if err == nil {
		err = syncDir(d.path)
	}
	if err != nil {
		return fmt.Errorf("destroy key file %s: %w", path, err)
	}
	return nil
}

// finishLeftovers destroys what interrupted work left in the directory: key files whose
// destruction was interrupted, temporary files of interrupted writes older than staleTempAge
// (each holds a complete key, which must not outlive the key file's destruction), and period
// key files an earlier version overwrote with zeros but did not remove (they hold no key any
// more). It returns the names it destroyed.
func (d *keyDir) finishLeftovers() ([]string, error) {
	entries, err := os.ReadDir(d.path)
	if err != nil {
		return nil, fmt.Errorf("key directory: %w", err)
	}
	var done []string
	for _, e := range entries {
		n := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(d.path, n)
		switch {
		case strings.HasPrefix(n, destroyPrefix):
		case strings.HasPrefix(n, tempPrefix):
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return done, fmt.Errorf("key directory: %w", err)
			}
			if time.Since(fi.ModTime()) < staleTempAge {
				continue
			}
		case strings.HasPrefix(n, periodPrefix) && strings.HasSuffix(n, keyFileExt):
			raw, err := os.ReadFile(path)
			if err != nil || len(raw) == 0 || slices.ContainsFunc(raw, func(b byte) bool { return b != 0 }) {
				continue // read errors are reported when the key is read
			}
		default:
			continue
		}
		if err := d.shredFile(path); err != nil {
			return done, err
		}
		done = append(done, n)
	}
	return done, nil
}

// writeFileAtomic writes data to path (mode 0600) so that path holds either its old content or
// all of data, even across a crash. Without replace, an existing path is left as it is and the
// error wraps fs.ErrExist (the new file is linked into place, which fails if the name is taken).
func writeFileAtomic(path string, data []byte, replace bool) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, tempPrefix+"*")
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
	if replace {
		if err := os.Rename(name, path); err != nil {
			return err
		}
		ok = true
	} else if err := os.Link(name, path); err != nil {
		return err // ok stays false: the temporary file is removed
	}
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
	Leftovers          int // files of interrupted writes and destructions, destroyed first
}

// RotateKeyDir seals every file of the key directory dir again under the new master key,
// atomically per file. The files sealed by oldID are opened with oldMaster; files already
// sealed by newID (an interrupted earlier run) are checked with newMaster and left. Afterwards
// the old master key opens no file of the directory. Data keys wrapped directly by the master
// key must be moved under period keys first (Service.MigrateKeys).
func RotateKeyDir(dir, oldID string, oldMaster []byte, newID string, newMaster []byte) (RotateStats, error) {
	st := RotateStats{OldKeyID: oldID, NewKeyID: newID}
	oldWrap, newWrap, err := rotationWraps(oldID, oldMaster, newID, newMaster)
	if err != nil {
		return st, err
	}
	d, err := openKeyDir(dir)
	if err != nil {
		return st, err
	}
	// Before anything is sealed again: a leftover temporary file holds a key sealed by the old
	// master key, which must open nothing once the rotation is done.
	left, err := d.finishLeftovers()
	st.Leftovers = len(left)
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

// rotationWraps checks a rotation's master keys and derives their wrap keys.
func rotationWraps(oldID string, oldMaster []byte, newID string, newMaster []byte) (oldWrap, newWrap cipher.AEAD, err error) {
	if oldID == newID {
		return nil, nil, errors.New("the new master key id must differ from the old one")
	}
	if bytes.Equal(oldMaster, newMaster) {
		return nil, nil, errors.New("the new master key is the old one")
	}
	if err := checkMasterKey(newMaster); err != nil {
		return nil, nil, err
	}
	if oldWrap, err = newGCM(derive(oldMaster, wrapLabel)); err != nil {
		return nil, nil, err
	}
	newWrap, err = newGCM(derive(newMaster, wrapLabel))
	return oldWrap, newWrap, err
}
