package service

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/google/uuid"

	"github.com/erasured/erasured/store"
)

// The Submit index.
//
// Before it writes, Submit asks two questions: was this request_id seen before (idempotency), and
// has this account an open erasure for this subject (dedup). Both are answered from memory. On
// disk each fact is one entry under an ascending key (a UUIDv7), so that a Submit appends at the
// end of the Requests and Subjects B+trees. Keyed by request_id or by fingerprint, as they were
// at first, every Submit wrote into the middle of both trees: a different leaf page each, several
// times the pages per commit, and a third of the throughput (docs/benchmarks.md).
//
//	Requests: UUIDv7 → requestEntry (JSON); the key is the created erasure's id, or a fresh
//	          UUIDv7 for a Submit answered with an existing erasure (deduplicated)
//	Subjects: erasure id → account_id "\x00" fingerprint, for open erasures only
//
// New reads both buckets into memory (and converts the first layout). Afterwards memory follows
// the store through commit hooks (store.Tx.OnCommit), which run in commit order before any
// caller of the commit is answered. The subject map is a hint checked against the erasure's
// stored state inside Submit's transaction; the request map is exact.
//
// Memory: about 150 bytes per request_id ever accepted, plus one entry per open erasure.

// requestEntry is the stored outcome of one accepted request_id.
type requestEntry struct {
	RequestID    string `json:"request_id"`
	ErasureID    string `json:"erasure_id"`
	PayloadHash  string `json:"payload_hash"` // keyed hash of the payload, hex
	Deduplicated bool   `json:"deduplicated,omitempty"`
}

// requestRef is a requestEntry in memory.
type requestRef struct {
	erasure uuid.UUID
	hash    [32]byte
	dedup   bool
}

func (e requestEntry) ref() (requestRef, error) {
	id, err := uuid.Parse(e.ErasureID)
	if err != nil {
		return requestRef{}, fmt.Errorf("idempotency record: erasure id: %w", err)
	}
	ref := requestRef{erasure: id, dedup: e.Deduplicated}
	if n, err := hex.Decode(ref.hash[:], []byte(e.PayloadHash)); err != nil || n != len(ref.hash) {
		return requestRef{}, fmt.Errorf("idempotency record: payload hash is not %d hex bytes", len(ref.hash))
	}
	return ref, nil
}

// submitIndex is the in-memory index Submit consults.
type submitIndex struct {
	mu       sync.Mutex
	requests map[string]requestRef // by request_id
	subjects map[string]string     // subjectKey → id of the open erasure
	// busy holds the request ids and subject keys of Submits between their lookup and their
	// commit; a second Submit for either waits for the channel to close, then looks again.
	busyRequests map[string]chan struct{}
	busySubjects map[string]chan struct{}
}

// subjectKey identifies a subject within an account, as the index keeps it.
func subjectKey(account, fingerprint string) string { return account + "\x00" + fingerprint }

// claim waits until no other Submit is writing requestID or subject, then either returns what
// requestID produced before (known), or reserves both for the caller and returns the id of the
// subject's open erasure ("" when none) and the function that ends the reservation.
func (ix *submitIndex) claim(ctx context.Context, requestID, subject string) (prior requestRef, known bool, open string, release func(), err error) {
	for {
		ix.mu.Lock()
		if ref, ok := ix.requests[requestID]; ok {
			ix.mu.Unlock()
			return ref, true, "", nil, nil
		}
		wait := ix.busyRequests[requestID]
		if wait == nil {
			wait = ix.busySubjects[subject]
		}
		if wait == nil {
			ch := make(chan struct{})
			ix.busyRequests[requestID], ix.busySubjects[subject] = ch, ch
			open = ix.subjects[subject]
			ix.mu.Unlock()
			return requestRef{}, false, open, func() {
				ix.mu.Lock()
				delete(ix.busyRequests, requestID)
				delete(ix.busySubjects, subject)
				ix.mu.Unlock()
				close(ch)
			}, nil
		}
		ix.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return requestRef{}, false, "", nil, ctx.Err()
		}
	}
}

// addRequest records an accepted request_id (a commit hook).
func (ix *submitIndex) addRequest(requestID string, ref requestRef) {
	ix.mu.Lock()
	ix.requests[requestID] = ref
	ix.mu.Unlock()
}

// openSubject records the open erasure of a subject (a commit hook).
func (ix *submitIndex) openSubject(subject, erasure string) {
	ix.mu.Lock()
	ix.subjects[subject] = erasure
	ix.mu.Unlock()
}

// closeSubject forgets the subject's open erasure if it is still erasure (a commit hook).
func (ix *submitIndex) closeSubject(subject, erasure string) {
	ix.mu.Lock()
	if ix.subjects[subject] == erasure {
		delete(ix.subjects, subject)
	}
	ix.mu.Unlock()
}

// putRequest stores the outcome of requestID under key and has the index learn it on commit.
func (s *Service) putRequest(tx *store.Tx, key string, e requestEntry) error {
	ref, err := e.ref()
	if err != nil {
		return err
	}
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := tx.Put(store.Requests, []byte(key), v); err != nil {
		return err
	}
	return tx.OnCommit(func() { s.index.addRequest(e.RequestID, ref) })
}

// openSubjectIndex marks r as its subject's open erasure, on disk and, on commit, in memory.
func (s *Service) openSubjectIndex(tx *store.Tx, r *record) error {
	sk := subjectKey(r.AccountID, r.Fingerprint)
	if err := tx.Put(store.Subjects, []byte(r.ID), []byte(sk)); err != nil {
		return err
	}
	return tx.OnCommit(func() { s.index.openSubject(sk, r.ID) })
}

// closeSubjectIndex removes r, which has reached a final state, from the subject index.
func (s *Service) closeSubjectIndex(tx *store.Tx, r *record) error {
	if err := tx.Delete(store.Subjects, []byte(r.ID)); err != nil {
		return err
	}
	sk, id := subjectKey(r.AccountID, r.Fingerprint), r.ID
	return tx.OnCommit(func() { s.index.closeSubject(sk, id) })
}

// loadIndex converts the first layout of the index buckets if it finds it, then reads both
// buckets into memory.
func (s *Service) loadIndex(ctx context.Context) error {
	var old bool
	err := s.db.View(func(tx *store.Tx) error {
		var err error
		old, err = hasFirstLayout(tx)
		return err
	})
	if err != nil {
		return err
	}
	if old {
		if err := s.db.Update(ctx, convertFirstLayout); err != nil {
			return fmt.Errorf("convert the Submit index: %w", err)
		}
		s.log.Info("converted the Submit index to ascending keys")
	}
	ix := &submitIndex{requests: map[string]requestRef{}, subjects: map[string]string{},
		busyRequests: map[string]chan struct{}{}, busySubjects: map[string]chan struct{}{}}
	err = s.db.View(func(tx *store.Tx) error {
		err := tx.Scan(store.Requests, nil, func(k, v []byte) (bool, error) {
			var e requestEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return false, fmt.Errorf("decode idempotency record %s: %w", k, err)
			}
			ref, err := e.ref()
			if err != nil {
				return false, err
			}
			ix.requests[e.RequestID] = ref
			return true, nil
		})
		if err != nil {
			return err
		}
		return tx.Scan(store.Subjects, nil, func(k, v []byte) (bool, error) {
			ix.subjects[string(v)] = string(k)
			return true, nil
		})
	})
	if err != nil {
		return fmt.Errorf("load the Submit index: %w", err)
	}
	s.index = ix
	return nil
}

// In the first layout, Requests was keyed by request_id (its entries had no request_id field)
// and Subjects by account "\x00" fingerprint with the erasure id as value.

func hasFirstLayout(tx *store.Tx) (bool, error) {
	old := false
	err := tx.Scan(store.Subjects, nil, func(k, _ []byte) (bool, error) {
		old = bytes.IndexByte(k, 0) >= 0
		return !old, nil
	})
	if err != nil || old {
		return old, err
	}
	err = tx.Scan(store.Requests, nil, func(_, v []byte) (bool, error) {
		var e requestEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return false, err
		}
		old = e.RequestID == ""
		return !old, nil
	})
	return old, err
}

func convertFirstLayout(tx *store.Tx) error {
	type kv struct{ k, v []byte }
	var subjects, requests []kv
	collect := func(dst *[]kv) func(k, v []byte) (bool, error) {
		return func(k, v []byte) (bool, error) {
			*dst = append(*dst, kv{bytes.Clone(k), bytes.Clone(v)})
			return true, nil
		}
	}
	if err := tx.Scan(store.Subjects, nil, collect(&subjects)); err != nil {
		return err
	}
	if err := tx.Scan(store.Requests, nil, collect(&requests)); err != nil {
		return err
	}
	for _, e := range subjects {
		if bytes.IndexByte(e.k, 0) < 0 {
			continue // already in the new layout
		}
		if err := tx.Delete(store.Subjects, e.k); err != nil {
			return err
		}
		if err := tx.Put(store.Subjects, e.v, e.k); err != nil {
			return err
		}
	}
	for _, e := range requests {
		var entry requestEntry
		if err := json.Unmarshal(e.v, &entry); err != nil {
			return fmt.Errorf("decode idempotency record: %w", err)
		}
		if entry.RequestID != "" {
			continue
		}
		entry.RequestID = string(e.k)
		key := entry.ErasureID
		if entry.Deduplicated {
			id, err := uuid.NewV7()
			if err != nil {
				return err
			}
			key = id.String()
		}
		if _, err := entry.ref(); err != nil {
			return err
		}
		v, err := json.Marshal(entry)
		if err != nil {
			return err
		}
		if err := tx.Delete(store.Requests, e.k); err != nil {
			return err
		}
		if err := tx.Put(store.Requests, []byte(key), v); err != nil {
			return err
		}
	}
	return nil
}
