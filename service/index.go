package service

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// The Submit index.
//
// Before it writes, Submit asks two questions: was this request_id seen before (idempotency), and
// has this account an open erasure that shares any identifier (subject or alias) with this
// request (dedup). Both are answered from memory, so a
// Submit writes only entries under ascending keys — its erasure record (UUIDv7), its event
// (revision), its data key (UUIDv7), its schedule entry (time) — each appended at the end of its
// B+tree. Kept on disk by request_id and by fingerprint, as they were at first, the two indexes
// put every Submit in the middle of two more trees: a different leaf page each, several times the
// pages per commit, and a third of the throughput (docs/benchmarks.md).
//
// What the index holds is derived from the store when New reads it back:
//   - an erasure record carries the request_id and, sealed with its data key, the payload hash
//     of the Submit that created it and the root fingerprints of its subject and aliases
//     (sealedindex.go); its state says whether it is open;
//   - a Submit answered with an existing erasure (deduplicated) stores a requestEntry in Requests
//     under a fresh UUIDv7 (so, ascending too), its payload hash sealed with that erasure's key.
//
// A shredded erasure keeps its request_id, and so do the entries pointing at it, without any
// hash: in memory they hold the zero hash, which no payload has, so a retry is answered
// REQUEST_ID_REUSED and never creates a second erasure.
//
// After New, memory follows the store through commit hooks (store.Tx.OnCommit), which run in
// commit order before any caller of the commit is answered. The subject map is a hint that Submit
// checks against the erasure's stored state inside its transaction; the request map is exact.
//
// All of this holds for a store only this process writes. One shared with other processes
// (Config.Shared) gets the two indexes in the store as well, where Submit's transaction reads
// them: there the store decides, memory is a cache (shared.go). The extra keys cost what is
// said above, in the middle of trees, so a store of one process goes without them.
//
// Cost (BenchmarkLoadIndex): about 360 bytes of heap per open erasure without aliases (its request
// and its subject), half that once it has ended; New decodes every erasure record once and, to
// open its sealed index, unwraps its data key: about 14 µs each (1.4 s for 100,000 erasures),
// of which the unsealing is about 5.

// requestEntry is the stored outcome of one accepted request_id.
type requestEntry struct {
	RequestID string `json:"request_id"`
	ErasureID string `json:"erasure_id"`
	// SealedHash is the keyed hash of the payload, sealed with the data key of the erasure
	// (sealRequestHash). Empty, with PayloadHash, once that erasure is shredded.
	SealedHash []byte `json:"sealed_hash,omitempty"`
	// PayloadHash is the hash in the clear (hex), as entries written before SealedHash hold it;
	// New seals it.
	PayloadHash  string `json:"payload_hash,omitempty"`
	Deduplicated bool   `json:"deduplicated,omitempty"`
}

// hashed reports whether e still holds its payload hash (its erasure is not shredded).
func (e requestEntry) hashed() bool {
	return e.SealedHash != nil || (e.PayloadHash != "" && e.PayloadHash != shreddedHash)
}

// requestRef is a requestEntry in memory.
type requestRef struct {
	erasure uuid.UUID
	hash    [32]byte // zero: the erasure is shredded, and no payload matches
	dedup   bool
	// unreadable: the erasure's data key could not be unwrapped when the index was loaded
	// (a wrong master key or key directory), so its hash is unknown.
	unreadable bool
}

// ref is e in memory, with its payload hash.
func (e requestEntry) ref(hash [32]byte) (requestRef, error) {
	id, err := uuid.Parse(e.ErasureID)
	if err != nil {
		return requestRef{}, fmt.Errorf("idempotency record: erasure id: %w", err)
	}
	return requestRef{erasure: id, hash: hash, dedup: e.Deduplicated}, nil
}

// submitIndex is the in-memory index Submit consults.
type submitIndex struct {
	mu       sync.Mutex
	requests map[string]requestRef // by request_id
	// subjects maps the subjectKey of every identifier (subject and aliases) of every open
	// erasure to the erasures holding it: one, unless a Submit that joined one erasure brought
	// an identifier another open erasure already had.
	subjects map[string][]string
	// busy holds the request ids and subject keys of Submits between their lookup and their
	// commit; a second Submit for any of them waits for the channel to close, then looks again.
	busyRequests map[string]chan struct{}
	busySubjects map[string]chan struct{}
	// unreadable holds, by account, the open erasures whose data key did not unwrap when the
	// index was loaded (a lost period key, another key directory). Their identifiers are sealed
	// with that key, so they are not in subjects: a Submit for one of their subjects would not
	// find them and would start a second erasure. Submits of such an account are refused
	// until those erasures end or the keys are back.
	unreadable map[string]map[string]bool
}

func newSubmitIndex() *submitIndex {
	return &submitIndex{requests: map[string]requestRef{}, subjects: map[string][]string{}, unreadable: map[string]map[string]bool{},
		busyRequests: map[string]chan struct{}{}, busySubjects: map[string]chan struct{}{}}
}

// subjectKey identifies a subject within an account, as the index keeps it.
func subjectKey(account, fingerprint string) string { return account + "\x00" + fingerprint }

// subjectKeys are the index keys of an erasure's identifiers.
func subjectKeys(account string, refs []identRef) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = subjectKey(account, r.Fingerprint)
	}
	return out
}

// claim waits until no other Submit is writing requestID or any of subjects, then either returns
// what requestID produced before (known), or reserves them all for the caller and returns the
// ids of the open erasures holding any of the subjects (those of the first subject first, none
// twice) and the function that ends the reservation.
func (ix *submitIndex) claim(ctx context.Context, requestID string, subjects []string) (prior requestRef, known bool, open []string, release func(), err error) {
	for {
		ix.mu.Lock()
		if ref, ok := ix.requests[requestID]; ok {
			ix.mu.Unlock()
			return ref, true, nil, nil, nil
		}
		wait := ix.busyRequests[requestID]
		for _, sk := range subjects {
			if wait == nil {
				wait = ix.busySubjects[sk]
			}
		}
		if wait == nil {
			ch := make(chan struct{})
			ix.busyRequests[requestID] = ch
			for _, sk := range subjects {
				ix.busySubjects[sk] = ch
				for _, id := range ix.subjects[sk] {
					if !slices.Contains(open, id) {
						open = append(open, id)
					}
				}
			}
			ix.mu.Unlock()
			return requestRef{}, false, open, func() {
				ix.mu.Lock()
				delete(ix.busyRequests, requestID)
				for _, sk := range subjects {
					delete(ix.busySubjects, sk)
				}
				ix.mu.Unlock()
				close(ch)
			}, nil
		}
		ix.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return requestRef{}, false, nil, nil, ctx.Err()
		}
	}
}

// addRequest records an accepted request_id (a commit hook).
func (ix *submitIndex) addRequest(requestID string, ref requestRef) {
	ix.mu.Lock()
	ix.requests[requestID] = ref
	ix.mu.Unlock()
}

// openSubject records erasure as open for each of the subject keys (a commit hook).
func (ix *submitIndex) openSubject(erasure string, subjects ...string) {
	ix.mu.Lock()
	for _, sk := range subjects {
		if ids := ix.subjects[sk]; !slices.Contains(ids, erasure) {
			ix.subjects[sk] = append(ids, erasure)
		}
	}
	ix.mu.Unlock()
}

// closeSubject forgets erasure as open for each of the subject keys (a commit hook).
func (ix *submitIndex) closeSubject(erasure string, subjects ...string) {
	ix.mu.Lock()
	for _, sk := range subjects {
		ids := slices.DeleteFunc(ix.subjects[sk], func(id string) bool { return id == erasure })
		if len(ids) == 0 {
			delete(ix.subjects, sk)
		} else {
			ix.subjects[sk] = ids
		}
	}
	ix.mu.Unlock()
}

// putRequest stores the outcome of a deduplicated Submit under key, its payload hash sealed with
// dataKey (that of the erasure it was answered with), and has the index learn it on commit.
func (s *Service) putRequest(tx store.Tx, key string, e requestEntry, hash [32]byte, dataKey []byte) error {
	ref, err := e.ref(hash)
	if err != nil {
		return err
	}
	if e.SealedHash, err = sealRequestHash(dataKey, e.ErasureID, e.RequestID, hash); err != nil {
		return err
	}
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := tx.Put(schema.Requests, []byte(key), v); err != nil {
		return err
	}
	if s.cfg.Shared {
		if err := putStoredRequest(tx, e); err != nil {
			return err
		}
	}
	return tx.OnCommit(func() { s.index.addRequest(e.RequestID, ref) })
}

// indexCreated has the index learn, on commit, the erasure r that a Submit has just created, with
// its request hash and root fingerprints. In a shared store it writes them in the store too, the
// hash as sealedHash (sealRequestHash with r's data key).
func (s *Service) indexCreated(tx store.Tx, r *record, sec indexSecrets, sealedHash []byte) error {
	ref, err := requestEntry{RequestID: r.RequestID, ErasureID: r.ID}.ref(sec.hash)
	if err != nil {
		return err
	}
	if s.cfg.Shared {
		if err := putStoredRequest(tx, requestEntry{RequestID: r.RequestID, ErasureID: r.ID, SealedHash: sealedHash}); err != nil {
			return err
		}
		if err := storeOpen(tx, r.ID, r.AccountID, sec.fps); err != nil {
			return err
		}
	}
	rid, sks, id := r.RequestID, fpKeys(r.AccountID, sec.fps), r.ID
	return tx.OnCommit(func() {
		s.index.addRequest(rid, ref)
		s.index.openSubject(id, sks...)
	})
}

// indexJoined has the index learn, on commit, identifiers a Submit has added to r (their root
// refs); in a shared store, the store too.
func (s *Service) indexJoined(tx store.Tx, r *record, added []identRef) error {
	if s.cfg.Shared {
		fps := make([]string, len(added))
		for i, a := range added {
			fps[i] = a.Fingerprint
		}
		if err := storeOpen(tx, r.ID, r.AccountID, fps); err != nil {
			return err
		}
	}
	sks, id := subjectKeys(r.AccountID, added), r.ID
	return tx.OnCommit(func() { s.index.openSubject(id, sks...) })
}

// indexClosed has the index forget, on commit, r as the open erasure of its identifiers: r has
// reached a final state. Their root fingerprints are in r's sealed index. In a shared store they
// are removed from the store in tx, which needs no data key.
func (s *Service) indexClosed(tx store.Tx, r *record) error {
	if s.cfg.Shared {
		if err := storeClosed(tx, r.ID); err != nil {
			return err
		}
	}
	var key []byte
	if r.Index != nil {
		var err error
		if key, err = s.dataKeyOf(tx, r); err != nil {
			// Its data key did not unwrap when the index was loaded either, so its identifiers
			// were never indexed: nothing to forget but the block on its account. Ending it must
			// not need the key, or an erasure whose key is lost could never be cancelled.
			id, account := r.ID, r.AccountID
			return tx.OnCommit(func() { s.index.unblockAccount(account, id) })
		}
	}
	sec, err := s.secretsOf(r, key)
	if err != nil {
		return fmt.Errorf("close erasure %s in the Submit index: %w", r.ID, err)
	}
	sks, id := fpKeys(r.AccountID, sec.fps), r.ID
	return tx.OnCommit(func() { s.index.closeSubject(id, sks...) })
}

// fpKeys are the index keys of root fingerprints.
func fpKeys(account string, fps []string) []string {
	out := make([]string, len(fps))
	for i, fp := range fps {
		out[i] = subjectKey(account, fp)
	}
	return out
}

// loadIndex reads the erasures and the Requests bucket into memory.
func (s *Service) loadIndex(ctx context.Context) error {
	ix := newSubmitIndex()
	var clear clearFields
	err := s.db.View(func(tx store.Tx) error {
		// Requests first: while the erasures are read, the data keys of those their entries
		// point at are kept to open the entries' hashes.
		var entries []requestEntry
		need := map[string][]byte{}
		unreadable := map[string]bool{}
		err := tx.Scan(schema.Requests, nil, func(k, v []byte) (bool, error) {
			var e requestEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return false, fmt.Errorf("decode idempotency record %s: %w", k, err)
			}
			if e.PayloadHash != "" {
				clear.entries = append(clear.entries, string(k))
			}
			if e.SealedHash != nil {
				need[e.ErasureID] = nil
			}
			entries = append(entries, e)
			return true, nil
		})
		if err != nil {
			return err
		}
		err = tx.Scan(schema.Erasures, nil, func(k, v []byte) (bool, error) {
			var r indexFields
			if err := json.Unmarshal(v, &r); err != nil {
				return false, fmt.Errorf("decode erasure %s: %w", k, err)
			}
			id, err := uuid.Parse(r.ID)
			if err != nil {
				return false, fmt.Errorf("erasure %s: %w", k, err)
			}
			var sec indexSecrets
			switch {
			case !r.ShredTime.IsZero() || r.PayloadHash == shreddedHash:
				ix.requests[r.RequestID] = requestRef{erasure: id} // the zero hash: shredded
				return true, nil
			case r.Index != nil:
				w := r.DataKey
				if w == nil {
					w = tx.Get(schema.Keys, []byte(r.ID))
				}
				key, err := s.keys.unwrapIn(tx, r.ID, w)
				if err != nil {
					// A wrong master key or key directory. New still starts (`erasured keys
					// check` counts what opens): the request_id stays known and its retries
					// fail, its identifiers are not indexed.
					unreadable[r.ID] = true
					ix.requests[r.RequestID] = requestRef{erasure: id, unreadable: true}
					if !r.State.Final() {
						ix.blockAccount(r.AccountID, r.ID)
					}
					return true, nil
				}
				if sec, err = openIndex(key, r.ID, r.Index); err != nil {
					return false, err
				}
				if _, ok := need[r.ID]; ok {
					need[r.ID] = key
				}
			default: // written before the index was sealed
				if sec, err = clearSecrets(r.PayloadHash, r.Fingerprint, r.Aliases); err != nil {
					return false, fmt.Errorf("erasure %s: %w", r.ID, err)
				}
				clear.records = append(clear.records, r.ID)
			}
			if sec.hasHash { // else created before the hash was kept here: Requests has it
				ix.requests[r.RequestID] = requestRef{erasure: id, hash: sec.hash}
			}
			if !r.State.Final() {
				for _, sk := range fpKeys(r.AccountID, sec.fps) {
					ix.subjects[sk] = append(ix.subjects[sk], r.ID)
				}
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, e := range entries {
			var h [32]byte // stays zero when the erasure is shredded or gone
			switch key := need[e.ErasureID]; {
			case e.SealedHash != nil && key != nil:
				if h, err = openRequestHash(key, e); err != nil {
					return err
				}
			case e.SealedHash == nil && e.PayloadHash != "":
				if h, err = decodeHash(e.PayloadHash); err != nil {
					return fmt.Errorf("idempotency record of erasure %s: %w", e.ErasureID, err)
				}
			}
			ref, err := e.ref(h)
			if err != nil {
				return err
			}
			ref.unreadable = e.SealedHash != nil && unreadable[e.ErasureID]
			ix.requests[e.RequestID] = ref
		}
		switch {
		case len(unreadable) > 0 && s.cfg.Shared: // the store dedups them (shared.go)
			s.log.Error("the data keys of some erasures do not unwrap: their retries and joins fail", "erasures", len(unreadable))
		case len(unreadable) > 0:
			s.log.Error("the data keys of some erasures do not unwrap: their Submits are not deduplicated and their retries fail",
				"erasures", len(unreadable))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load the Submit index: %w", err)
	}
	s.index = ix
	if len(clear.records)+len(clear.entries) > 0 {
		if err := s.sealClearFields(ctx, clear); err != nil {
			return fmt.Errorf("seal the Submit index: %w", err)
		}
	}
	return nil
}

// indexFields are the fields of a stored erasure record the index is built from.
type indexFields struct {
	ID          string    `json:"id"`
	RequestID   string    `json:"request_id"`
	AccountID   string    `json:"account_id"`
	State       State     `json:"state"`
	Index       []byte    `json:"index"`
	DataKey     []byte    `json:"data_key"`
	ShredTime   time.Time `json:"shred_time"`
	Fingerprint string    `json:"fingerprint"`  // in the clear: the root one, before Index
	PayloadHash string    `json:"payload_hash"` // before Index
	// Aliases as the record holds them; before Index, their fingerprints are the root ones.
	Aliases []identRef `json:"aliases"`
}

// blockAccount records the open erasure id of account as unreadable (called while loading).
func (ix *submitIndex) blockAccount(account, id string) {
	if ix.unreadable[account] == nil {
		ix.unreadable[account] = map[string]bool{}
	}
	ix.unreadable[account][id] = true
}

// unblockAccount forgets id as an unreadable open erasure of account: it has ended.
func (ix *submitIndex) unblockAccount(account, id string) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	delete(ix.unreadable[account], id)
	if len(ix.unreadable[account]) == 0 {
		delete(ix.unreadable, account)
	}
}

// blocked is how many open erasures of account have data keys that do not unwrap.
func (ix *submitIndex) blocked(account string) int {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return len(ix.unreadable[account])
}
