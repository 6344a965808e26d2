package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/google/uuid"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// The Submit index.
//
// Before it writes, Submit asks two questions: was this request_id seen before (idempotency), and
// has this account an open erasure that shares any identifier (subject or alias) with this
// request (dedup). For open erasures both are answered from memory, so a Submit that creates an
// erasure writes only entries under ascending keys — its erasure record (UUIDv7), its event
// (revision), its data key (UUIDv7), its schedule entry (time), its open mark (UUIDv7) — each
// appended at the end of its B+tree. Kept on disk by request_id and by fingerprint, as they were
// at first, the two indexes put every Submit in the middle of two more trees: a different leaf
// page each, several times the pages per commit, and a third of the throughput
// (docs/benchmarks.md).
//
// Memory holds open erasures only: the request_id that created each (by a hash: the record
// holds the request_id, and replay checks it) and the root fingerprints of its identifiers. Dedup
// concerns open erasures alone. A request_id memory does not know is looked up in the store,
// under schema.RequestIDKey: the change that ends an erasure writes its entry there, a
// deduplicated Submit writes its own, both pointers without any secret (indexload.go). Those are
// writes in the middle of a tree, but at an erasure's end and on the dedup path, not on every
// Submit; the look-up is one read. So final erasures, which outnumber the open ones and only
// grow, cost no memory and nothing at start.
//
// What the index holds is derived from the store when New reads it back:
//   - an open mark (indexload.go) carries the request_id and, sealed with the erasure's data key,
//     the payload hash of the Submit that created it and the root fingerprints of its subject and
//     aliases (sealedindex.go);
//   - a Submit answered with an existing erasure (deduplicated) stores a requestEntry in Requests
//     under a fresh UUIDv7 (so, ascending too), its payload hash sealed with that erasure's key.
//
// A shredded erasure keeps its request_id, and so do the entries pointing at it, without any
// hash: they are read as the zero hash, which no payload has, so a retry is answered
// REQUEST_ID_REUSED and never creates a second erasure.
//
// After New, memory follows the store through commit hooks (store.Tx.OnCommit), which run in
// commit order before any caller of the commit is answered. The subject map is a hint that Submit
// checks against the erasure's stored state inside its transaction; the request map says which
// record to read. A request_id leaves memory only after the commit that wrote its entry in the
// store, so a Submit that misses it in memory finds it there.
//
// All of this holds for a store only this process writes. One shared with other processes
// (Config.Shared) gets the two indexes in the store as well, where Submit's transaction reads
// them: there the store decides, memory is a cache (shared.go). The extra keys cost what is
// said above, in the middle of trees, so a store of one process goes without them.
//
// Cost (BenchmarkLoadIndex, 100,000 open erasures): about 150 bytes of heap per open erasure
// without aliases, and about 4 µs each to load, most of it opening its sealed index (its data key
// unwrapped, then the index). Before memory was limited to open erasures and loaded from open
// marks, the same benchmark measured 360 bytes and 27 µs on this machine, and every final erasure
// cost about half that again.

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
	// Entry, in a pointer a store of one process keeps under the request_id (storedRequests),
	// is the key in Requests of the entry that holds the sealed hash; empty when the erasure's
	// own sealed index holds it (the Submit that created it).
	Entry string `json:"entry,omitempty"`
}

// hashed reports whether e still holds its payload hash (its erasure is not shredded).
func (e requestEntry) hashed() bool {
	return e.SealedHash != nil || (e.PayloadHash != "" && e.PayloadHash != shreddedHash)
}

// requestRef is what a request_id produced, with its payload hash.
type requestRef struct {
	erasure uuid.UUID
	hash    [32]byte // zero: the erasure is shredded, and no payload matches
	dedup   bool
	// unreadable: the erasure's data key does not unwrap (a wrong master key or key
	// directory), so its hash is unknown.
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

// ridKey is a request_id as memory keeps it: the first 16 bytes of its SHA-256. Memory only
// says which erasure to read: the record holds the request_id, and replay checks it.
type ridKey [16]byte

func ridKeyOf(requestID string) ridKey {
	h := sha256.Sum256([]byte(requestID))
	return ridKey(h[:16])
}

// subKey identifies a subject within an account, as the index keeps it: the account (one
// string per account, interned) and the root fingerprint's 32 bytes.
type subKey struct {
	account string
	fp      [32]byte
}

// subjectKey is the index key of a root fingerprint (hex) of account.
func subjectKey(account, fingerprint string) subKey {
	k := subKey{account: account}
	if n, err := hex.Decode(k.fp[:], []byte(fingerprint)); err != nil || n != len(k.fp) || len(fingerprint) != 2*len(k.fp) {
		k.fp = sha256.Sum256([]byte("fingerprint\x00" + fingerprint)) // never happens: fingerprints are 32 bytes
	}
	return k
}

// submitIndex is the in-memory index Submit consults. It holds open erasures only: final ones
// are answered from the store (storedRequests), and cost nothing at start.
type submitIndex struct {
	mu sync.Mutex
	// requests maps the request_id of each open erasure's creating Submit to the erasure.
	requests map[ridKey]uuid.UUID
	// subjects maps the subjectKey of every identifier (subject and aliases) of every open
	// erasure to the erasure holding it; more holds the further ones, when a Submit that joined
	// one erasure brought an identifier another open erasure already had.
	subjects map[subKey]uuid.UUID
	more     map[subKey][]uuid.UUID
	accounts map[string]string // interned account ids
	// busy holds the request ids and subject keys of Submits between their lookup and their
	// commit; a second Submit for any of them waits for the channel to close, then looks again.
	busyRequests map[string]chan struct{}
	busySubjects map[subKey]chan struct{}
	// unreadable holds, by account, the open erasures whose data key did not unwrap when the
	// index was loaded (a lost period key, another key directory). Their identifiers are sealed
	// with that key, so they are not in subjects: a Submit for one of their subjects would not
	// find them and would start a second erasure. Submits of such an account are refused
	// until those erasures end or the keys are back.
	unreadable map[string]map[string]bool
}

func newSubmitIndex() *submitIndex { return newSubmitIndexFor(0) }

// newSubmitIndexFor is an empty index sized for n open erasures.
func newSubmitIndexFor(n int) *submitIndex {
	return &submitIndex{requests: make(map[ridKey]uuid.UUID, n), subjects: make(map[subKey]uuid.UUID, n), more: map[subKey][]uuid.UUID{},
		accounts: map[string]string{}, unreadable: map[string]map[string]bool{},
		busyRequests: map[string]chan struct{}{}, busySubjects: map[subKey]chan struct{}{}}
}

// subjectKeys are the index keys of an erasure's identifiers.
func subjectKeys(account string, refs []identRef) []subKey {
	out := make([]subKey, len(refs))
	for i, r := range refs {
		out[i] = subjectKey(account, r.Fingerprint)
	}
	return out
}

// claim waits until no other Submit is writing requestID or any of subjects, then either returns
// the open erasure requestID created (known), or reserves them all for the caller and returns the
// ids of the open erasures holding any of the subjects (those of the first subject first, none
// twice) and the function that ends the reservation.
func (ix *submitIndex) claim(ctx context.Context, requestID string, subjects []subKey) (prior uuid.UUID, known bool, open []string, release func(), err error) {
	rk := ridKeyOf(requestID)
	for {
		ix.mu.Lock()
		if id, ok := ix.requests[rk]; ok {
			ix.mu.Unlock()
			return id, true, nil, nil, nil
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
				for _, id := range ix.openOf(sk) {
					if s := id.String(); !slices.Contains(open, s) {
						open = append(open, s)
					}
				}
			}
			ix.mu.Unlock()
			return uuid.UUID{}, false, open, func() {
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
			return uuid.UUID{}, false, nil, nil, ctx.Err()
		}
	}
}

// openOf are the open erasures of sk (with ix.mu held).
func (ix *submitIndex) openOf(sk subKey) []uuid.UUID {
	first, ok := ix.subjects[sk]
	if !ok {
		return nil
	}
	return append([]uuid.UUID{first}, ix.more[sk]...)
}

// addRequest records what a request_id produced (a commit hook). Memory keeps the request_ids of
// open erasures only: one that is shredded (its zero hash) is forgotten, and answered from the
// store.
func (ix *submitIndex) addRequest(requestID string, ref requestRef) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ref.hash == ([32]byte{}) && !ref.unreadable {
		delete(ix.requests, ridKeyOf(requestID))
		return
	}
	ix.requests[ridKeyOf(requestID)] = ref.erasure
}

// forgetRequest forgets the request_id of erasure, which has ended (a commit hook): the store
// answers it from then on.
func (ix *submitIndex) forgetRequest(requestID string, erasure uuid.UUID) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if k := ridKeyOf(requestID); ix.requests[k] == erasure {
		delete(ix.requests, k)
	}
}

// openSubject records erasure as open for each of the subject keys (a commit hook).
func (ix *submitIndex) openSubject(erasure string, subjects ...subKey) {
	id, err := uuid.Parse(erasure)
	if err != nil {
		return // erasure ids are UUIDs: New and Submit make them
	}
	ix.mu.Lock()
	ix.openLocked(id, subjects)
	ix.mu.Unlock()
}

func (ix *submitIndex) openLocked(id uuid.UUID, subjects []subKey) {
	for _, sk := range subjects {
		acct, ok := ix.accounts[sk.account]
		if !ok {
			acct = strings.Clone(sk.account)
			ix.accounts[acct] = acct
		}
		sk.account = acct
		first, ok := ix.subjects[sk]
		switch {
		case !ok:
			ix.subjects[sk] = id
		case first != id && !slices.Contains(ix.more[sk], id):
			ix.more[sk] = append(ix.more[sk], id)
		}
	}
}

// closeSubject forgets erasure as open for each of the subject keys (a commit hook).
func (ix *submitIndex) closeSubject(erasure string, subjects ...subKey) {
	id, err := uuid.Parse(erasure)
	if err != nil {
		return
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for _, sk := range subjects {
		more := ix.more[sk]
		if first, ok := ix.subjects[sk]; ok && first == id {
			if len(more) == 0 {
				delete(ix.subjects, sk)
				continue
			}
			ix.subjects[sk], more = more[0], more[1:]
		} else {
			more = slices.DeleteFunc(more, func(m uuid.UUID) bool { return m == id })
		}
		if len(more) == 0 {
			delete(ix.more, sk)
		} else {
			ix.more[sk] = more
		}
	}
}

// putRequest stores the outcome of a deduplicated Submit under key, its payload hash sealed with
// dataKey (that of the erasure it was answered with). Memory does not learn it: the store answers
// its retries, from its entry under the request_id (storedRequests).
func (s *Service) putRequest(tx store.Tx, key string, e requestEntry, hash [32]byte, dataKey []byte) error {
	var err error
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
		return putStoredRequest(tx, e)
	}
	return putStoredRequest(tx, requestEntry{RequestID: e.RequestID, ErasureID: e.ErasureID, Deduplicated: true, Entry: key})
}

// indexCreated lists r, the erasure a Submit has just created, as open in the store, and has the
// index learn it on commit, with its request_id and root fingerprints. In a shared store it
// writes them in the store too, the hash as sealedHash (sealRequestHash with r's data key).
func (s *Service) indexCreated(tx store.Tx, r *record, sec indexSecrets, sealedHash []byte) error {
	id, err := uuid.Parse(r.ID)
	if err != nil {
		return err
	}
	if err := s.putOpenMark(tx, r); err != nil {
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
	rid, sks := r.RequestID, fpKeys(r.AccountID, sec.fps)
	return tx.OnCommit(func() {
		s.index.addRequest(rid, requestRef{erasure: id, hash: sec.hash})
		s.index.openSubject(r.ID, sks...)
	})
}

// indexJoined has the index learn, on commit, identifiers a Submit has added to r (their root
// refs); in a shared store, the store too. r's open mark takes its new sealed index.
func (s *Service) indexJoined(tx store.Tx, r *record, added []identRef) error {
	if err := s.putOpenMark(tx, r); err != nil {
		return err
	}
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

// indexClosed moves r, which has reached a final state, out of the open erasures: in tx, its
// request_id gets its entry in the store (a store of one process keeps none for open erasures)
// and its open mark goes; on commit, memory forgets its request_id and, as the open erasure of
// its identifiers, their root fingerprints, which are in r's sealed index. In a shared store
// they are removed from the store in tx, which needs no data key.
func (s *Service) indexClosed(tx store.Tx, r *record) error {
	id, err := uuid.Parse(r.ID)
	if err != nil {
		return err
	}
	if s.cfg.Shared {
		if err := storeClosed(tx, r.ID); err != nil {
			return err
		}
	} else if err := tx.Delete(schema.SubmitIndex, openKey(r.ID)); err != nil {
		return err
	} else if tx.Get(schema.SubmitIndex, schema.RequestIDKey(r.RequestID)) == nil {
		// One already there points at the Requests entry that holds the hash (an erasure
		// created before its record kept it).
		if err := putStoredRequest(tx, requestEntry{RequestID: r.RequestID, ErasureID: r.ID}); err != nil {
			return err
		}
	}
	rid, account := r.RequestID, r.AccountID
	var key []byte
	if r.Index != nil {
		if key, err = s.dataKeyOf(tx, r); err != nil {
			// Its data key did not unwrap when the index was loaded either, so its identifiers
			// were never indexed: nothing to forget but the block on its account. Ending it must
			// not need the key, or an erasure whose key is lost could never be cancelled.
			return tx.OnCommit(func() {
				s.index.forgetRequest(rid, id)
				s.index.unblockAccount(account, r.ID)
			})
		}
	}
	sec, err := s.secretsOf(r, key)
	if err != nil {
		return fmt.Errorf("close erasure %s in the Submit index: %w", r.ID, err)
	}
	sks := fpKeys(r.AccountID, sec.fps)
	return tx.OnCommit(func() {
		s.index.forgetRequest(rid, id)
		s.index.closeSubject(r.ID, sks...)
	})
}

// fpKeys are the index keys of root fingerprints.
func fpKeys(account string, fps []string) []subKey {
	out := make([]subKey, len(fps))
	for i, fp := range fps {
		out[i] = subjectKey(account, fp)
	}
	return out
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
