package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// The Submit index in a shared store.
//
// When several erasured processes share one store (Config.Shared: replicas over etcd), each
// serves Submit, and none's memory sees what the others commit: two of them taking the same
// request_id, or the same subject, at once would both create an erasure. So there the store
// decides. Submit's transaction reads, and writes, the SubmitIndex bucket (service/schema):
//
//   - "r/" request_id: the requestEntry of the Submit that took it (the erasure, whether it
//     was deduplicated onto it, and its payload hash sealed with that erasure's data key);
//   - "s/" account, root fingerprint: the open erasures holding that identifier (one, unless a
//     join brought an identifier another open erasure had);
//   - "e/" erasure id: the identifiers it is listed under, so that they are removed when it
//     ends (indexClosed) or is shredded, without its data key;
//   - "m/shared": the store was shared from its first erasure, so the keys cover every one.
//
// The store's Update is serializable across processes: a function that read a key another
// process changed meanwhile is run again on fresh data. Two Submits of one request_id or one
// subject both read its key, so one of them runs again and finds the other's erasure: it is
// answered as a retry, or deduplicated onto it, as in one process.
//
// The memory index stays: it serializes the Submits of one process (claim), so that they do not
// make each other run again, and a request_id it knows is answered from a read (its stored entry
// and erasure checked, so that a shredding by another process shows). What memory answers
// alone on a store of one process (a request_id never seen, the open erasures of a subject, the
// accounts with unreadable data keys) the store answers here: none of it is read from memory.
// Memory is kept for this process's commits only and is a cache.
//
// What else a replica keeps in memory, and whether what it answers depends on it:
//
//   - The erasure counts (Stats: the metrics' gauges by state and at risk), the quota used and
//     the held batches are read from the store on each call (stats.go): exact on every replica.
//   - The commit hooks that are not the Submit index only report: log lines, and the
//     OnStateChange and OnIncident callbacks, which feed the server's counters of state changes
//     and incidents. Each process counts the changes it committed (a follower the erasures its
//     Submits created and the decisions its RPCs made, the leader the pipeline's work): those
//     counters are per replica, and only their sum over the replicas counts everything.
//   - The key keeper's last run (shred.go) and the wake channel are the pipeline's, which only
//     the leader runs; a Submit on a follower wakes it through the store (the leader watches
//     it). The period keys (keys.go) follow their own rules for a shared store.
//
// Root fingerprints are keyed hashes: no identifier is in a key or a value. They are kept only
// while their erasure is open (whose sealed subject the same master key opens), and deleted in
// the transaction that ends it. A backend that keeps history (etcd's revisions) keeps them until
// it compacts that history.

// openSubjects is the value of an "e/" key: the identifiers an open erasure is listed under.
type openSubjects struct {
	Account      string   `json:"account"`
	Fingerprints []string `json:"fingerprints"` // root fingerprints (hex)
}

// getStoredRequest reads the stored outcome of requestID; nil when the store has none.
func getStoredRequest(tx store.Tx, requestID string) (*requestEntry, error) {
	v := tx.Get(schema.SubmitIndex, schema.RequestIDKey(requestID))
	if v == nil {
		return nil, nil
	}
	e := new(requestEntry)
	if err := json.Unmarshal(v, e); err != nil {
		return nil, fmt.Errorf("decode the stored outcome of a Submit: %w", err)
	}
	return e, nil
}

// putStoredRequest stores e as the outcome of its request_id.
func putStoredRequest(tx store.Tx, e requestEntry) error {
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return tx.Put(schema.SubmitIndex, schema.RequestIDKey(e.RequestID), v)
}

// answerStored answers a Submit with payload hash hash whose request_id the store holds as e,
// from tx: the same erasure, REQUEST_ID_REUSED for another payload or once the erasure is
// shredded (its hash is gone with its data key). e is a full entry (a shared store's), or a
// pointer (a store of one process: index.go), whose hash is in the Requests entry it names or,
// for the Submit that created the erasure, in the erasure's sealed index. Its other errors are
// storage failures, for storeError: it runs in transactions, which may run more than once, so it
// logs nothing.
func (s *Service) answerStored(tx store.Tx, e requestEntry, hash [32]byte) (SubmitResult, error) {
	ref, err := e.ref([32]byte{})
	if err != nil {
		return SubmitResult{}, err
	}
	r, err := getRecord(tx, e.ErasureID)
	if err != nil {
		return SubmitResult{}, err
	}
	if r == nil {
		return SubmitResult{}, fmt.Errorf("idempotency record points at missing erasure %s", e.ErasureID)
	}
	if e.SealedHash == nil && e.Entry != "" {
		v := tx.Get(schema.Requests, []byte(e.Entry))
		if v == nil {
			return SubmitResult{}, fmt.Errorf("idempotency record of erasure %s points at a missing entry", e.ErasureID)
		}
		var full requestEntry
		if err := json.Unmarshal(v, &full); err != nil {
			return SubmitResult{}, fmt.Errorf("decode idempotency record: %w", err)
		}
		if full.RequestID != e.RequestID || full.ErasureID != e.ErasureID {
			return SubmitResult{}, fmt.Errorf("idempotency record of erasure %s points at another request's entry", e.ErasureID)
		}
		e = full
	}
	own := e.SealedHash == nil && e.PayloadHash == "" && !e.Deduplicated // the erasure's sealed index holds the hash
	if own && r.RequestID != e.RequestID {
		return SubmitResult{}, fmt.Errorf("idempotency record points at erasure %s, created by another request", e.ErasureID)
	}
	switch {
	case !r.ShredTime.IsZero():
	case e.SealedHash != nil:
		key, err := s.dataKeyOf(tx, r)
		if err != nil {
			ref.unreadable = true
		} else if ref.hash, err = openRequestHash(key, e); err != nil {
			return SubmitResult{}, err
		}
	case e.PayloadHash != "": // in the clear, as entries written before the hashes were sealed
		if e.PayloadHash != shreddedHash {
			if ref.hash, err = decodeHash(e.PayloadHash); err != nil {
				return SubmitResult{}, err
			}
		}
	case e.Deduplicated:
		// A deduplicated Submit's hash is in its entry only; gone with the erasure's data key.
	default:
		var key []byte
		if r.Index != nil {
			if key, err = s.dataKeyOf(tx, r); err != nil {
				ref.unreadable = true
				break
			}
		}
		sec, err := s.secretsOf(r, key)
		if err != nil {
			return SubmitResult{}, err
		}
		if sec.hasHash && r.PayloadHash != shreddedHash {
			ref.hash = sec.hash
		}
	}
	if err := checkReplay(ref, hash); err != nil {
		return SubmitResult{}, err
	}
	return SubmitResult{Erasure: r.Erasure, Deduplicated: ref.dedup}, nil
}

// replayStored answers, from a read, a Submit whose request_id memory knows: the store's entry
// decides. found is false when the store has no entry (Submit then goes on to its transaction,
// which looks again).
func (s *Service) replayStored(requestID string, hash [32]byte) (res SubmitResult, found bool, err error) {
	err = s.db.View(func(tx store.Tx) error {
		e, err := getStoredRequest(tx, requestID)
		if err != nil || e == nil {
			return err
		}
		found = true
		res, err = s.answerStored(tx, *e, hash)
		return err
	})
	return res, found, s.storeError(err)
}

// storedOpen returns the ids of the erasures the store lists as open for any of the identifiers
// (root fingerprints) of account, those of the first first, none twice.
func storedOpen(tx store.Tx, account string, fps []string) ([]string, error) {
	var out []string
	for _, fp := range fps {
		ids, err := getOpenIDs(tx, schema.OpenSubjectKey(account, fp))
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			if !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	return out, nil
}

func getOpenIDs(tx store.Tx, key []byte) ([]string, error) {
	v := tx.Get(schema.SubmitIndex, key)
	if v == nil {
		return nil, nil
	}
	var ids []string
	if err := json.Unmarshal(v, &ids); err != nil {
		return nil, fmt.Errorf("decode the open erasures of an identifier: %w", err)
	}
	return ids, nil
}

func putOpenIDs(tx store.Tx, key []byte, ids []string) error {
	if len(ids) == 0 {
		return tx.Delete(schema.SubmitIndex, key)
	}
	v, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	return tx.Put(schema.SubmitIndex, key, v)
}

// storeOpen lists erasure id of account as open under each of fps (root fingerprints).
func storeOpen(tx store.Tx, id, account string, fps []string) error {
	if len(fps) == 0 {
		return nil
	}
	own, err := getErasureSubjects(tx, id)
	if err != nil {
		return err
	}
	own.Account = account
	for _, fp := range fps {
		key := schema.OpenSubjectKey(account, fp)
		ids, err := getOpenIDs(tx, key)
		if err != nil {
			return err
		}
		if !slices.Contains(ids, id) {
			if err := putOpenIDs(tx, key, append(ids, id)); err != nil {
				return err
			}
		}
		if !slices.Contains(own.Fingerprints, fp) {
			own.Fingerprints = append(own.Fingerprints, fp)
		}
	}
	v, err := json.Marshal(own)
	if err != nil {
		return err
	}
	return tx.Put(schema.SubmitIndex, schema.ErasureSubjectsKey(id), v)
}

func getErasureSubjects(tx store.Tx, id string) (openSubjects, error) {
	var own openSubjects
	v := tx.Get(schema.SubmitIndex, schema.ErasureSubjectsKey(id))
	if v == nil {
		return own, nil
	}
	if err := json.Unmarshal(v, &own); err != nil {
		return own, fmt.Errorf("decode the identifiers of erasure %s in the Submit index: %w", id, err)
	}
	return own, nil
}

// storeClosed removes erasure id from the store's open identifiers: it has ended, or is being
// shredded. It needs no data key. Removing what is not there is no error.
func storeClosed(tx store.Tx, id string) error {
	own, err := getErasureSubjects(tx, id)
	if err != nil || own.Fingerprints == nil {
		return err
	}
	for _, fp := range own.Fingerprints {
		key := schema.OpenSubjectKey(own.Account, fp)
		ids, err := getOpenIDs(tx, key)
		if err != nil {
			return err
		}
		if i := slices.Index(ids, id); i >= 0 {
			if err := putOpenIDs(tx, key, slices.Delete(ids, i, i+1)); err != nil {
				return err
			}
		}
	}
	return tx.Delete(schema.SubmitIndex, schema.ErasureSubjectsKey(id))
}

// storeShredded removes, as erasure id is shredded, its open identifiers (they are gone when it
// ended; this covers one that ended before) and the sealed payload hashes of the request_ids in
// entries (its own and those deduplicated onto it): their retries are refused from then on.
func storeShredded(tx store.Tx, id string, entries []requestEntry) error {
	if err := storeClosed(tx, id); err != nil {
		return err
	}
	for _, e := range entries {
		stored, err := getStoredRequest(tx, e.RequestID)
		if err != nil {
			return err
		}
		if stored == nil || stored.ErasureID != id || stored.SealedHash == nil {
			continue
		}
		stored.SealedHash, stored.PayloadHash = nil, ""
		if err := putStoredRequest(tx, *stored); err != nil {
			return err
		}
	}
	return nil
}

// errUnsharedStore refuses to share a store written without the shared index.
var errUnsharedStore = errors.New("service: the store holds erasures written without the shared Submit index " +
	"(by a process that did not share it): processes sharing it could not tell their request_ids and " +
	"subjects apart; share only a store that was shared from its first erasure")

// errSharedStore refuses a process that does not share a store that is shared.
var errSharedStore = errors.New("service: the store is shared with other erasured processes (it keeps the shared Submit index), " +
	"but this process was not configured to share it: its Submits would not see the others' request_ids and subjects; " +
	"open it as a shared store")

// ensureShared checks, for a process that shares the store, that every Submit kept the shared
// index (the store is marked), and marks an empty store. A process that does not share the store
// is refused a marked one: its Submits would neither read nor write the shared index, and could
// create a second erasure for a subject another process has open.
func (s *Service) ensureShared(ctx context.Context) error {
	if !s.cfg.Shared {
		var marked bool
		if err := s.db.View(func(tx store.Tx) error {
			marked = tx.Get(schema.SubmitIndex, schema.SharedIndexKey) != nil
			return nil
		}); err != nil {
			return fmt.Errorf("service: read the shared index mark: %w", err)
		}
		if marked {
			return errSharedStore
		}
		return nil
	}
	var marked, empty bool
	read := func(tx store.Tx) error {
		marked, empty = tx.Get(schema.SubmitIndex, schema.SharedIndexKey) != nil, true
		if marked {
			return nil
		}
		return tx.Scan(schema.Erasures, nil, func(_, _ []byte) (bool, error) {
			empty = false
			return false, nil
		})
	}
	if err := s.db.View(read); err != nil {
		return fmt.Errorf("service: read the shared index mark: %w", err)
	}
	if marked {
		return nil
	}
	err := s.db.Update(ctx, func(tx store.Tx) error {
		switch err := read(tx); {
		case err != nil || marked:
			return err
		case !empty:
			return errUnsharedStore
		}
		return tx.Put(schema.SubmitIndex, schema.SharedIndexKey, []byte{1})
	})
	if err != nil && !errors.Is(err, errUnsharedStore) {
		err = fmt.Errorf("service: write the shared index mark: %w", err)
	}
	return err
}
