package service

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/boltstore"
)

// publicFP is the public fingerprint erasure id gives identifier s (its data key must exist).
func (e *env) publicFP(id string, s Subject) string {
	e.t.Helper()
	var fp string
	err := e.db.View(func(tx store.Tx) error {
		r, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		key, err := e.svc.dataKeyOf(tx, r)
		fp = fingerprintWith(publicFPKey(key), r.AccountID, s)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return fp
}

// rootSecrets are the hex and raw forms of the root fingerprints of ids and of the request hashes
// of reqs, as the Submit index compares them: none may be in the database file.
func rootSecrets(t *testing.T, svc *Service, account string, ids []Subject, reqs ...SubmitRequest) []string {
	t.Helper()
	var out []string
	for _, id := range ids {
		fp := svc.keys.Fingerprint(account, id)
		raw, _ := hex.DecodeString(fp)
		out = append(out, fp, string(raw))
	}
	for _, r := range reqs {
		h, err := svc.payloadHash(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, hex.EncodeToString(h[:]), string(h[:]))
	}
	return out
}

// scanSecrets fails if the raw bytes of the file hold any of secrets (from rootSecrets).
func scanSecrets(t *testing.T, path string, secrets []string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range secrets {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("%s holds root-key secret #%d (a fingerprint or request hash) in the clear", filepath.Base(path), i)
		}
	}
}

// TestPublicFingerprintsArePerErasure: what Status, events and receipts show is not the root
// fingerprint, stays the same for one erasure across restarts, and differs between two erasures
// of one subject.
func TestPublicFingerprintsArePerErasure(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	subj := customer("ABC-123")
	first := e.submit(submitReq(rid(1), "1234", subj)).Erasure
	root := e.svc.keys.Fingerprint("1234", subj)
	if first.Fingerprint == root || first.Fingerprint != e.publicFP(first.ID, subj) {
		t.Fatalf("fingerprint %s: want the public one %s, not the root one", first.Fingerprint, e.publicFP(first.ID, subj))
	}
	if _, err := e.svc.Cancel(ctx, first.Name(), "test"); err != nil {
		t.Fatal(err)
	}
	e.restart()
	res := e.submit(submitReq(rid(2), "1234", subj))
	second := res.Erasure
	if res.Deduplicated || second.ID == first.ID {
		t.Fatal("the subject's second erasure was deduplicated onto a cancelled one")
	}
	if second.Fingerprint == first.Fingerprint || second.Fingerprint == root {
		t.Errorf("two erasures of one subject share a fingerprint (%s, %s)", first.Fingerprint, second.Fingerprint)
	}
	got, err := e.svc.Status(ctx, first.Name())
	if err != nil || got.Fingerprint != first.Fingerprint {
		t.Errorf("after a restart Status shows fingerprint %s (%v), want %s", got.Fingerprint, err, first.Fingerprint)
	}
	// Dedup still compares root fingerprints: a retry and a new request for the subject find
	// the open erasure, across a restart.
	e.restart()
	if res := e.submit(submitReq(rid(3), "1234", subj)); !res.Deduplicated || res.Erasure.ID != second.ID {
		t.Errorf("Submit for the subject of an open erasure = %s dedup=%v, want %s", res.Erasure.ID, res.Deduplicated, second.ID)
	}
	if res := e.submit(submitReq(rid(2), "1234", subj)); res.Erasure.ID != second.ID {
		t.Errorf("retry = %s, want %s", res.Erasure.ID, second.ID)
	}
}

// toClearFields rewrites erasure id and the Requests entries pointing at it as they were stored
// before the index was sealed: root fingerprints and request hashes in the clear. Such a store
// had no open marks in its Submit index either (indexload.go): the mark that says so goes.
func (e *env) toClearFields(id string) {
	e.t.Helper()
	ctx := context.Background()
	err := e.db.Update(ctx, func(tx store.Tx) error {
		if err := tx.Delete(schema.SubmitIndex, openIndexMark); err != nil {
			return err
		}
		r, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		sec, _, err := e.svc.indexOf(tx, r)
		if err != nil {
			return err
		}
		r.Index, r.Fingerprint = nil, sec.fps[0]
		for i := range r.Aliases {
			r.Aliases[i].Fingerprint = sec.fps[1+i]
		}
		r.PayloadHash = hex.EncodeToString(sec.hash[:])
		if err := putQuiet(tx, r); err != nil {
			return err
		}
		type kv struct{ k, v []byte }
		var entries []kv
		err = tx.Scan(schema.Requests, nil, func(k, v []byte) (bool, error) {
			var en requestEntry
			if err := json.Unmarshal(v, &en); err != nil {
				return false, err
			}
			if en.ErasureID != id {
				return true, nil
			}
			key, err := e.svc.dataKeyOf(tx, r)
			if err != nil {
				return false, err
			}
			h, err := openRequestHash(key, en)
			if err != nil {
				return false, err
			}
			en.SealedHash, en.PayloadHash = nil, hex.EncodeToString(h[:])
			nv, err := json.Marshal(en)
			entries = append(entries, kv{bytes.Clone(k), nv})
			return true, err
		})
		if err != nil {
			return err
		}
		for _, en := range entries {
			if err := tx.Put(schema.Requests, en.k, en.v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// TestClearFieldsAreSealedOnLoad: a database whose records and idempotency entries hold root
// fingerprints and request hashes in the clear loads, keeps answering retries and deduplicating,
// and is rewritten with them sealed and public fingerprints in their place.
func TestClearFieldsAreSealedOnLoad(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	req := submitReq(rid(1), "1234", customer("ABC-123"))
	req.Aliases = []Subject{email("jane@example.com")}
	created := e.submit(req).Erasure
	join := submitReq(rid(2), "1234", email("jane@example.com"))
	join.Aliases = []Subject{phone("+44 7700 900123")}
	if res := e.submit(join); !res.Deduplicated || res.Erasure.ID != created.ID {
		t.Fatalf("join = %s dedup=%v", res.Erasure.ID, res.Deduplicated)
	}
	// A second erasure, shredded as shredding used to leave it.
	gone := e.submit(submitReq(rid(3), "1234", customer("XYZ-9"))).Erasure
	if _, err := e.svc.Cancel(ctx, gone.Name(), "test"); err != nil {
		t.Fatal(err)
	}
	err := e.db.Update(ctx, func(tx store.Tx) error {
		r, err := getRecord(tx, gone.ID)
		if err != nil {
			return err
		}
		r.DataKey, r.Sealed, r.Index, r.Fingerprint, r.PayloadHash = nil, nil, nil, "", shreddedHash
		r.ShredTime = e.clock.Now()
		return putQuiet(tx, r)
	})
	if err != nil {
		t.Fatal(err)
	}
	want, err := e.svc.Status(ctx, created.Name())
	if err != nil {
		t.Fatal(err)
	}
	e.toClearFields(created.ID)
	e.restart()

	var r *record
	if err := e.db.View(func(tx store.Tx) (err error) { r, err = getRecord(tx, created.ID); return err }); err != nil {
		t.Fatal(err)
	}
	if r.Index == nil || r.PayloadHash != "" {
		t.Errorf("after loading, the record has sealed index %v and payload hash %q in the clear", r.Index != nil, r.PayloadHash)
	}
	if r.Fingerprint != want.Fingerprint || len(r.Aliases) != 2 ||
		r.Aliases[0].Fingerprint != e.publicFP(created.ID, email("jane@example.com")) ||
		r.Aliases[1].Fingerprint != e.publicFP(created.ID, phone("+44 7700 900123")) {
		t.Errorf("after loading, fingerprints %s %+v: want the public ones", r.Fingerprint, r.Aliases)
	}
	var clear int
	err = e.db.View(func(tx store.Tx) error {
		return tx.Scan(schema.Requests, nil, func(k, v []byte) (bool, error) {
			var en requestEntry
			if err := json.Unmarshal(v, &en); err != nil {
				return false, err
			}
			if en.PayloadHash != "" || en.SealedHash == nil {
				clear++
			}
			return true, nil
		})
	})
	if err != nil || clear != 0 {
		t.Errorf("after loading, %d idempotency records keep their hash in the clear or lost it (%v)", clear, err)
	}

	// Everything still works, and again after a second restart (now from the sealed fields).
	for round := range 2 {
		for _, r := range []SubmitRequest{req, join} {
			if got := e.submit(r); got.Erasure.ID != created.ID {
				t.Errorf("round %d: retry of %s = %s, want %s", round, r.RequestID, got.Erasure.ID, created.ID)
			}
		}
		reuse := req
		reuse.ExternalRef = "T-1"
		if _, err := e.svc.Submit(ctx, reuse); KindOf(err) != KindConflict {
			t.Errorf("round %d: request_id reused with another payload: %v, want a conflict", round, err)
		}
		if _, err := e.svc.Submit(ctx, submitReq(rid(3), "1234", customer("XYZ-9"))); KindOf(err) != KindConflict {
			t.Errorf("round %d: retry for a shredded erasure: %v, want a conflict", round, err)
		}
		phoneReq := submitReq(rid(10+round), "1234", phone("447700900123"))
		if got := e.submit(phoneReq); !got.Deduplicated || got.Erasure.ID != created.ID {
			t.Errorf("round %d: Submit for a joined alias = %s dedup=%v, want %s", round, got.Erasure.ID, got.Deduplicated, created.ID)
		}
		e.restart()
	}
}

// TestWrongMasterKeyStartsWithoutAnsweringRetries: with a master key that unwraps no data key
// (a wrong configuration, or `erasured keys check`), New still starts, and a retry is answered
// with an error: never a new erasure, never a conflict. The right key answers it again.
func TestWrongMasterKeyStartsWithoutAnsweringRetries(t *testing.T) {
	e := newEnv(t)
	req := submitReq(rid(1), "1234", customer("ABC-123"))
	first := e.submit(req).Erasure
	dup := submitReq(rid(2), "1234", customer("ABC-123"))
	e.submit(dup)
	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := boltstore.Open(e.path, boltstore.Options{Buckets: schema.Buckets})
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewKeyring("other", bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(db, other, Config{Now: e.clock.Now})
	if err != nil {
		t.Fatalf("New with another master key: %v", err)
	}
	for _, r := range []SubmitRequest{req, dup} {
		if res, err := svc.Submit(context.Background(), r); KindOf(err) != KindUnavailable {
			t.Errorf("retry of %s with the wrong key = %+v, %v; want unavailable", r.RequestID, res.Erasure.ID, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	e.open()
	for _, r := range []SubmitRequest{req, dup} {
		if got := e.submit(r); got.Erasure.ID != first.ID {
			t.Errorf("retry of %s with the right key = %s, want %s", r.RequestID, got.Erasure.ID, first.ID)
		}
	}
}

// TestLostPeriodKeyRefusesNewSubmitsOfTheAccount: an open erasure whose data key does not
// unwrap at start (its period key file is lost) has its identifiers sealed out of the Submit
// index's reach. A new request_id for its subject must not start a second erasure: Submits of
// the account are refused until the erasure ends, and ending it (Cancel) must not need the key.
// Other accounts are served.
func TestLostPeriodKeyRefusesNewSubmitsOfTheAccount(t *testing.T) {
	e := newKeyEnv(t)
	first := e.submit(submitReq(rid(1), "1234", customer("ABC-123"))).Erasure
	e.close()
	for _, f := range e.periodFiles() {
		if err := os.Remove(filepath.Join(e.keyDir, f)); err != nil {
			t.Fatal(err)
		}
	}
	e.reopen()
	res, err := e.svc.Submit(context.Background(), submitReq(rid(2), "1234", customer("ABC-123")))
	if KindOf(err) != KindUnavailable {
		t.Fatalf("a new request for the subject of an unreadable open erasure = %s (deduplicated %v), %v; want unavailable",
			res.Erasure.ID, res.Deduplicated, err)
	}
	if _, err := e.svc.Submit(context.Background(), submitReq(rid(3), "5678", customer("ABC-123"))); err != nil {
		t.Errorf("another account's Submit: %v", err)
	}
	if _, err := e.svc.Cancel(context.Background(), first.Name(), "key lost"); err != nil {
		t.Fatalf("Cancel of the erasure whose key is lost: %v", err)
	}
	if res := e.submit(submitReq(rid(4), "1234", customer("ABC-123"))); res.Erasure.ID == first.ID || res.Deduplicated {
		t.Errorf("after the unreadable erasure ended, a new Submit = %s (deduplicated %v), want a new erasure", res.Erasure.ID, res.Deduplicated)
	}
}
