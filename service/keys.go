package service

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/erasured/erasured/service/model"
)

// Keyring holds the master key and the keys derived from it. Subject identifiers are sealed with
// a random per-erasure data key (AES-256-GCM). With a key directory (OpenKeyring) the data key is
// wrapped by the key of the current period, itself stored sealed by the master key in the
// directory, so destroying the period key later makes every copy of the wrapped data key, in
// any old copy of the database, unreadable (crypto-shredding; see shred.go). On a store shared
// by several processes (OpenSharedKeyring) the period keys are records of the store instead, so
// that every process wraps with the same keys (keystore_shared.go). Without either (NewKeyring)
// data keys are wrapped by the master key itself, as databases written before the key directory
// existed have them. Subjects are compared through a keyed HMAC fingerprint, never in the clear.
type Keyring struct {
	id      string
	wrap    cipher.AEAD // from the master key: seals the key files, and opens data keys it wrapped directly
	fpKey   []byte
	hashKey []byte
	signing ed25519.PrivateKey

	ks     keyStore    // nil: no key directory nor shared store
	shared *sharedKeys // ks, when the keys are in a store shared with other processes
	period time.Duration

	// changeMu serializes the changes of the set of period keys that wait on the key store
	// (roll, destroyPeriod, reload). It is never taken inside a transaction function, and mu
	// is never held while the key store is waited on: a store's committer may run a
	// transaction function that takes mu while a roll waits for its commit.
	changeMu sync.Mutex

	mu      sync.RWMutex
	periods []*periodKey // oldest first
	current *periodKey   // nil without a key directory
	// doomed are the period keys about to be destroyed (see doom): no data key wrapped by one
	// may be committed any more.
	doomed map[string]bool
	// On a shared store: gone are period keys found destroyed there; reloadDue says a newer
	// period key was met, so that the next new data key reloads the keys first (and forgets
	// those destroyed since), and reloaded is when they were last reloaded (see reloadIfDue).
	gone      map[string]bool
	reloadDue bool
	reloaded  time.Time

	// opened is when OpenKeyring ran, by the host's clock (with its monotonic reading);
	// clockStep, when set (tests), replaces the measure of how far the host's wall clock has
	// been set forward since (see effectiveNow).
	opened     time.Time
	clockStep  func() time.Duration
	stepLogged time.Duration // the clock step last logged
	log        *slog.Logger  // slog.Default when nil
}

// wrapLabel derives the master wrap key from the master key.
const wrapLabel = "erasured/wrap/v1"

// NewKeyring derives the working keys from a 32-byte master key, with no key directory: data keys
// are wrapped by the master key and no period key is ever destroyed (tests, tools). id names the
// master key so that wrapped keys record which master key wraps them (for rotation).
func NewKeyring(id string, master []byte) (*Keyring, error) {
	if len(master) != 32 {
		return nil, fmt.Errorf("master key must be 32 bytes, got %d", len(master))
	}
	if id == "" {
		return nil, errors.New("master key id is empty")
	}
	wrap, err := newGCM(derive(master, wrapLabel))
	if err != nil {
		return nil, err
	}
	k := &Keyring{id: id, wrap: wrap}
	k.setRoot(master)
	return k, nil
}

// OpenKeyring is NewKeyring with the key directory dir (created 0700 if missing): the root secret
// and the period keys live there, sealed by the master key. A new directory gets a root secret
// equal to master, so that the fingerprints, request hashes and receipt-signing key of a
// database written before stay the same. period is how long one period key is current; now
// decides which period is current and makes its key if it does not exist yet.
func OpenKeyring(id string, master []byte, dir string, period time.Duration, now time.Time) (*Keyring, error) {
	k, err := NewKeyring(id, master)
	if err != nil {
		return nil, err
	}
	if period <= 0 {
		return nil, errors.New("key period must be positive")
	}
	d, err := openKeyDir(dir)
	if err != nil {
		return nil, err
	}
	if err := k.open(context.Background(), d, master, period, now); err != nil {
		return nil, err
	}
	return k, nil
}

// open loads the root secret and the period keys from ks, making the root secret (equal to
// master) if ks has none, and rolls to now's period.
func (k *Keyring) open(ctx context.Context, ks keyStore, master []byte, period time.Duration, now time.Time) error {
	k.ks, k.period, k.opened = ks, period, time.Now()
	if err := k.finishLeftovers(); err != nil {
		return err
	}
	_, root, err := ks.read(rootKeyName, k.wrap, k.id)
	if errors.Is(err, fs.ErrNotExist) {
		// Should another process make it meanwhile, create returns that one.
		_, root, err = ks.create(ctx, keyFile{Name: rootKeyName, MasterKeyID: k.id, Created: now.UTC()}, bytes.Clone(master), k.wrap)
	}
	if err != nil {
		return fmt.Errorf("root key: %w", err)
	}
	k.setRoot(root)
	if k.periods, err = ks.periods(k.wrap, k.id); err != nil {
		return err
	}
	for _, pk := range k.periods {
		if pk.start.After(now) {
			k.logger().Error("period key of a period that has not begun: the clock was ahead when it was made, or is behind now; "+
				"it stays current until its period begins, and keeps the data keys it wraps readable until after that",
				"key", pk.name, "start", pk.start, "now", now.UTC())
		}
	}
	_, err = k.roll(now)
	return err
}

// setRoot derives the fingerprint, request-hash and receipt-signing keys from the root secret.
func (k *Keyring) setRoot(root []byte) {
	k.fpKey = derive(root, "erasured/fingerprint/v1")
	k.hashKey = derive(root, "erasured/request-hash/v1")
	k.signing = ed25519.NewKeyFromSeed(derive(root, "erasured/receipt-signing/v1"))
}

// PublicKey is the key that verifies receipts.
func (k *Keyring) PublicKey() ed25519.PublicKey { return k.signing.Public().(ed25519.PublicKey) }

// SigningKeyID names the receipt-signing key: a hash prefix of its public key.
func (k *Keyring) SigningKeyID() string { return ReceiptKeyID(k.PublicKey()) }

// ID is the master key's id.
func (k *Keyring) ID() string { return k.id }

func derive(master []byte, label string) []byte {
	m := hmac.New(sha256.New, master)
	m.Write([]byte(label))
	return m.Sum(nil)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Fingerprint is the keyed HMAC-SHA256 (hex) of the subject's normalized identifier within an
// account. Equal subjects of one account have equal fingerprints; without the master key the
// fingerprint reveals nothing.
//
// These fingerprints are what the Submit index compares, and are never stored in the clear:
// the root secret is kept for the service's life, so with the master key they could be matched
// against guessed identifiers long after the erasure's data is shredded. Records hold them
// sealed with the erasure's data key (sealedindex.go); what callers see is publicFingerprint.
func (k *Keyring) Fingerprint(account string, s Subject) string {
	return fingerprintWith(k.fpKey, account, s)
}

// fingerprintWith is the keyed HMAC-SHA256 (hex) of s's normalized identifier within account,
// under key.
func fingerprintWith(key []byte, account string, s Subject) string {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s\x00%d\x00", account, s.Kind)
	m.Write([]byte(normalizeSubject(s)))
	return hex.EncodeToString(m.Sum(nil))
}

// publicFPKey is the key of an erasure's public fingerprints, derived from its data key: they
// are stable for the erasure's life, differ between two erasures of one subject, and once the
// data key is destroyed nothing can tell which identifier they were computed from.
func publicFPKey(dataKey []byte) []byte { return derive(dataKey, "erasured/public-fingerprint/v1") }

// planMAC is a keyed hash for plan etags: a plan's records are personal data, and an unkeyed
// hash of a short list of ids could be matched against guesses.
func (k *Keyring) planMAC() hash.Hash {
	m := hmac.New(sha256.New, k.hashKey)
	m.Write([]byte("plan\x00"))
	return m
}

// requestHash is a keyed hash of a Submit payload, stored sealed with the erasure it created (or
// with the record of a deduplicated Submit). It is keyed because the payload holds the subject's
// identifier.
func (k *Keyring) requestHash(canonical []byte) [32]byte {
	m := hmac.New(sha256.New, k.hashKey)
	m.Write(canonical)
	return [32]byte(m.Sum(nil))
}

// normalizeSubject gives the form in which two spellings of one identifier compare equal: e-mail
// addresses ignore case and surrounding space, phone numbers keep only their digits, explicit
// targets are sorted. Customer and consumer ids are exact.
func normalizeSubject(s Subject) string { return model.NormalizeSubject(s) }

// dataKey is a fresh per-erasure key, in the clear and wrapped.
type dataKey struct {
	plain   []byte
	wrapped []byte
}

// newDataKey makes a random data key and wraps it for the erasure id (the id is bound in as
// associated data, so a wrapped key cannot be moved to another erasure). On a shared store it
// may read the store first (reloadIfDue): it is not for use inside a transaction function.
func (k *Keyring) newDataKey(erasureID string) (dataKey, error) {
	if err := k.reloadIfDue(); err != nil {
		return dataKey{}, err
	}
	plain, err := newSecret()
	if err != nil {
		return dataKey{}, err
	}
	wrapped, err := k.wrapKey(erasureID, plain)
	if err != nil {
		return dataKey{}, err
	}
	return dataKey{plain: plain, wrapped: wrapped}, nil
}

// unwrap recovers a data key wrapped for purpose (an erasure id, or a batch's key name). A key
// whose period key was destroyed is errShredded. On a shared store, a period key the keyring
// does not hold is looked for in the store, in a View of its own; inside a transaction, unwrapIn
// reads it in that transaction instead.
func (k *Keyring) unwrap(purpose string, wrapped []byte) ([]byte, error) {
	return k.unwrapWith(purpose, wrapped, k.fetchPeriod)
}

// unwrapWith is unwrap, with fetch looking for a period key the keyring does not hold (shared
// stores only): nil when the store has none.
func (k *Keyring) unwrapWith(purpose string, wrapped []byte, fetch func(name string) (*periodKey, error)) ([]byte, error) {
	if name, sealed, ok := parseWrapped(wrapped); ok {
		pk := k.periodKey(name)
		if pk == nil && k.shared != nil {
			var err error
			if pk, err = fetch(name); err != nil {
				return nil, err
			}
		}
		if pk != nil {
			if plain, err := openWith(pk.aead, sealed, periodAAD(name, purpose)); err == nil {
				return plain, nil
			}
		} else if _, err := k.unwrapMaster(purpose, wrapped); err != nil {
			return nil, fmt.Errorf("%w: its period key %s is destroyed", errShredded, name)
		}
	}
	return k.unwrapMaster(purpose, wrapped)
}

func (k *Keyring) unwrapMaster(purpose string, wrapped []byte) ([]byte, error) {
	return openWith(k.wrap, wrapped, []byte(k.id+"\x00"+purpose))
}

// wrapKey wraps a data key for purpose: by the current period key, or without a key directory
// by the master key.
func (k *Keyring) wrapKey(purpose string, plain []byte) ([]byte, error) {
	k.mu.RLock()
	cur := k.current
	k.mu.RUnlock()
	if cur == nil {
		return sealWith(k.wrap, plain, []byte(k.id+"\x00"+purpose))
	}
	return wrapWith(cur, purpose, plain)
}

// Wrapped data keys in a period key have the form wrappedMagic, the period key's name (one byte
// of length, then the name), then the sealed key. Keys the master key wraps are the sealed key
// alone, beginning with a random nonce; unwrap tries them as such when the first form fails.
const wrappedMagic = "\x00ek2"

func wrapWith(pk *periodKey, purpose string, plain []byte) ([]byte, error) {
	sealed, err := sealWith(pk.aead, plain, periodAAD(pk.name, purpose))
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(wrappedMagic)+1+len(pk.name)+len(sealed))
	out = append(out, wrappedMagic...)
	out = append(out, byte(len(pk.name)))
	out = append(out, pk.name...)
	return append(out, sealed...), nil
}

func periodAAD(name, purpose string) []byte { return []byte("period\x00" + name + "\x00" + purpose) }

func parseWrapped(w []byte) (name string, sealed []byte, ok bool) {
	if !bytes.HasPrefix(w, []byte(wrappedMagic)) || len(w) < len(wrappedMagic)+1 {
		return "", nil, false
	}
	n := int(w[len(wrappedMagic)])
	rest := w[len(wrappedMagic)+1:]
	if len(rest) < n {
		return "", nil, false
	}
	return string(rest[:n]), rest[n:], true
}

// wrappedBy names the period key a wrapped data key says it is wrapped by; "" for the master key.
func wrappedBy(w []byte) string {
	name, _, _ := parseWrapped(w)
	return name
}

// seal encrypts plaintext with a data key; aad binds it to its erasure.
func seal(key, plaintext, aad []byte) ([]byte, error) {
	g, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	return sealWith(g, plaintext, aad)
}

// open decrypts what seal produced.
func open(key, sealed, aad []byte) ([]byte, error) {
	g, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	return openWith(g, sealed, aad)
}

func sealWith(g cipher.AEAD, plaintext, aad []byte) ([]byte, error) {
	nonce := make([]byte, g.NonceSize(), g.NonceSize()+len(plaintext)+g.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return g.Seal(nonce, nonce, plaintext, aad), nil
}

func openWith(g cipher.AEAD, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < g.NonceSize() {
		return nil, errors.New("sealed data too short")
	}
	return g.Open(nil, sealed[:g.NonceSize()], sealed[g.NonceSize():], aad)
}

// errShredded means the erasure's data key was destroyed: its subject is gone for good.
var errShredded = errors.New("subject data key destroyed")

// errUnreadable is wrapped by rewrap's error for a data key the keyring does not open.
var errUnreadable = errors.New("data key does not open")

// CheckMasterKey refuses a master key that is not 32 bytes or is plainly not random: all bytes
// equal, fewer than 16 distinct byte values (32 random bytes have about 30), or every byte a
// printable ASCII character, which is a passphrase typed in place of a key (32 random bytes
// are all printable with a probability of about 1.6e-14). Every master key erasured reads, from
// a file or the environment, passes through it.
func CheckMasterKey(key []byte) error {
	if err := checkMasterKey(key); err != nil {
		return err
	}
	for _, b := range key {
		if b < 0x20 || b > 0x7e {
			return nil
		}
	}
	return errors.New("master key is weak: all its bytes are printable characters, a passphrase rather than 32 random bytes; generate one with `head -c 32 /dev/urandom | base64`")
}

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
