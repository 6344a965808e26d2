package service

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// Fingerprints and request hashes at rest.
//
// The Submit index compares identifiers by their root fingerprints (Keyring.Fingerprint) and
// retries by their request hashes, both HMACs under keys derived from the root secret, which is
// kept for the service's life. Whoever holds the master key can compute them for guessed
// identifiers (every phone number, say), so none is ever stored in the clear: an old copy of the
// database would give the identifier away long after the erasure was shredded. A record seals
// them with its data key (record.Index, below); a deduplicated Submit's entry in Requests seals
// its request hash with the data key of the erasure it points at. Shredding destroys the data
// key, and with it every way to read them.
//
// One exception: a store shared with other processes keeps the Submit index in the store
// (shared.go), where the other processes' transactions read it, so the root fingerprints of an
// open erasure are keys there, in the clear, while it is open. The transaction that ends it
// deletes them; its sealed subject, which the same master key opens, says as much meanwhile.
// The request hashes there are sealed, as in Requests.
//
// What callers see (Status, events, Watch, plans, receipts) are public fingerprints: HMACs
// under a key derived from the erasure's own data key (publicFPKey). They are stable for the
// erasure's life and let a caller tell its identifiers apart, but two erasures of one subject
// have different ones, and once the data key is destroyed nothing links them to an identifier.
//
// Records and entries written before (root fingerprints and hashes in the clear) are sealed by
// New (sealClearFields). What such a database holds elsewhere is not rewritten: the change
// history (events, until compacted) and signed receipts keep the root fingerprints they were
// written with.

// indexSecrets is what a record seals for the Submit index.
type indexSecrets struct {
	hash    [32]byte // the request hash of the Submit that created the erasure
	hasHash bool     // false for erasures created before their record kept it (Requests has it)
	fps     []string // root fingerprints (hex): the subject's, then the aliases' in order
}

// indexVersion starts a sealed index; the layout after it is one flags byte (1: a request hash
// follows), the 32-byte hash, one byte of fingerprint count, and the 32-byte fingerprints.
const indexVersion = 1

func indexAAD(id string) []byte { return []byte("index\x00" + id) }

// sealIndex seals sec for erasure id with its data key.
func sealIndex(key []byte, id string, sec indexSecrets) ([]byte, error) {
	if len(sec.fps) > 255 {
		return nil, fmt.Errorf("sealed index: %d fingerprints", len(sec.fps))
	}
	plain := make([]byte, 0, 3+32+32*len(sec.fps))
	plain = append(plain, indexVersion, 0)
	if sec.hasHash {
		plain[1] = 1
		plain = append(plain, sec.hash[:]...)
	}
	plain = append(plain, byte(len(sec.fps)))
	for _, fp := range sec.fps {
		var raw [32]byte
		if n, err := hex.Decode(raw[:], []byte(fp)); err != nil || n != len(raw) {
			return nil, errors.New("sealed index: a fingerprint is not 32 hex bytes")
		}
		plain = append(plain, raw[:]...)
	}
	return seal(key, plain, indexAAD(id))
}

// openIndex opens what sealIndex sealed.
func openIndex(key []byte, id string, sealed []byte) (indexSecrets, error) {
	plain, err := open(key, sealed, indexAAD(id))
	if err != nil {
		return indexSecrets{}, fmt.Errorf("open the sealed index of erasure %s: %w", id, err)
	}
	bad := fmt.Errorf("sealed index of erasure %s is malformed", id)
	if len(plain) < 3 || plain[0] != indexVersion {
		return indexSecrets{}, bad
	}
	var sec indexSecrets
	rest := plain[2:]
	if plain[1]&1 != 0 {
		if len(rest) < 33 {
			return indexSecrets{}, bad
		}
		sec.hasHash = true
		copy(sec.hash[:], rest)
		rest = rest[32:]
	}
	n := int(rest[0])
	rest = rest[1:]
	if len(rest) != 32*n {
		return indexSecrets{}, bad
	}
	sec.fps = make([]string, n)
	for i := range sec.fps {
		sec.fps[i] = hex.EncodeToString(rest[32*i : 32*i+32])
	}
	return sec, nil
}

// indexOf opens r's sealed index, inside a transaction; it returns r's data key too.
func (s *Service) indexOf(tx store.Tx, r *record) (indexSecrets, []byte, error) {
	key, err := s.dataKeyOf(tx, r)
	if err != nil {
		return indexSecrets{}, nil, err
	}
	sec, err := s.secretsOf(r, key)
	return sec, key, err
}

// secretsOf are r's index secrets, opened with its data key; a record New could not seal (its
// data key was unreadable) holds them in the clear, and needs no key.
func (s *Service) secretsOf(r *record, key []byte) (indexSecrets, error) {
	if r.Index == nil {
		return clearSecrets(r.PayloadHash, r.Fingerprint, r.Aliases)
	}
	return openIndex(key, r.ID, r.Index)
}

func requestAAD(erasureID, requestID string) []byte {
	return []byte("request\x00" + erasureID + "\x00" + requestID)
}

// sealRequestHash seals the request hash of a deduplicated Submit with the data key of the
// erasure it was answered with.
func sealRequestHash(key []byte, erasureID, requestID string, hash [32]byte) ([]byte, error) {
	return seal(key, hash[:], requestAAD(erasureID, requestID))
}

func openRequestHash(key []byte, e requestEntry) ([32]byte, error) {
	var h [32]byte
	plain, err := open(key, e.SealedHash, requestAAD(e.ErasureID, e.RequestID))
	if err == nil && len(plain) != len(h) {
		err = errors.New("not a hash")
	}
	if err != nil {
		return h, fmt.Errorf("open the request hash of a Submit answered with erasure %s: %w", e.ErasureID, err)
	}
	copy(h[:], plain)
	return h, nil
}

// decodeHash decodes a request hash from hex.
func decodeHash(s string) ([32]byte, error) {
	var h [32]byte
	if n, err := hex.Decode(h[:], []byte(s)); err != nil || n != len(h) {
		return h, fmt.Errorf("request hash is not %d hex bytes", len(h))
	}
	return h, nil
}

// publicRefs are the public refs of ids (their fingerprints under the erasure's public key pk).
func publicRefs(pk []byte, account string, ids []Subject) []identRef {
	out := make([]identRef, len(ids))
	for i, id := range ids {
		out[i] = identRef{Kind: id.Kind, Fingerprint: fingerprintWith(pk, account, id), Digits: digitsOnly(id)}
	}
	return out
}

// clearSecrets are the index secrets of a record that still holds them in the clear.
func clearSecrets(payloadHash, fingerprint string, aliases []identRef) (indexSecrets, error) {
	sec := indexSecrets{fps: []string{fingerprint}}
	for _, a := range aliases {
		sec.fps = append(sec.fps, a.Fingerprint)
	}
	if payloadHash != "" {
		h, err := decodeHash(payloadHash)
		if err != nil {
			return sec, err
		}
		sec.hash, sec.hasHash = h, true
	}
	return sec, nil
}

// clearFields lists what the index load found still holding root fingerprints or request
// hashes in the clear: erasure ids and Requests keys.
type clearFields struct {
	records []string
	entries []string
}

// sealClearFields seals, with each erasure's data key, the root fingerprints and request hash
// its record holds in the clear, replaces its fingerprints by public ones, and seals the request
// hashes of Requests entries. An entry whose erasure is shredded or missing loses its hash: a
// retry of its request_id is refused, as one of a shredded erasure is. A record whose data key
// does not unwrap (a wrong master key, or a destroyed period key) is left as it is, with its
// entries: the next start with the right keys seals it, or the keeper shreds it.
func (s *Service) sealClearFields(ctx context.Context, c clearFields) error {
	unreadable := 0
	err := inChunks(ctx, s, c.records, func(tx store.Tx, id string) error {
		r, err := getRecord(tx, id)
		if err != nil || r == nil || r.Index != nil || !r.ShredTime.IsZero() {
			return err
		}
		sec, err := clearSecrets(r.PayloadHash, r.Fingerprint, r.Aliases)
		if err != nil {
			return err
		}
		key, err := s.dataKeyOf(tx, r)
		if err != nil {
			unreadable++
			return nil
		}
		sub, err := s.unsealSubject(tx, r)
		if err != nil {
			return err
		}
		if len(sub.Aliases) != len(r.Aliases) {
			return fmt.Errorf("erasure %s seals %d aliases and lists %d", r.ID, len(sub.Aliases), len(r.Aliases))
		}
		if r.Index, err = sealIndex(key, r.ID, sec); err != nil {
			return err
		}
		pk := publicFPKey(key)
		r.Fingerprint = fingerprintWith(pk, r.AccountID, sub.Subject)
		for i, a := range publicRefs(pk, r.AccountID, sub.Aliases) {
			r.Aliases[i].Fingerprint = a.Fingerprint
		}
		r.PayloadHash = ""
		if r.State.Final() && r.PurgeTime.IsZero() {
			r.PurgeTime = finalTimeOf(r).Add(s.cfg.Retention)
		}
		// No event: the public fingerprint changes once, on upgrade, before the service serves.
		return putQuiet(tx, r)
	})
	if err != nil {
		return err
	}
	err = inChunks(ctx, s, c.entries, func(tx store.Tx, k string) error {
		v := tx.Get(schema.Requests, []byte(k))
		var e requestEntry
		if v == nil {
			return nil
		}
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("decode idempotency record: %w", err)
		}
		if e.PayloadHash == "" {
			return nil
		}
		h, err := decodeHash(e.PayloadHash)
		if err != nil {
			return err
		}
		e.PayloadHash = ""
		r, err := getRecord(tx, e.ErasureID)
		if err != nil {
			return err
		}
		if r != nil && r.ShredTime.IsZero() && h != ([32]byte{}) {
			key, err := s.dataKeyOf(tx, r)
			if err != nil {
				return nil // left in the clear, like its erasure
			}
			if e.SealedHash, err = sealRequestHash(key, e.ErasureID, e.RequestID, h); err != nil {
				return err
			}
		}
		if v, err = json.Marshal(e); err != nil {
			return err
		}
		return tx.Put(schema.Requests, []byte(k), v)
	})
	if err != nil {
		return err
	}
	s.log.Info("sealed the fingerprints and request hashes stored in the clear",
		"erasures", len(c.records)-unreadable, "idempotency_records", len(c.entries), "unreadable", unreadable)
	return nil
}
