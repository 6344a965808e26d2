package service

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/boltstore"
)

const (
	testRetention = 10 * 24 * time.Hour
	testPeriod    = 24 * time.Hour
)

// keyEnv is a pipeline environment whose keyring has a key directory.
type keyEnv struct {
	*pipeEnv
	keyDir string
	keys   *Keyring
	// masterID and master are the master key the keyring opens with (testKey unless changed).
	masterID string
	master   []byte
}

func newKeyEnv(t *testing.T) *keyEnv {
	t.Helper()
	dir := t.TempDir()
	e := &keyEnv{pipeEnv: &pipeEnv{env: &env{t: t, path: filepath.Join(dir, "erasure.db"),
		clock: &fakeClock{t: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)}}, lp: newFakeLP(), cfg: testPipelineConfig},
		keyDir: filepath.Join(dir, "keys"), masterID: "test", master: testKey}
	e.reopen()
	t.Cleanup(func() { e.db.Close() })
	return e
}

// reopen opens the store, the keyring from the key directory and a service with a pipeline.
func (e *keyEnv) reopen() {
	e.t.Helper()
	db, err := boltstore.Open(e.path, boltstore.Options{Buckets: schema.Buckets})
	if err != nil {
		e.t.Fatal(err)
	}
	if e.keys, err = OpenKeyring(e.masterID, e.master, e.keyDir, testPeriod, e.clock.Now()); err != nil {
		e.t.Fatal(err)
	}
	svc, err := New(db, e.keys, Config{Now: e.clock.Now, Retention: testRetention})
	if err != nil {
		e.t.Fatal(err)
	}
	e.db, e.svc = db, svc
	e.p = svc.NewPipeline(e.lp, e.cfg)
}

func (e *keyEnv) close() {
	e.t.Helper()
	if err := e.db.Close(); err != nil {
		e.t.Fatal(err)
	}
}

func (e *keyEnv) keep() KeepStats {
	e.t.Helper()
	st, err := e.svc.Keep(context.Background())
	if err != nil {
		e.t.Fatalf("Keep: %v", err)
	}
	return st
}

// periodFiles lists the period key files in the key directory.
func (e *keyEnv) periodFiles() []string {
	e.t.Helper()
	ents, err := os.ReadDir(e.keyDir)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, en := range ents {
		if strings.HasPrefix(en.Name(), periodPrefix) {
			out = append(out, en.Name())
		}
	}
	return out
}

func (e *keyEnv) record(id string) *record {
	e.t.Helper()
	var r *record
	if err := e.db.View(func(tx store.Tx) (err error) { r, err = getRecord(tx, id); return err }); err != nil {
		e.t.Fatal(err)
	}
	return r
}

// copyFile copies the closed store's file: an old copy of the database.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	raw, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

// wrappedKeys reads every wrapped data key of a database file, by the purpose it is wrapped for,
// with the ciphertexts sealed by each erasure's key.
func wrappedKeys(t *testing.T, path string) (keys map[string][]byte, sealed map[string][]byte) {
	t.Helper()
	db, err := boltstore.Open(path, boltstore.Options{Buckets: schema.Buckets})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys, sealed = map[string][]byte{}, map[string][]byte{}
	err = db.View(func(tx store.Tx) error {
		err := tx.Scan(schema.Erasures, nil, func(k, v []byte) (bool, error) {
			r, err := getRecord(tx, string(k))
			if err != nil {
				return false, err
			}
			if r.DataKey != nil {
				keys[r.ID] = r.DataKey
			}
			if r.Sealed != nil {
				sealed[r.ID] = r.Sealed
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		return tx.Scan(schema.Keys, nil, func(k, v []byte) (bool, error) {
			keys[string(k)] = bytes.Clone(v)
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys, sealed
}

// opensAny reports whether any key the keyring holds (the master wrap key, every period key)
// opens the wrapped data key w for purpose.
func opensAny(k *Keyring, purpose string, w []byte) bool {
	if _, err := k.unwrap(purpose, w); err == nil {
		return true
	}
	sealed := w
	if _, s, ok := parseWrapped(w); ok {
		sealed = s
	}
	for _, aad := range [][]byte{[]byte(k.id + "\x00" + purpose)} {
		if _, err := openWith(k.wrap, sealed, aad); err == nil {
			return true
		}
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	for _, pk := range k.periods {
		if _, err := openWith(pk.aead, sealed, periodAAD(pk.name, purpose)); err == nil {
			return true
		}
	}
	return false
}

// batchKeys counts the batch data keys the database holds.
func batchKeys(t *testing.T, db store.DB) int {
	t.Helper()
	n := 0
	if err := db.View(func(tx store.Tx) error {
		return tx.Scan(schema.Keys, []byte("batch/"), func(k, _ []byte) (bool, error) {
			if !bytes.HasPrefix(k, []byte("batch/")) {
				return false, nil
			}
			n++
			return true, nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// scanCanaries fails if the raw bytes of the file hold any canary.
func scanCanaries(t *testing.T, path string, canaries []string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range canaries {
		if bytes.Contains(raw, []byte(c)) {
			t.Errorf("%s holds the identifier %q in plain text", filepath.Base(path), c)
		}
	}
}

func TestShredAfterRetentionLeavesOldCopiesUnreadable(t *testing.T) {
	e := newKeyEnv(t)
	e.seedCustomer()
	canaries := []string{"ABC-123", "jane.canary@example.com", "447700900123", "+44 7700 900123",
		"1234000001", "1234000002", "c-0001", "c-0002", "c-0003", "cons-1"}
	req := submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123"))
	req.EraseConsumerProfile = true
	req.Aliases = []Subject{{Kind: SubjectEmail, Value: "jane.canary@example.com"}, {Kind: SubjectPhone, Value: "+44 7700 900123"}}
	res := e.submit(req)
	id, name := res.Erasure.ID, res.Erasure.Name()
	// A Submit deduplicated onto it: its idempotency record's hash is the erasure's too.
	dup := submitReq("00000000-0000-4000-8000-000000000002", "1234", email("jane.canary@example.com"))
	if d := e.submit(dup); !d.Deduplicated || d.Erasure.ID != id {
		t.Fatalf("second Submit for the subject = %s dedup=%v, want %s", d.Erasure.ID, d.Deduplicated, id)
	}
	// The root fingerprints of every identifier and the request hashes of both Submits, which
	// the master key can recompute for guessed identifiers: never in the file, in any form.
	ids := append([]Subject{req.Subject, {Kind: SubjectPhone, Value: "447700900123"}}, req.Aliases...)
	secrets := rootSecrets(t, e.svc, "1234", ids, req, dup)
	e.settle()
	e.advance(e.cfg.BatchMaxWait)
	e.runLivePersonTimeline()
	done := e.wantState(name, StateCompleted)
	finalAt := e.clock.Now()
	e.keep() // its batches are DONE: their record ids are needed no more, and go at once
	if n := batchKeys(t, e.db); n != 0 {
		t.Errorf("%d batch keys kept after the batches were done", n)
	}
	if root := e.svc.keys.Fingerprint("1234", req.Subject); done.Receipt == nil ||
		done.Receipt.SubjectFingerprint != done.Fingerprint || done.Receipt.SubjectFingerprint == root ||
		len(done.Receipt.AliasFingerprints) != 2 || done.Receipt.AliasFingerprints[0] == e.svc.keys.Fingerprint("1234", req.Aliases[0]) {
		t.Errorf("receipt fingerprints %+v: want the erasure's public ones, not the root ones", done.Receipt)
	}

	// An old copy of the database, taken while the erasure is still within retention.
	e.close()
	old := filepath.Join(t.TempDir(), "old.db")
	copyFile(t, e.path, old)
	e.reopen()
	oldKeys, oldSealed := wrappedKeys(t, old)
	if oldKeys[id] == nil || oldSealed[id] == nil {
		t.Fatalf("old copy holds %d wrapped keys, sealed subject %v: want the erasure's", len(oldKeys), oldSealed[id] != nil)
	}
	// Within retention the old copy opens: the test can tell readable from unreadable.
	dk, err := e.keys.unwrap(id, oldKeys[id])
	if err != nil {
		t.Fatalf("within retention, the old copy's data key does not unwrap: %v", err)
	}
	plain, err := open(dk, oldSealed[id], []byte(id))
	if err != nil || !strings.Contains(string(plain), "ABC-123") {
		t.Fatalf("within retention, the old copy's subject does not open: %v", err)
	}
	for _, path := range []string{e.path, old} {
		scanCanaries(t, path, canaries)
		scanSecrets(t, path, secrets)
	}

	// Retention passes: the erasure is shredded; one period later its period key is destroyed.
	e.clock.Advance(testRetention + time.Minute)
	if st := e.keep(); st.Shredded != 1 {
		t.Errorf("keeper at retention: %+v, want 1 erasure shredded", st)
	}
	e.clock.Advance(testPeriod)
	st := e.keep()
	if len(st.Destroyed) == 0 {
		t.Errorf("keeper one period after retention destroyed no period key (%+v)", st)
	}
	if bound := finalAt.Add(testRetention + testPeriod + time.Minute); e.clock.Now().After(bound) {
		t.Fatalf("test clock %v passed the bound %v", e.clock.Now(), bound)
	}

	r := e.record(id)
	if r.DataKey != nil || r.Sealed != nil || r.SealedTargets != nil || r.SealedConsumers != nil || r.ShredTime.IsZero() {
		t.Errorf("shredded record keeps data key %v, subject %v, targets %v, consumers %v (shred time %v)",
			r.DataKey != nil, r.Sealed != nil, r.SealedTargets != nil, r.SealedConsumers != nil, r.ShredTime)
	}
	if r.Fingerprint != "" || r.PayloadHash != "" || r.Index != nil || r.Aliases[0].Fingerprint != "" {
		t.Errorf("shredded record keeps fingerprint %q, alias fingerprint %q, payload hash %q, sealed index %v",
			r.Fingerprint, r.Aliases[0].Fingerprint, r.PayloadHash, r.Index != nil)
	}
	if !r.Purged || !r.PurgeTime.Equal(finalAt.Add(testRetention)) || !done.PurgeTime.Equal(r.PurgeTime) || done.Purged {
		t.Errorf("purge time %v (at completion %v), purged %v (at completion %v): want %v, true (false)",
			r.PurgeTime, done.PurgeTime, r.Purged, done.Purged, finalAt.Add(testRetention))
	}
	if _, err := e.svc.identities(id); err == nil {
		t.Error("a shredded erasure's identities still unseal")
	}
	got := e.wantState(name, StateCompleted)
	if got.Receipt == nil || VerifyReceipt(*got.Receipt, e.keys.PublicKey()) != nil || got.Receipt.Hash != done.Receipt.Hash {
		t.Error("the receipt of a shredded erasure no longer verifies")
	}
	// A retry of its request_id, or of the deduplicated one, creates no second erasure, also
	// after a restart.
	for range 2 {
		for _, r := range []SubmitRequest{req, dup} {
			if _, err := e.svc.Submit(context.Background(), r); KindOf(err) != KindConflict {
				t.Errorf("a retry of %s after shredding: %v, want a conflict", r.RequestID, err)
			}
		}
		e.close()
		e.reopen()
	}

	// With the master key, the key directory as it is now and the old copy, nothing opens.
	e.close()
	fresh, err := OpenKeyring("test", testKey, e.keyDir, testPeriod, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	for purpose, w := range oldKeys {
		if opensAny(fresh, purpose, w) {
			t.Errorf("the old copy's data key %q opens with a key still held", purpose)
		}
	}
	newKeys, _ := wrappedKeys(t, e.path)
	if len(newKeys) != 0 {
		t.Errorf("the database still holds %d wrapped data keys", len(newKeys))
	}
	for _, path := range []string{e.path, old} {
		scanCanaries(t, path, canaries)
		scanSecrets(t, path, secrets)
	}
	e.reopen()
}

func TestOpenErasureSurvivesManyPeriods(t *testing.T) {
	e := newKeyEnv(t)
	e.seedCustomer()
	// A MANUAL erasure stays open, waiting for an approver, for many periods.
	req := submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123"))
	req.Confirmation = ConfirmationManual
	res := e.submit(req)
	id, name := res.Erasure.ID, res.Erasure.Name()
	// Another erasure ends at once; its key must not outlive it by more than retention + period.
	other := e.submit(submitReq("00000000-0000-4000-8000-000000000002", "1234", customer("NOBODY-1")))
	if _, err := e.svc.Cancel(context.Background(), other.Erasure.Name(), "test"); err != nil {
		t.Fatal(err)
	}
	e.settle()
	e.wantState(name, StateAwaitingConfirmation)
	first := e.keys.PeriodKeys()[0]

	for day := range 25 {
		e.advance(testPeriod)
		e.keep()
		if day == 12 {
			e.close()
			e.reopen()
		}
		r := e.record(id)
		if by := wrappedBy(r.DataKey); by != e.keys.keyFor(e.clock.Now()) {
			t.Fatalf("day %d: the open erasure's key is wrapped by %q, want the current period's", day, by)
		}
		ids, err := e.svc.identities(id)
		if err != nil || ids[0].Value != "ABC-123" {
			t.Fatalf("day %d: the open erasure's subject does not unseal: %v", day, err)
		}
	}
	if n := len(e.periodFiles()); n > int(testRetention/testPeriod)+2 {
		t.Errorf("%d period key files after 25 periods with a retention of 10: past ones are not destroyed", n)
	}
	for _, name := range e.keys.PeriodKeys() {
		if name == first {
			t.Errorf("the first period key %s is still held", first)
		}
	}
	if r := e.record(other.Erasure.ID); r.ShredTime.IsZero() || r.DataKey != nil {
		t.Error("the cancelled erasure was not shredded after retention")
	}

	// The pipeline still works on the erasure.
	e.wantState(name, StateAwaitingConfirmation)
	plan, err := e.svc.Resolve(context.Background(), name, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := WithPrincipal(context.Background(), "approver")
	if _, err := e.svc.Resolve(ctx, name, &Decision{Confirm: true, PlanEtag: plan.Plan.Etag}); err != nil {
		t.Fatal(err)
	}
	e.settle()
	e.advance(e.cfg.BatchMaxWait)
	e.runLivePersonTimeline()
	e.wantState(name, StateCompleted)
}

func TestKeysWrappedByTheMasterKeyMigrate(t *testing.T) {
	e := newEnv(t) // no key directory: the data key is wrapped by the master key
	id := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123"))).Erasure.ID
	pub := e.svc.keys.PublicKey()
	if by := wrappedBy(e.svc.keys.newDataKeyMust(t)); by != "" {
		t.Fatalf("without a key directory a data key is wrapped by %q", by)
	}
	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := boltstore.Open(e.path, boltstore.Options{Buckets: schema.Buckets})
	if err != nil {
		t.Fatal(err)
	}
	e.db = db
	dir := filepath.Join(t.TempDir(), "keys")
	keys, err := OpenKeyring("test", testKey, dir, testPeriod, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(keys.PublicKey(), pub) {
		t.Error("the receipt-signing key changed with the key directory")
	}
	svc, err := New(db, keys, Config{Now: e.clock.Now, Retention: testRetention})
	if err != nil {
		t.Fatal(err)
	}
	// The fingerprint is unchanged: a second Submit is deduplicated onto the first.
	if res, err := svc.Submit(context.Background(), submitReq("00000000-0000-4000-8000-000000000002", "1234", customer("ABC-123"))); err != nil || !res.Deduplicated {
		t.Errorf("Submit after migration: deduplicated %v, err %v", res.Deduplicated, err)
	}
	st, err := svc.MigrateKeys(context.Background())
	if err != nil || st.Migrated != 1 {
		t.Fatalf("MigrateKeys: %+v, %v; want 1 key migrated", st, err)
	}
	var r *record
	if err := db.View(func(tx store.Tx) (err error) { r, err = getRecord(tx, id); return err }); err != nil {
		t.Fatal(err)
	}
	if wrappedBy(r.DataKey) != keys.PeriodKeys()[0] {
		t.Errorf("after migration the data key is wrapped by %q", wrappedBy(r.DataKey))
	}
	if _, err := keys.unwrapMaster(id, r.DataKey); err == nil {
		t.Error("the master key alone still unwraps the migrated key")
	}
	if ids, err := svc.identities(id); err != nil || ids[0].Value != "ABC-123" {
		t.Errorf("after migration the subject does not unseal: %v", err)
	}
}

// newDataKeyMust wraps a fresh data key, for tests.
func (k *Keyring) newDataKeyMust(t *testing.T) []byte {
	t.Helper()
	dk, err := k.newDataKey("probe")
	if err != nil {
		t.Fatal(err)
	}
	return dk.wrapped
}

func TestPipelineRunMigratesKeysOnItsOwn(t *testing.T) {
	e := newEnv(t) // no key directory: the data key is wrapped by the master key
	e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123")))
	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := boltstore.Open(e.path, boltstore.Options{Buckets: schema.Buckets})
	if err != nil {
		t.Fatal(err)
	}
	e.db = db
	keys, err := OpenKeyring("test", testKey, filepath.Join(t.TempDir(), "keys"), testPeriod, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(db, keys, Config{Now: e.clock.Now, Retention: testRetention})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := svc.CheckKeys(); err != nil || c.Master != 1 {
		t.Fatalf("before the pipeline runs: %+v, %v", c, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.NewPipeline(newFakeLP(), testPipelineConfig).Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := svc.CheckKeys()
		if err != nil {
			t.Fatal(err)
		}
		if c.Master == 0 && c.Open == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the running pipeline did not move the key under a period key: %+v", c)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
