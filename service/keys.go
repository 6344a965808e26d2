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
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
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

	// changeMu serializes the changes of the set of period keys (roll, destroyPeriod, reload)
	// that wait on the key store. It is never taken inside a transaction function, mu is never
	// held while the key store is waited on: a store's committer may run a transaction
	// function that takes mu while a roll waits for its commit.
	changeMu sync.Mutex

	mu      sync.RWMutex
	periods []*periodKey // oldest first
	current *periodKey   // nil without a key directory
	// doomed are the period keys about to be destroyed (see doom): no data key wrapped by one
	// may be committed any more.
	doomed map[string]bool
	// On a shared store: gone are period keys found destroyed there, and reloadDue says a
	// newer period key was met, so that the next new data key reloads the list first (and
	// forgets the keys destroyed since).
	gone      map[string]bool
	reloadDue bool

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

// dataKey is a fresh per-erasure key, in the clear and wrapped.
type dataKey struct {
	plain   []byte
	wrapped []byte
}

// newDataKey makes a random data key and wraps it for the erasure id (the id is bound in as
// associated data, so a wrapped key cannot be moved to another erasure).
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
// whose period key was destroyed is errShredded.
// On a shared store, a key named by no period key the keyring holds is looked for in the store,
// in a View of its own: inside a transaction, unwrapIn reads it there instead.
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

func (k *Keyring) periodKey(name string) *periodKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	for _, pk := range k.periods {
		if pk.name == name {
			return pk
		}
	}
	return nil
}

// roll makes the period key of now's period current, creating it if needed, and returns its
// name ("" without a key directory). A new key is due when a period of the configured length
// began after the newest key's start, or when the newest key was current for its own period
// (the key period may have been longer when it was made). A clock that went back keeps the
// newest key current, and a clock set far forward is not believed (effectiveNow). On a shared
// store the keyring first reloads the period keys, so that it goes by the keys other processes
// made and forgets the ones they destroyed.
func (k *Keyring) roll(now time.Time) (string, error) {
	if k.ks == nil {
		return "", nil
	}
	k.changeMu.Lock()
	defer k.changeMu.Unlock()
	if k.shared != nil {
		if err := k.reload(); err != nil {
			return "", err
		}
	}
	k.mu.Lock()
	now = k.effectiveNow(now.UTC())
	start := now.Truncate(k.period)
	if n := len(k.periods); n > 0 {
		last := k.periods[n-1]
		ownEnd := last.period > 0 && !now.Before(last.start.Add(last.period))
		if !start.After(last.start) && !ownEnd {
			k.current = last
			k.mu.Unlock()
			return last.name, nil
		}
		if !start.After(last.start) {
			start = last.start.Add(last.period) // its own period ended before the configured grid's next
		}
	}
	k.mu.Unlock()
	secret, err := newSecret()
	if err != nil {
		return "", err
	}
	name := periodKeyName(start)
	kf := keyFile{Name: name, MasterKeyID: k.id, Created: now, Start: start, Period: k.period}
	// Another process may make this period's key first: create shares it rather than replace it.
	kf, secret, err = k.ks.create(context.Background(), kf, secret, k.wrap)
	if err != nil {
		return "", fmt.Errorf("new period key: %w", err)
	}
	pk, err := newPeriodKey(kf, secret)
	if err != nil {
		return "", err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	pk = k.addPeriod(pk)
	if k.current != nil && k.current != pk {
		k.current.retired = now
	}
	k.current = pk
	return name, nil
}

// addPeriod adds pk to the period keys in order of start, unless a key of its name is there
// already; it returns the key the keyring holds under the name. k.mu is held.
func (k *Keyring) addPeriod(pk *periodKey) *periodKey {
	i, found := slices.BinarySearchFunc(k.periods, pk.name, func(p *periodKey, name string) int { return strings.Compare(p.name, name) })
	if found {
		return k.periods[i]
	}
	k.periods = slices.Insert(k.periods, i, pk)
	return pk
}

// maxClockStep is how far the host's wall clock may be set forward, beyond the time its
// monotonic clock measured, before roll stops believing it.
const maxClockStep = time.Minute

// effectiveNow is the time roll goes by. A wall clock set forward while the process runs (a bad
// time source, a virtual machine resumed with a wrong clock) would make the key of a far future
// period; once the clock came back, that key would stay current, and every data key it wraps
// readable in old copies of the database, until real time reached its period. So while the wall
// clock is more than maxClockStep ahead of the time the monotonic clock measured since the
// keyring was opened, roll goes by the latter, and logs an error. A legitimate step (a clock
// corrected forward, a host resumed from suspend, which the monotonic clock does not count) only
// makes keys roll that much later until the next start, as downtime does. It is called with
// k.mu held.
func (k *Keyring) effectiveNow(now time.Time) time.Time {
	var step time.Duration
	if k.clockStep != nil {
		step = k.clockStep()
	} else if !k.opened.IsZero() {
		wall := time.Now()
		step = wall.Round(0).Sub(k.opened.Round(0)) - wall.Sub(k.opened)
	}
	if step <= maxClockStep {
		k.stepLogged = 0
		return now
	}
	if d := step - k.stepLogged; d > maxClockStep || d < -maxClockStep {
		k.stepLogged = step
		k.logger().Error("the host's clock was set forward while running: period keys roll by the time that passed instead",
			"clock_step", step.Round(time.Second).String())
	}
	return now.Add(-step)
}

func (k *Keyring) logger() *slog.Logger {
	if k.log != nil {
		return k.log
	}
	return slog.Default()
}

// keyFor names the period key a data key that must stay readable until t plus retention should
// be wrapped by: the newest key whose period began by t, or the current key if there is none.
func (k *Keyring) keyFor(t time.Time) string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.current == nil {
		return ""
	}
	for i := len(k.periods) - 1; i >= 0; i-- {
		if !k.periods[i].start.After(t) {
			return k.periods[i].name
		}
	}
	return k.current.name
}

// rewrap wraps the data key w (for purpose) again, by the period key named target. An error
// wrapping errUnreadable means the keyring does not open w.
func (k *Keyring) rewrap(purpose string, w []byte, target string) ([]byte, error) {
	plain, err := k.unwrap(purpose, w)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUnreadable, err)
	}
	pk := k.periodKey(target)
	if pk == nil {
		return nil, fmt.Errorf("period key %s is not loaded", target)
	}
	return wrapWith(pk, purpose, plain)
}

// periodInfo is a period key's name and when it stopped being current (zero: it still is).
type periodInfo struct {
	name string
	end  time.Time
	// retired is when this keyring stopped using it as the current key, by the clock roll was
	// given; zero if it was not current since the keyring was opened.
	retired time.Time
}

// pastPeriods lists the period keys that are no longer current, oldest first, with when each
// stopped being current.
func (k *Keyring) pastPeriods() []periodInfo {
	k.mu.RLock()
	defer k.mu.RUnlock()
	var out []periodInfo
	for i := 0; i+1 < len(k.periods); i++ {
		if k.periods[i] == k.current {
			break
		}
		// A key stops being current when its successor is made (after its successor's start, by
		// up to a keeper interval, or by the downtime if the service was down then), and at the
		// latest when its own period ends if the service was running then, since roll makes the
		// successor by then. The key period configured now may differ from the one the key was
		// made with; a key file that does not record its own gets no such bound.
		pk, next := k.periods[i], k.periods[i+1]
		end := next.start
		if next.created.After(end) {
			end = next.created
		}
		if own := pk.start.Add(pk.period); pk.period > 0 && own.Before(end) {
			end = own
		}
		out = append(out, periodInfo{name: pk.name, end: end, retired: pk.retired})
	}
	return out
}

// destroyPeriod destroys the period key name: in the key store and the copy in memory.
func (k *Keyring) destroyPeriod(ctx context.Context, name string) error {
	k.changeMu.Lock()
	defer k.changeMu.Unlock()
	k.mu.RLock()
	current := k.current != nil && k.current.name == name
	k.mu.RUnlock()
	if current {
		return fmt.Errorf("period key %s is current", name)
	}
	if err := k.ks.destroy(ctx, name); err != nil {
		return err
	}
	k.mu.Lock()
	k.periods = slices.DeleteFunc(k.periods, func(pk *periodKey) bool { return pk.name == name })
	delete(k.doomed, name)
	k.mu.Unlock()
	// A temporary file left by an interrupted write since the keyring was opened (within a
	// minute of a crash, too young to be destroyed then) may hold a copy of the key.
	return k.finishLeftovers()
}

// finishLeftovers destroys what interrupted writes and destructions left in the key directory
// (keyDir.finishLeftovers), and logs it.
func (k *Keyring) finishLeftovers() error {
	left, err := k.ks.finishLeftovers()
	if len(left) > 0 {
		k.logger().Warn("key directory: destroyed the files of interrupted key writes and destructions", "dir", k.ks.String(), "files", left)
	}
	return err
}

// PeriodKeys lists the names of the period keys the keyring holds, oldest first.
func (k *Keyring) PeriodKeys() []string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make([]string, len(k.periods))
	for i, pk := range k.periods {
		out[i] = pk.name
	}
	return out
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
