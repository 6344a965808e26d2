package service

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/google/uuid"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// Loading the Submit index.
//
// Memory holds open erasures only. So that New reads nothing of the others, the store lists the
// open erasures under openKey in SubmitIndex (written by the Submit that creates one, deleted by
// the change that ends it), and keeps, under schema.RequestIDKey, an entry for the request_id of
// every final erasure (written by that change) and of every deduplicated Submit (written by it):
// a pointer to the erasure, and to the Requests entry that holds the sealed hash of a
// deduplicated one. A Submit whose request_id memory does not know reads that entry (Submit). A
// store shared by processes keeps a full entry under every request_id already (shared.go).
//
// An open mark holds what the index needs of its erasure, so that New reads the marks alone, not
// the records (a record is several kB of JSON; a mark about 200 bytes): the request_id, the
// account, the sealed index and the data key as wrapped when the erasure was created. The key
// keeper wraps open data keys again as periods pass, into the record only, and destroys a period
// key once no record needs it: a mark whose key no longer unwraps sends New to the record, which
// has it. (The copy in the mark is wrapped by a period key the erasure was open in, as the
// record's own earlier versions were, and the mark goes when the erasure ends: the keeper's bound
// on how long a data key can be recovered stays as it is, shred.go.) Final erasures cost nothing
// at start, however many there are. A store written before the
// marks were kept has none (openIndexMark is absent): New reads every erasure once, as it did
// before, writes the marks and entries, and the mark that says they are there (rebuildIndex).
//
// The marks could drift from the records only if a binary that does not keep them changed the
// store. New compares their number with the erasure counts (stats.go), which every binary since
// the counts has kept, and reads everything again when they differ.
//
// Cost, with 1,000,000 erasures of which 100,000 open (bench -only restart, docs/benchmarks.md):
// see the figures there.

// openIndexMark, in SubmitIndex, says the store keeps the open marks and the request_id entries of
// final erasures described above.
var openIndexMark = []byte("m/open")

// openPrefix starts the open marks.
const openPrefix = "o/"

// openKey marks erasure id as open, in SubmitIndex.
func openKey(id string) []byte { return []byte(openPrefix + id) }

// A store shared by processes keeps no open marks: there Submit's transaction reads the open
// erasures and request_ids from the store (shared.go), and memory only learns this process's
// commits, so New loads nothing.

// putOpenMark writes (or, after a join, rewrites) the open mark of erasure r, in a store of one
// process.
func (s *Service) putOpenMark(tx store.Tx, r *record) error {
	if s.cfg.Shared {
		return nil
	}
	mark := openMark(indexFields{RequestID: r.RequestID, AccountID: r.AccountID, DataKey: r.DataKey, Index: r.Index})
	return tx.Put(schema.SubmitIndex, openKey(r.ID), mark)
}

// loadIndex reads the open erasures into memory (and, the first time, writes the marks that list
// them). On a shared store it loads nothing (see above): shared stores came after the sealed
// index, so none holds fingerprints in the clear to seal.
func (s *Service) loadIndex(ctx context.Context) error {
	if s.cfg.Shared {
		s.index = newSubmitIndex()
		return nil
	}
	start := time.Now()
	ix := newSubmitIndex()
	var marked bool
	var listed, records int // open marks, and records read for marks that did not do
	err := s.db.View(func(tx store.Tx) error {
		if marked = tx.Get(schema.SubmitIndex, openIndexMark) != nil; !marked {
			return nil
		}
		counts, _, err := getCounts(tx)
		if err != nil {
			return err
		}
		open := 0
		for st, n := range counts.ByState {
			if !st.Final() {
				open += n
			}
		}
		ix = newSubmitIndexFor(open)
		prefix := []byte(openPrefix)
		err = tx.Scan(schema.SubmitIndex, prefix, func(k, v []byte) (bool, error) {
			if len(k) < len(prefix) || string(k[:len(prefix)]) != openPrefix {
				return false, nil
			}
			listed++
			id := string(k[len(prefix):])
			if r, ok := decodeOpenMark(id, v); ok {
				if done, err := s.loadOpenFast(tx, ix, r); done || err != nil {
					return err == nil, err
				}
			}
			records++
			v = tx.Get(schema.Erasures, []byte(id))
			if v == nil {
				return false, fmt.Errorf("erasure %s is marked open but not stored", id)
			}
			r, err := decodeIndexFields(id, v)
			if err != nil {
				return false, err
			}
			return true, s.loadOpen(tx, ix, r)
		})
		if err == nil && listed != open {
			s.log.Error("the open erasures marked in the Submit index disagree with the erasure counts (was the store changed by an older erasured?): reading every erasure again",
				"marked", listed, "open", open)
			marked = false
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("load the Submit index: %w", err)
	}
	if !marked {
		return s.rebuildIndex(ctx)
	}
	s.index = ix
	s.logUnreadable(ix)
	releaseMemory(listed)
	s.log.Info("loaded the Submit index", "open_erasures", listed, "records_read", records, "took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// releaseMemory hands the memory a load of n records used back to the system: decoding left
// garbage several times the index's size, which would otherwise stay mapped until the next
// collections.
func releaseMemory(n int) {
	if n >= 10_000 {
		debug.FreeOSMemory()
	}
}

// decodeIndexFields decodes what the index needs of erasure record v.
func decodeIndexFields(id string, v []byte) (indexFields, error) {
	var r indexFields
	if err := json.Unmarshal(v, &r); err != nil {
		return r, fmt.Errorf("decode erasure %s: %w", id, err)
	}
	return r, nil
}

// loadOpen has ix learn the open erasure r: its identifiers, and the request_id that created it
// when its record holds that Submit's hash (otherwise a Requests entry does, and the store
// answers it). A data key that does not unwrap blocks Submits of its account instead.
func (s *Service) loadOpen(tx store.Tx, ix *submitIndex, r indexFields) error {
	id, err := uuid.Parse(r.ID)
	if err != nil {
		return fmt.Errorf("erasure %s: %w", r.ID, err)
	}
	sec, ok, err := s.indexSecretsOf(tx, r)
	if err != nil {
		return err
	}
	if !ok {
		// A wrong master key or key directory. New still starts (`erasured keys check` counts
		// what opens): the request_id stays known and its retries fail, its identifiers are
		// not indexed.
		ix.requests[ridKeyOf(r.RequestID)] = id
		ix.blockAccount(r.AccountID, r.ID)
		return nil
	}
	if sec.hasHash {
		ix.requests[ridKeyOf(r.RequestID)] = id
	}
	ix.openLocked(id, fpKeys(r.AccountID, sec.fps))
	return nil
}

// loadOpenFast is loadOpen from an open mark, whose data key may be wrapped by a period key
// destroyed since: done is false then, and the record must be read.
func (s *Service) loadOpenFast(tx store.Tx, ix *submitIndex, r indexFields) (done bool, err error) {
	id, err := uuid.Parse(r.ID)
	if err != nil {
		return false, fmt.Errorf("erasure %s: %w", r.ID, err)
	}
	key, err := s.keys.unwrapIn(tx, r.ID, r.DataKey)
	if err != nil {
		return false, nil
	}
	sec, err := openIndex(key, r.ID, r.Index)
	if err != nil {
		return false, err
	}
	if sec.hasHash {
		ix.requests[ridKeyOf(r.RequestID)] = id
	}
	ix.openLocked(id, fpKeys(r.AccountID, sec.fps))
	return true, nil
}

// openMarkVersion starts an open mark's value; then come, each as a uvarint length and its
// bytes, the request_id, the account, the wrapped data key and the sealed index.
const openMarkVersion = 1

// openMark is the value of erasure r's open mark (see above); empty when r's record does not
// hold its data key and sealed index (a record written before them: New reads the record).
func openMark(r indexFields) []byte {
	if r.DataKey == nil || r.Index == nil {
		return nil
	}
	out := make([]byte, 0, 1+4*binary.MaxVarintLen32+len(r.RequestID)+len(r.AccountID)+len(r.DataKey)+len(r.Index))
	out = append(out, openMarkVersion)
	for _, f := range [][]byte{[]byte(r.RequestID), []byte(r.AccountID), r.DataKey, r.Index} {
		out = binary.AppendUvarint(out, uint64(len(f)))
		out = append(out, f...)
	}
	return out
}

// decodeOpenMark decodes the open mark v of erasure id; ok is false when it holds nothing (or
// what this binary does not read), and the record must be read.
func decodeOpenMark(id string, v []byte) (r indexFields, ok bool) {
	if len(v) == 0 || v[0] != openMarkVersion {
		return r, false
	}
	v = v[1:]
	var fields [4][]byte
	for i := range fields {
		n, w := binary.Uvarint(v)
		if w <= 0 || uint64(len(v)-w) < n {
			return r, false
		}
		fields[i], v = v[w:w+int(n)], v[w+int(n):]
	}
	if len(v) != 0 {
		return r, false
	}
	return indexFields{ID: id, RequestID: string(fields[0]), AccountID: string(fields[1]), DataKey: fields[2], Index: fields[3]}, true
}

// indexSecretsOf opens the index secrets of record r; ok is false when its data key does not
// unwrap.
func (s *Service) indexSecretsOf(tx store.Tx, r indexFields) (sec indexSecrets, ok bool, err error) {
	if r.Index == nil { // written before the index was sealed
		sec, err = clearSecrets(r.PayloadHash, r.Fingerprint, r.Aliases)
		if err != nil {
			return sec, false, fmt.Errorf("erasure %s: %w", r.ID, err)
		}
		return sec, true, nil
	}
	w := r.DataKey
	if w == nil {
		w = tx.Get(schema.Keys, []byte(r.ID))
	}
	key, err := s.keys.unwrapIn(tx, r.ID, w)
	if err != nil {
		return sec, false, nil
	}
	sec, err = openIndex(key, r.ID, r.Index)
	return sec, err == nil, err
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

// indexWrite is one key the first load writes into SubmitIndex.
type indexWrite struct{ key, value []byte }

// rebuildIndex reads every erasure and the Requests bucket: memory learns the open erasures, and
// the store gets the open marks, the request_id entries of final erasures and deduplicated
// Submits (in a store of one process), and then openIndexMark. It is how a store written before
// the marks were kept is opened, once. Records and entries still holding root fingerprints or
// hashes in the clear are sealed (sealClearFields).
func (s *Service) rebuildIndex(ctx context.Context) error {
	start := time.Now()
	ix := newSubmitIndex()
	var clear clearFields
	var writes []indexWrite
	err := s.db.View(func(tx store.Tx) error {
		pointers := map[string]requestEntry{} // by request_id: the entries of final erasures and deduplicated Submits
		err := tx.Scan(schema.Erasures, nil, func(k, v []byte) (bool, error) {
			r, err := decodeIndexFields(string(k), v)
			if err != nil {
				return false, err
			}
			if r.Index == nil && r.ShredTime.IsZero() && r.PayloadHash != shreddedHash {
				clear.records = append(clear.records, r.ID)
			}
			if r.State.Final() {
				pointers[r.RequestID] = requestEntry{RequestID: r.RequestID, ErasureID: r.ID}
				return true, nil
			}
			writes = append(writes, indexWrite{key: openKey(r.ID), value: openMark(r)})
			return true, s.loadOpen(tx, ix, r)
		})
		if err != nil {
			return err
		}
		err = tx.Scan(schema.Requests, nil, func(k, v []byte) (bool, error) {
			var e requestEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return false, fmt.Errorf("decode idempotency record %s: %w", k, err)
			}
			if e.PayloadHash != "" {
				clear.entries = append(clear.entries, string(k))
			}
			// The entry holds the hash: it answers its request_id, whether deduplicated or the
			// creating Submit of an erasure whose record did not keep the hash.
			pointers[e.RequestID] = requestEntry{RequestID: e.RequestID, ErasureID: e.ErasureID, Deduplicated: e.Deduplicated, Entry: string(k)}
			return true, nil
		})
		if err != nil || s.cfg.Shared { // a shared store has its full entries already
			return err
		}
		for _, e := range pointers {
			v, err := json.Marshal(e)
			if err != nil {
				return err
			}
			writes = append(writes, indexWrite{key: schema.RequestIDKey(e.RequestID), value: v})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load the Submit index: %w", err)
	}
	s.index = ix
	s.logUnreadable(ix)
	if len(clear.records)+len(clear.entries) > 0 {
		if err := s.sealClearFields(ctx, clear); err != nil {
			return fmt.Errorf("seal the Submit index: %w", err)
		}
	}
	writes = append(writes, indexWrite{key: openIndexMark, value: []byte{1}}) // last: it says the rest is there
	err = inChunks(ctx, s, writes, func(tx store.Tx, w indexWrite) error {
		return tx.Put(schema.SubmitIndex, w.key, w.value)
	})
	if err != nil {
		return fmt.Errorf("write the open erasures into the Submit index: %w", err)
	}
	releaseMemory(len(writes))
	s.log.Info("read every erasure once to list the open ones in the Submit index; later starts read only those",
		"open_erasures", len(ix.requests), "took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// logUnreadable logs, once the index is loaded, how many open erasures have data keys that do
// not unwrap.
func (s *Service) logUnreadable(ix *submitIndex) {
	n := 0
	for _, ids := range ix.unreadable {
		n += len(ids)
	}
	switch {
	case n > 0 && s.cfg.Shared: // the store dedups them (shared.go)
		s.log.Error("the data keys of some open erasures do not unwrap: their retries and joins fail", "erasures", n)
	case n > 0:
		s.log.Error("the data keys of some open erasures do not unwrap: their Submits are not deduplicated and their retries fail",
			"erasures", n)
	}
}
