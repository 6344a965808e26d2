package service

import (
	"bytes"
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"time"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// Keys on a store shared by several erasured processes (replicas on different hosts).
//
// With a key directory on each host, a data key wrapped by a period key that another replica
// made could not be opened, and two replicas starting a period at once would make two keys of
// one name. So on a shared store (OpenSharedKeyring) the root secret and the period keys are
// records of the store's WrappingKeys bucket, one per key, each sealed by the master key exactly
// as a key file is (the key's name and the master key's id as associated data: a record moved
// under another name, or opened under another master key id, is refused). The master key stays
// a file or secret on each host, the same on every replica.
//
//   - A key is created if absent, in one transaction that reads the name first and keeps the
//     stored key if another replica made it (the store runs the function again after a
//     conflict): every replica wraps with the same key of a period.
//   - Only the leader's keeper rolls period keys and destroys them; the other replicas learn of a
//     new period from the store. A transaction that commits a data key checks, in the
//     transaction, that the key is wrapped by the newest period key the store holds
//     (committableIn), and wraps it again by that one if not. A period key is destroyed only once
//     it is no longer the newest, so a transaction that read it as the newest and would commit
//     after its destruction read what has changed since: the store runs it again, and it wraps
//     by the current key. No data key wrapped by a destroyed key is committed.
//   - A replica that meets a data key wrapped by a period key it does not hold reads the store
//     and keeps the key; one the store no longer holds was destroyed (errShredded).
//   - Destroying a period key deletes its record in a transaction. Each replica forgets it when
//     it reloads the keys: the leader at every roll, the others before a new data key, once
//     they met a newer period key or a minute after their last reload (reloadIfDue).
//
// What shredding means on a shared store. Deleting the record does not by itself make the key
// unrecoverable: etcd keeps every version of a key. The deleted record's last value (the period
// key, sealed by the master key) stays in etcd's history until etcd compacts past the deletion,
// then in the freed pages of each member's database file until they are reused or the member is
// defragmented, in each member's write-ahead log and snapshot files until etcd purges them, and
// in every etcd snapshot or backup taken before. erasured's own compaction
// (history.keep_revisions) compacts its event log only, never etcd's history. So the operator must run
// etcd with auto-compaction of hours, not days (--auto-compaction-mode=periodic
// --auto-compaction-retention=1h), defragment members regularly, and keep etcd backups no longer
// than the privacy policy allows data to outlive its retention. Each of those copies opens only
// with the master key, as an old copy of a key directory does.

// sharedKeys keeps the keys in the WrappingKeys bucket of a shared store.
type sharedKeys struct {
	db Store
}

var _ keyStore = (*sharedKeys)(nil)

// periodScanEnd is above every period key's name in WrappingKeys, and below "root".
var periodScanEnd = []byte(periodPrefix + "\xff")

// OpenSharedKeyring is OpenKeyring for a store shared with other erasured processes (replicas on
// other hosts): the root secret and the period keys are kept in db itself, sealed by the master
// key, so that every process uses the same keys. Every replica opens it with the same master key
// and id. A new store gets a root secret equal to master, as a new key directory does.
//
// Shredding on a shared store: destroying a period key deletes its record, but an etcd store
// keeps the deleted value (sealed by the master key) in its history until etcd compacts past
// the deletion, in its members' files until they are defragmented and their logs purged, and in
// every etcd backup taken before. erasured's compaction does not compact etcd's history: etcd's
// auto-compaction must be set (hours, not days) and etcd backups kept no longer than the
// retention allows.
func OpenSharedKeyring(ctx context.Context, id string, master []byte, db Store, period time.Duration, now time.Time) (*Keyring, error) {
	k, err := NewKeyring(id, master)
	if err != nil {
		return nil, err
	}
	if period <= 0 {
		return nil, errors.New("key period must be positive")
	}
	if db == nil {
		return nil, errors.New("shared keyring: the store is required")
	}
	// Before any key is written: a store holding nothing gets this binary's layout version.
	if err := schema.Ensure(ctx, db); err != nil {
		return nil, fmt.Errorf("shared keyring: %w", err)
	}
	k.shared = &sharedKeys{db: db}
	if err := k.open(ctx, k.shared, master, period, now); err != nil {
		return nil, err
	}
	return k, nil
}

func keyRecordName(name string) string { return "wrapping key record " + name }

func (s *sharedKeys) read(name string, wrap cipher.AEAD, masterID string) (keyFile, []byte, error) {
	var raw []byte
	if err := s.db.View(func(tx store.Tx) error {
		raw = tx.Get(schema.WrappingKeys, []byte(name))
		return nil
	}); err != nil {
		return keyFile{}, nil, err
	}
	if raw == nil {
		return keyFile{}, nil, fmt.Errorf("%s: %w", keyRecordName(name), fs.ErrNotExist)
	}
	return openKeyFile(keyRecordName(name), name, raw, wrap, masterID)
}

func (s *sharedKeys) create(ctx context.Context, kf keyFile, secret []byte, wrap cipher.AEAD) (keyFile, []byte, error) {
	raw, err := sealKeyFile(kf, secret, wrap)
	if err != nil {
		return keyFile{}, nil, err
	}
	var stored []byte // what the name holds once committed: set by each run of the function
	err = s.db.Update(ctx, func(tx store.Tx) error {
		if stored = tx.Get(schema.WrappingKeys, []byte(kf.Name)); stored != nil {
			return nil // another replica made it first
		}
		stored = raw
		return tx.Put(schema.WrappingKeys, []byte(kf.Name), raw)
	})
	if err != nil {
		return keyFile{}, nil, err
	}
	return openKeyFile(keyRecordName(kf.Name), kf.Name, stored, wrap, kf.MasterKeyID)
}

func (s *sharedKeys) periods(wrap cipher.AEAD, masterID string) ([]*periodKey, error) {
	type rec struct {
		name string
		raw  []byte
	}
	var recs []rec
	err := s.db.View(func(tx store.Tx) error {
		return tx.Scan(schema.WrappingKeys, []byte(periodPrefix), func(k, v []byte) (bool, error) {
			if !bytes.HasPrefix(k, []byte(periodPrefix)) {
				return false, nil
			}
			recs = append(recs, rec{string(k), bytes.Clone(v)})
			return true, nil
		})
	})
	if err != nil {
		return nil, err
	}
	out := make([]*periodKey, 0, len(recs))
	for _, r := range recs {
		pk, err := openPeriodRecord(r.name, r.raw, wrap, masterID)
		if err != nil {
			return nil, err
		}
		out = append(out, pk)
	}
	return out, nil
}

func openPeriodRecord(name string, raw []byte, wrap cipher.AEAD, masterID string) (*periodKey, error) {
	kf, secret, err := openKeyFile(keyRecordName(name), name, raw, wrap, masterID)
	if err != nil {
		return nil, err
	}
	return newPeriodKey(kf, secret)
}

// destroy deletes the record of the period key name. It refuses the newest period key: the one
// every replica's new data keys must be wrapped by (committableIn).
func (s *sharedKeys) destroy(ctx context.Context, name string) error {
	return s.db.Update(ctx, func(tx store.Tx) error {
		newest, _, err := newestRecord(tx)
		if err != nil {
			return err
		}
		if newest == name {
			return fmt.Errorf("period key %s is the newest in the store", name)
		}
		return tx.Delete(schema.WrappingKeys, []byte(name))
	})
}

// finishLeftovers has nothing to do: a record is written or deleted in one transaction.
func (s *sharedKeys) finishLeftovers() ([]string, error) { return nil, nil }

func (s *sharedKeys) String() string { return "the store's " + schema.WrappingKeys.Name + " bucket" }

// newestRecord is the name and record of the newest period key in tx's store; "" if there is
// none.
func newestRecord(tx store.Tx) (name string, raw []byte, err error) {
	err = tx.ScanReverse(schema.WrappingKeys, periodScanEnd, func(k, v []byte) (bool, error) {
		if bytes.HasPrefix(k, []byte(periodPrefix)) {
			name, raw = string(k), bytes.Clone(v)
		}
		return false, nil
	})
	return name, raw, err
}

// committableIn reports whether the wrapped data key w may be committed in tx. On a shared store
// it must be wrapped by the newest period key of the store, read in tx, and that key must not be
// about to be destroyed; the newest key becomes the keyring's current one, so that a key wrapped
// again after a false answer (wrapKey) is wrapped by it. Otherwise it is committable.
func (k *Keyring) committableIn(tx store.Tx, w []byte) bool {
	if k.shared == nil {
		return k.committable(w)
	}
	name, raw, err := newestRecord(tx)
	if err == nil && name != "" {
		_, err = k.adopt(name, raw)
	}
	if err != nil {
		k.logger().Error("shared keyring: the newest period key does not read", "err", err)
		return false
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	return name != "" && wrappedBy(w) == name && !k.doomed[name]
}

// unwrapIn is unwrap inside the transaction tx: on a shared store, a period key the keyring does
// not hold is read in tx.
func (k *Keyring) unwrapIn(tx store.Tx, purpose string, wrapped []byte) ([]byte, error) {
	return k.unwrapWith(purpose, wrapped, func(name string) (*periodKey, error) {
		if k.isGone(name) {
			return nil, nil
		}
		return k.adopt(name, tx.Get(schema.WrappingKeys, []byte(name)))
	})
}

// fetchPeriod reads the period key name from the shared store, in a View of its own; nil if the
// store holds none (it was destroyed).
func (k *Keyring) fetchPeriod(name string) (*periodKey, error) {
	if k.isGone(name) {
		return nil, nil
	}
	var raw []byte
	if err := k.shared.db.View(func(tx store.Tx) error {
		raw = tx.Get(schema.WrappingKeys, []byte(name))
		return nil
	}); err != nil {
		return nil, err
	}
	return k.adopt(name, raw)
}

func (k *Keyring) isGone(name string) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.gone[name]
}

// adopt keeps the period key name, whose record in the shared store is raw (nil: there is none,
// it was destroyed), and returns it. A key newer than the current one becomes current, and the
// keys are reloaded before the next new data key. A data key names only a period key that was
// stored before it, so a record found missing was destroyed and never comes back.
func (k *Keyring) adopt(name string, raw []byte) (*periodKey, error) {
	if raw == nil {
		k.mu.Lock()
		if k.gone == nil {
			k.gone = map[string]bool{}
		}
		k.gone[name] = true
		k.mu.Unlock()
		return nil, nil
	}
	pk := k.periodKey(name)
	if pk != nil {
		k.mu.RLock()
		held := k.current != nil && k.current.name >= name
		k.mu.RUnlock()
		if held { // what every transaction finds until the next roll: no write lock
			return pk, nil
		}
	} else {
		var err error
		if pk, err = openPeriodRecord(name, raw, k.wrap, k.id); err != nil {
			return nil, err
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	pk = k.addPeriod(pk)
	if k.current == nil || pk.name > k.current.name {
		k.current, k.reloadDue = pk, true
	}
	return pk, nil
}

// reload reads the period keys of the shared store again: it adds those other processes made and
// forgets those they destroyed. The newest becomes current if it is newer. k.changeMu is held.
//
// A key held but not read is dropped, not marked gone: it may have been made after the read by
// a process that went by another key period. Should a data key name it, unwrap reads it again.
func (k *Keyring) reload() error {
	pks, err := k.ks.periods(k.wrap, k.id)
	if err != nil || len(pks) == 0 {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.reloadDue, k.reloaded = false, time.Now()
	newest := pks[len(pks)-1].name
	stored := make(map[string]bool, len(pks))
	for _, pk := range pks {
		stored[pk.name] = true
	}
	kept := k.periods[:0:0]
	for _, pk := range k.periods {
		if stored[pk.name] || pk.name > newest { // a key adopted after the read is kept
			kept = append(kept, pk)
		} else {
			delete(k.doomed, pk.name)
		}
	}
	k.periods = kept
	for _, pk := range pks {
		k.addPeriod(pk) // keeps the copy held, and when it was retired
	}
	if last := k.periods[len(k.periods)-1]; k.current == nil || !slices.Contains(k.periods, k.current) || last.name > k.current.name {
		k.current = last
	}
	return nil
}

// sharedReloadEvery is how often a keyring on a shared store reloads its keys before a new data
// key: a replica that is not the leader then wraps by the current period key within that much
// of the leader's roll, and forgets destroyed keys as soon.
const sharedReloadEvery = time.Minute

// reloadIfDue reloads the keys of a shared store when the keyring met a period key newer than its
// current one, or sharedReloadEvery after the last reload (by this host's clock). A data key
// wrapped by a key that has stopped being the newest meanwhile is wrapped again when it is
// committed (committableIn); reloading keeps that rare, and keeps the wrap fresh where the
// committing transaction does not check.
func (k *Keyring) reloadIfDue() error {
	if k.shared == nil {
		return nil
	}
	k.mu.RLock()
	due := k.reloadDue || time.Since(k.reloaded) >= sharedReloadEvery
	k.mu.RUnlock()
	if !due {
		return nil
	}
	k.changeMu.Lock()
	defer k.changeMu.Unlock()
	return k.reload()
}

// checkShared refuses a keyring whose period keys other processes sharing the store cannot
// read: a key directory is on one host. A keyring with no period keys (NewKeyring: data keys
// wrapped by the master key, the same on every replica) is accepted.
func (k *Keyring) checkShared(shared bool) error {
	if shared && k.ks != nil && k.shared == nil {
		return errors.New("service: the store is shared with other processes but the period keys are in a key directory of this host: " +
			"open the keyring with OpenSharedKeyring")
	}
	return nil
}

// RotateSharedKeys seals every key of a shared store again under the new master key, in one
// transaction: RotateKeyDir for a shared store. Keys sealed by oldID are opened with oldMaster;
// keys already sealed by newID are checked with newMaster and left. Every replica must be
// stopped first and started again with the new master key: a replica still holding the old one
// opens no key the store holds afterwards. Data keys wrapped directly by the master key must be
// moved under period keys first (Service.MigrateKeys).
func RotateSharedKeys(ctx context.Context, db Store, oldID string, oldMaster []byte, newID string, newMaster []byte) (RotateStats, error) {
	st := RotateStats{OldKeyID: oldID, NewKeyID: newID}
	oldWrap, newWrap, err := rotationWraps(oldID, oldMaster, newID, newMaster)
	if err != nil {
		return st, err
	}
	err = db.Update(ctx, func(tx store.Tx) error {
		st.Rewrapped, st.AlreadyNew = 0, 0 // the function may run more than once
		type rec struct {
			name string
			raw  []byte
		}
		var recs []rec
		if err := tx.Scan(schema.WrappingKeys, nil, func(k, v []byte) (bool, error) {
			recs = append(recs, rec{string(k), bytes.Clone(v)})
			return true, nil
		}); err != nil {
			return err
		}
		for _, r := range recs {
			kf, secret, err := openKeyFile(keyRecordName(r.name), r.name, r.raw, oldWrap, oldID)
			if errors.Is(err, ErrOtherMasterKey) {
				if _, _, err := openKeyFile(keyRecordName(r.name), r.name, r.raw, newWrap, newID); err != nil {
					return err
				}
				st.AlreadyNew++
				continue
			}
			if err != nil {
				return err
			}
			kf.MasterKeyID = newID
			raw, err := sealKeyFile(kf, secret, newWrap)
			if err != nil {
				return err
			}
			if err := tx.Put(schema.WrappingKeys, []byte(r.name), raw); err != nil {
				return err
			}
			st.Rewrapped++
		}
		return nil
	})
	return st, err
}

// ReadSharedReceiptKey is ReadReceiptKey for a shared store: the receipt-signing key derived
// from the root secret the store holds (the master key itself if it holds none yet), read
// without writing anything.
func ReadSharedReceiptKey(masterID string, master []byte, db Store) (ReceiptKey, error) {
	return readReceiptKey(masterID, master, &sharedKeys{db: db})
}

// readReceiptKey is the receipt-signing key derived from the root secret ks holds, or from the
// master key where ks holds none yet (what a first start makes).
func readReceiptKey(masterID string, master []byte, ks keyStore) (ReceiptKey, error) {
	k, err := NewKeyring(masterID, master)
	if err != nil {
		return ReceiptKey{}, err
	}
	_, root, err := ks.read(rootKeyName, k.wrap, masterID)
	switch {
	case err == nil:
		k.setRoot(root)
	case !errors.Is(err, fs.ErrNotExist):
		return ReceiptKey{}, fmt.Errorf("root key: %w", err)
	}
	return ReceiptKey{ID: k.SigningKeyID(), PublicKey: k.PublicKey()}, nil
}
