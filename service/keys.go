package service

import (
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
	"sort"
	"strings"
	"unicode"
)

// Keyring holds the master key and the keys derived from it. Subject identifiers are sealed with
// a random per-erasure data key (AES-256-GCM); the data key is stored wrapped by the master key,
// so destroying it later makes the identifiers unrecoverable (crypto-shredding). Subjects are
// compared through a keyed HMAC fingerprint, never in the clear.
type Keyring struct {
	id      string
	wrap    cipher.AEAD
	fpKey   []byte
	hashKey []byte
	signing ed25519.PrivateKey
}

// NewKeyring derives the working keys from a 32-byte master key. id names the master key so that
// wrapped data keys record which master key wraps them (for rotation).
func NewKeyring(id string, master []byte) (*Keyring, error) {
	if len(master) != 32 {
		return nil, fmt.Errorf("master key must be 32 bytes, got %d", len(master))
	}
	if id == "" {
		return nil, errors.New("master key id is empty")
	}
	wrap, err := newGCM(derive(master, "erasured/wrap/v1"))
	if err != nil {
		return nil, err
	}
	return &Keyring{
		id:      id,
		wrap:    wrap,
		fpKey:   derive(master, "erasured/fingerprint/v1"),
		hashKey: derive(master, "erasured/request-hash/v1"),
		signing: ed25519.NewKeyFromSeed(derive(master, "erasured/receipt-signing/v1")),
	}, nil
}

// PublicKey is the key that verifies receipts.
func (k *Keyring) PublicKey() ed25519.PublicKey { return k.signing.Public().(ed25519.PublicKey) }

// SigningKeyID names the receipt-signing key: a hash prefix of its public key.
func (k *Keyring) SigningKeyID() string {
	sum := sha256.Sum256(k.PublicKey())
	return "rk-" + hex.EncodeToString(sum[:6])
}

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
func (k *Keyring) Fingerprint(account string, s Subject) string {
	m := hmac.New(sha256.New, k.fpKey)
	fmt.Fprintf(m, "%s\x00%d\x00", account, s.Kind)
	m.Write([]byte(normalizeSubject(s)))
	return hex.EncodeToString(m.Sum(nil))
}

// planMAC is a keyed hash for plan etags: a plan's records are personal data, and an unkeyed
// hash of a short list of ids could be matched against guesses.
func (k *Keyring) planMAC() hash.Hash {
	m := hmac.New(sha256.New, k.hashKey)
	m.Write([]byte("plan\x00"))
	return m
}

// requestHash is a keyed hash of a Submit payload, stored with the erasure it created (or with the
// record of a deduplicated Submit). It is keyed because the payload holds the subject's identifier.
func (k *Keyring) requestHash(canonical []byte) string {
	m := hmac.New(sha256.New, k.hashKey)
	m.Write(canonical)
	return hex.EncodeToString(m.Sum(nil))
}

// normalizeSubject gives the form in which two spellings of one identifier compare equal: e-mail
// addresses ignore case and surrounding space, phone numbers keep only their digits, explicit
// targets are sorted. Customer and consumer ids are exact.
func normalizeSubject(s Subject) string {
	switch s.Kind {
	case SubjectEmail:
		return strings.ToLower(strings.TrimSpace(s.Value))
	case SubjectPhone:
		return strings.Map(func(r rune) rune {
			if unicode.IsDigit(r) {
				return r
			}
			return -1
		}, s.Value)
	case SubjectTargets:
		c := append([]string(nil), s.ConversationIDs...)
		e := append([]string(nil), s.EngagementIDs...)
		sort.Strings(c)
		sort.Strings(e)
		return "c:" + strings.Join(c, ",") + "\x00e:" + strings.Join(e, ",")
	default:
		return s.Value
	}
}

// dataKey is a fresh per-erasure key, in the clear and wrapped by the master key.
type dataKey struct {
	plain   []byte
	wrapped []byte
}

// newDataKey makes a random data key and wraps it for the erasure id (the id is bound in as
// associated data, so a wrapped key cannot be moved to another erasure).
func (k *Keyring) newDataKey(erasureID string) (dataKey, error) {
	plain := make([]byte, 32)
	if _, err := rand.Read(plain); err != nil {
		return dataKey{}, err
	}
	wrapped, err := sealWith(k.wrap, plain, []byte(k.id+"\x00"+erasureID))
	if err != nil {
		return dataKey{}, err
	}
	return dataKey{plain: plain, wrapped: wrapped}, nil
}

// unwrap recovers an erasure's data key.
func (k *Keyring) unwrap(erasureID string, wrapped []byte) ([]byte, error) {
	return openWith(k.wrap, wrapped, []byte(k.id+"\x00"+erasureID))
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
