package service

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
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

// TestTwoKeyringsShareAPeriodKey: two processes on one key directory (a command beside the
// server, or a second server started by mistake) that both need the key of a new period end up
// with the same key. Replacing the file would leave every data key the first one wrapped with no
// key to open it after a restart.
func TestTwoKeyringsShareAPeriodKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	a, err := OpenKeyring("test", testKey, dir, testPeriod, testNow)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenKeyring("test", testKey, dir, testPeriod, testNow)
	if err != nil {
		t.Fatal(err)
	}
	next := testNow.Add(testPeriod)
	if _, err := a.roll(next); err != nil {
		t.Fatal(err)
	}
	wrapped, err := a.wrapKey("erasure-1", bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.roll(next); err != nil { // the file is there already: b must not replace it
		t.Fatal(err)
	}
	restarted, err := OpenKeyring("test", testKey, dir, testPeriod, next)
	if err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]*Keyring{"the other keyring": b, "a restarted keyring": restarted} {
		if got, err := k.unwrap("erasure-1", wrapped); err != nil || !bytes.Equal(got, bytes.Repeat([]byte{7}, 32)) {
			t.Errorf("%s cannot open a data key wrapped by the first one under the same period: %v", name, err)
		}
	}
}

// keyBackend is where a keyring keeps its keys: a key directory, or the store.
type keyBackend struct {
	name string
	// start makes fresh storage and returns how to open a keyring over it (each call opens
	// another keyring over the same keys: a restart) and how to move a stored key under another
	// name, replacing that name's.
	start func(t *testing.T) (open func(id string, master []byte, now time.Time) (*Keyring, error), rename func(from, to string))
}

var keyBackends = []keyBackend{
	{"key directory", func(t *testing.T) (func(string, []byte, time.Time) (*Keyring, error), func(string, string)) {
		dir := filepath.Join(t.TempDir(), "keys")
		open := func(id string, master []byte, now time.Time) (*Keyring, error) {
			return OpenKeyring(id, master, dir, testPeriod, now)
		}
		rename := func(from, to string) {
			if err := os.Rename(filepath.Join(dir, from+keyFileExt), filepath.Join(dir, to+keyFileExt)); err != nil {
				t.Fatal(err)
			}
		}
		return open, rename
	}},
	{"shared store", func(t *testing.T) (func(string, []byte, time.Time) (*Keyring, error), func(string, string)) {
		db := openBolt(t)
		open := func(id string, master []byte, now time.Time) (*Keyring, error) {
			return OpenSharedKeyring(context.Background(), id, master, db, testPeriod, now)
		}
		rename := func(from, to string) {
			if err := db.Update(context.Background(), func(tx store.Tx) error {
				v := tx.Get(schema.WrappingKeys, []byte(from))
				if v == nil {
					return errors.New("no such record")
				}
				if err := tx.Put(schema.WrappingKeys, []byte(to), v); err != nil {
					return err
				}
				return tx.Delete(schema.WrappingKeys, []byte(from))
			}); err != nil {
				t.Fatal(err)
			}
		}
		return open, rename
	}},
}

var otherMaster = []byte("fedcba9876543210FEDCBA9876543210")

// TestKeyStoreBehaviour: a keyring keeps the same keys in a key directory and in a shared store:
// a new one gets the root secret equal to the master key and the key of the current period; a
// reopened one opens what the first wrapped; it rolls to a new key per period; a destroyed key
// opens nothing any more, also after a restart; another master key, or a key stored under
// another key's name, is refused.
func TestKeyStoreBehaviour(t *testing.T) {
	plain := bytes.Repeat([]byte{7}, 32)
	first, next := periodKeyName(testNow.Truncate(testPeriod)), periodKeyName(testNow.Add(testPeriod).Truncate(testPeriod))
	cases := []struct {
		name string
		run  func(t *testing.T, open func(string, []byte, time.Time) (*Keyring, error), rename func(string, string))
	}{
		{"create", func(t *testing.T, open func(string, []byte, time.Time) (*Keyring, error), _ func(string, string)) {
			k := mustKeyring(t)(open("test", testKey, testNow))
			if got := k.PeriodKeys(); !slices.Equal(got, []string{first}) {
				t.Errorf("period keys of a new keyring: %v, want [%s]", got, first)
			}
			plainRing, err := NewKeyring("test", testKey)
			if err != nil {
				t.Fatal(err)
			}
			if k.Fingerprint("1234", customer("ABC-123")) != plainRing.Fingerprint("1234", customer("ABC-123")) || k.SigningKeyID() != plainRing.SigningKeyID() {
				t.Error("a new keyring's root secret is not the master key: fingerprints and receipts of before would change")
			}
		}},
		{"reopen", func(t *testing.T, open func(string, []byte, time.Time) (*Keyring, error), _ func(string, string)) {
			k := mustKeyring(t)(open("test", testKey, testNow))
			w, err := k.wrapKey("erasure-1", plain)
			if err != nil {
				t.Fatal(err)
			}
			again := mustKeyring(t)(open("test", testKey, testNow))
			if got, err := again.unwrap("erasure-1", w); err != nil || !bytes.Equal(got, plain) {
				t.Errorf("a reopened keyring does not open a data key the first wrapped: %v", err)
			}
			if !slices.Equal(again.PeriodKeys(), k.PeriodKeys()) || again.SigningKeyID() != k.SigningKeyID() {
				t.Errorf("reopened: period keys %v, want %v; or another receipt key", again.PeriodKeys(), k.PeriodKeys())
			}
		}},
		{"roll", func(t *testing.T, open func(string, []byte, time.Time) (*Keyring, error), _ func(string, string)) {
			k := mustKeyring(t)(open("test", testKey, testNow))
			if cur, err := k.roll(testNow.Add(time.Hour)); err != nil || cur != first {
				t.Errorf("roll within the period: %s, %v; want %s", cur, err, first)
			}
			if cur, err := k.roll(testNow.Add(testPeriod)); err != nil || cur != next {
				t.Errorf("roll a period on: %s, %v; want %s", cur, err, next)
			}
			again := mustKeyring(t)(open("test", testKey, testNow.Add(testPeriod)))
			if got := again.PeriodKeys(); !slices.Equal(got, []string{first, next}) {
				t.Errorf("reopened after a roll: period keys %v, want [%s %s]", got, first, next)
			}
			if past := again.pastPeriods(); len(past) != 1 || past[0].name != first {
				t.Errorf("past periods %v, want only %s", past, first)
			}
		}},
		{"destroy", func(t *testing.T, open func(string, []byte, time.Time) (*Keyring, error), _ func(string, string)) {
			k := mustKeyring(t)(open("test", testKey, testNow))
			w, err := k.wrapKey("erasure-1", plain)
			if err != nil {
				t.Fatal(err)
			}
			if err := k.destroyPeriod(context.Background(), first); err == nil {
				t.Error("the current period key was destroyed")
			}
			if _, err := k.roll(testNow.Add(testPeriod)); err != nil {
				t.Fatal(err)
			}
			if err := k.destroyPeriod(context.Background(), first); err != nil {
				t.Fatal(err)
			}
			if _, err := k.unwrap("erasure-1", w); !errors.Is(err, errShredded) {
				t.Errorf("a data key wrapped by a destroyed key: %v, want it shredded", err)
			}
			again := mustKeyring(t)(open("test", testKey, testNow.Add(testPeriod)))
			if _, err := again.unwrap("erasure-1", w); !errors.Is(err, errShredded) {
				t.Errorf("after a restart, a data key wrapped by a destroyed key: %v, want it shredded", err)
			}
			if got := again.PeriodKeys(); !slices.Equal(got, []string{next}) {
				t.Errorf("period keys after the destruction: %v, want [%s]", got, next)
			}
		}},
		{"another master key", func(t *testing.T, open func(string, []byte, time.Time) (*Keyring, error), _ func(string, string)) {
			mustKeyring(t)(open("test", testKey, testNow))
			if _, err := open("other", testKey, testNow); !errors.Is(err, ErrOtherMasterKey) {
				t.Errorf("keys sealed under another master key id: %v, want ErrOtherMasterKey", err)
			}
			if _, err := open("test", otherMaster, testNow); err == nil {
				t.Error("keys open with another master key of the same id")
			}
		}},
		{"a key under another's name", func(t *testing.T, open func(string, []byte, time.Time) (*Keyring, error), rename func(string, string)) {
			k := mustKeyring(t)(open("test", testKey, testNow))
			if _, err := k.roll(testNow.Add(testPeriod)); err != nil {
				t.Fatal(err)
			}
			rename(next, first)
			if _, err := open("test", testKey, testNow.Add(testPeriod)); err == nil {
				t.Errorf("a keyring opened with the key of %s stored as %s", next, first)
			}
		}},
	}
	for _, b := range keyBackends {
		for _, tc := range cases {
			t.Run(b.name+"/"+tc.name, func(t *testing.T) {
				open, rename := b.start(t)
				tc.run(t, open, rename)
			})
		}
	}
}

func mustKeyring(t *testing.T) func(*Keyring, error) *Keyring {
	return func(k *Keyring, err error) *Keyring {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
}
