package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
	"github.com/erasured/erasured/store/boltstore"
)

// A store shared by processes cannot be shared by two processes here (a bbolt file has one
// user), so these tests make the memory of a Service miss what the store holds in the ways a
// replica's does: by clearing it, by a second Service over the same store.DB handle (its memory
// sees none of the first's commits), and by a store that runs transaction functions again.

// sharedEnv is a boltstore file and the shared Services over it.
type sharedEnv struct {
	t     *testing.T
	path  string
	db    store.DB
	clock *fakeClock
}

func newSharedEnv(t *testing.T) *sharedEnv {
	t.Helper()
	e := &sharedEnv{t: t, path: filepath.Join(t.TempDir(), "erasure.db"),
		clock: &fakeClock{t: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)}}
	e.openDB()
	t.Cleanup(func() { e.db.Close() })
	return e
}

func (e *sharedEnv) openDB() {
	e.t.Helper()
	db, err := boltstore.Open(e.path, boltstore.Options{Buckets: schema.Buckets})
	if err != nil {
		e.t.Fatal(err)
	}
	e.db = db
}

// service is a Service over db (the env's store when nil) that shares it: a replica.
func (e *sharedEnv) service(db Store) *Service {
	e.t.Helper()
	if db == nil {
		db = e.db
	}
	keys, err := NewKeyring("test", testKey)
	if err != nil {
		e.t.Fatal(err)
	}
	svc, err := New(db, keys, Config{Now: e.clock.Now, Shared: true, Retention: time.Hour})
	if err != nil {
		e.t.Fatal(err)
	}
	return svc
}

func mustSubmit(t *testing.T, svc *Service, req SubmitRequest) SubmitResult {
	t.Helper()
	res, err := svc.Submit(context.Background(), req)
	if err != nil {
		t.Fatalf("Submit(%s): %v", req.RequestID, err)
	}
	return res
}

// erasureCount is how many erasures the store holds.
func erasureCount(t *testing.T, db store.DB) int {
	t.Helper()
	n := 0
	if err := db.View(func(tx store.Tx) error { n = tx.Count(schema.Erasures); return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// indexKeys are the SubmitIndex keys starting with prefix.
func indexKeys(t *testing.T, db store.DB, prefix string) []string {
	t.Helper()
	var out []string
	err := db.View(func(tx store.Tx) error {
		return tx.Scan(schema.SubmitIndex, []byte(prefix), func(k, _ []byte) (bool, error) {
			if !bytes.HasPrefix(k, []byte(prefix)) {
				return false, nil
			}
			out = append(out, string(k))
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSharedColdMemoryAsksTheStore: a replica whose memory saw none of the Submits (cleared, and
// a Service opened afresh after the first closed) answers a retry as a retry, a reuse as a
// reuse, and deduplicates a subject and an alias, from the store's keys alone.
func TestSharedColdMemoryAsksTheStore(t *testing.T) {
	for _, cold := range []string{"cleared", "reopened"} {
		t.Run(cold, func(t *testing.T) {
			e := newSharedEnv(t)
			svc := e.service(nil)
			req := submitReq(rid(1), "1234", customer("ABC-123"))
			req.Aliases = []Subject{{Kind: SubjectEmail, Value: "jane@example.com"}}
			first := mustSubmit(t, svc, req)
			switch cold {
			case "cleared":
				svc.index = newSubmitIndex()
			case "reopened":
				if err := e.db.Close(); err != nil {
					t.Fatal(err)
				}
				e.openDB()
				svc = e.service(nil)
				svc.index = newSubmitIndex() // even what New read back is forgotten
			}

			if again := mustSubmit(t, svc, req); again.Erasure.ID != first.Erasure.ID || again.Deduplicated {
				t.Errorf("retry = %s dedup=%v, want %s dedup=false", again.Erasure.ID, again.Deduplicated, first.Erasure.ID)
			}
			other := req
			other.Channels = []Channel{ChannelChat}
			if _, err := svc.Submit(context.Background(), other); KindOf(err) != KindConflict {
				t.Errorf("request_id with another payload: %v, want REQUEST_ID_REUSED", err)
			}
			byAlias := mustSubmit(t, svc, submitReq(rid(2), "1234", Subject{Kind: SubjectEmail, Value: "Jane@Example.com"}))
			if !byAlias.Deduplicated || byAlias.Erasure.ID != first.Erasure.ID {
				t.Errorf("Submit of the alias = %s dedup=%v, want %s dedup=true", byAlias.Erasure.ID, byAlias.Deduplicated, first.Erasure.ID)
			}
			svc.index = newSubmitIndex()
			// The deduplicated Submit's retry, from the store too.
			if again := mustSubmit(t, svc, submitReq(rid(2), "1234", Subject{Kind: SubjectEmail, Value: "Jane@Example.com"})); !again.Deduplicated || again.Erasure.ID != first.Erasure.ID {
				t.Errorf("retry of the deduplicated Submit = %s dedup=%v, want %s dedup=true", again.Erasure.ID, again.Deduplicated, first.Erasure.ID)
			}
			if bySubject := mustSubmit(t, svc, submitReq(rid(3), "1234", customer("ABC-123"))); !bySubject.Deduplicated || bySubject.Erasure.ID != first.Erasure.ID {
				t.Errorf("Submit of the subject = %s dedup=%v, want %s dedup=true", bySubject.Erasure.ID, bySubject.Deduplicated, first.Erasure.ID)
			}
			if n := erasureCount(t, e.db); n != 1 {
				t.Errorf("%d erasures stored, want 1", n)
			}
		})
	}
}

// rerunStore runs every Update function once more than the store would: a first time in a
// transaction it then rolls back, then for real, as a shared store does when the first run's
// reads changed. between, when set, runs once between the two runs of the next Update: a
// competing write by another replica.
type rerunStore struct {
	store.DB
	mu      sync.Mutex
	between func()
	reruns  int
}

var errRolledBack = errors.New("rolled back by the test")

func (w *rerunStore) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	err := w.DB.Update(ctx, func(tx store.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return errRolledBack
	})
	if err != nil && !errors.Is(err, errRolledBack) {
		return err // the function refused: running it again would refuse again
	}
	w.mu.Lock()
	between := w.between
	w.between = nil
	w.reruns++
	w.mu.Unlock()
	if between != nil {
		between()
	}
	return w.DB.Update(ctx, fn)
}

func (w *rerunStore) setBetween(f func()) {
	w.mu.Lock()
	w.between = f
	w.mu.Unlock()
}

// TestSharedSubmitRunsAgain: every Submit transaction runs twice, and its answer and its writes
// are the last run's; a competing replica's commit between the runs of a Submit that would have
// created an erasure makes the second run answer with that replica's erasure, as a retry (same
// request_id) or deduplicated (same subject).
func TestSharedSubmitRunsAgain(t *testing.T) {
	e := newSharedEnv(t)
	w := &rerunStore{DB: e.db}
	a := e.service(w)   // its transactions run twice
	b := e.service(nil) // another replica, on the same store

	req := submitReq(rid(1), "1234", customer("ABC-123"))
	first := mustSubmit(t, a, req)
	if first.Deduplicated || erasureCount(t, e.db) != 1 {
		t.Fatalf("first Submit = %+v, %d erasures; want one new erasure", first, erasureCount(t, e.db))
	}
	if again := mustSubmit(t, a, req); again.Erasure.ID != first.Erasure.ID {
		t.Errorf("retry = %s, want %s", again.Erasure.ID, first.Erasure.ID)
	}
	if dup := mustSubmit(t, a, submitReq(rid(2), "1234", customer("ABC-123"))); !dup.Deduplicated || dup.Erasure.ID != first.Erasure.ID {
		t.Errorf("same subject = %s dedup=%v, want %s dedup=true", dup.Erasure.ID, dup.Deduplicated, first.Erasure.ID)
	}

	// The same request_id, committed by b between a's runs.
	var theirs SubmitResult
	req = submitReq(rid(3), "1234", customer("DEF-456"))
	w.setBetween(func() { theirs = mustSubmit(t, b, req) })
	ours := mustSubmit(t, a, req)
	if theirs.Erasure.ID == "" || ours.Erasure.ID != theirs.Erasure.ID || ours.Deduplicated {
		t.Errorf("Submit racing the same request_id = %s dedup=%v, want the other replica's %s as a retry",
			ours.Erasure.ID, ours.Deduplicated, theirs.Erasure.ID)
	}

	// The same subject under another request_id.
	w.setBetween(func() { theirs = mustSubmit(t, b, submitReq(rid(4), "1234", customer("GHI-789"))) })
	ours = mustSubmit(t, a, submitReq(rid(5), "1234", customer("GHI-789")))
	if ours.Erasure.ID != theirs.Erasure.ID || !ours.Deduplicated {
		t.Errorf("Submit racing the same subject = %s dedup=%v, want the other replica's %s deduplicated",
			ours.Erasure.ID, ours.Deduplicated, theirs.Erasure.ID)
	}
	if n := erasureCount(t, e.db); n != 3 {
		t.Errorf("%d erasures stored, want 3", n)
	}
	if w.reruns == 0 {
		t.Fatal("the store ran no function twice")
	}

	// What the audit trail holds is the last runs': one entry a Submit.
	page, err := a.ListAudit(context.Background(), AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(page.Entries); got != 7 {
		t.Errorf("%d audit entries, want 7 (one for each Submit)", got)
	}
}

// TestSharedKeysLeaveWithTheErasure: the open-subject keys of an erasure (its aliases', a join's
// included) go in the transaction that ends it, the store then lets the subject start a new
// erasure, and the request_ids stay known; keys left behind by an erasure that ended are removed
// by the next Submit that meets them and by the shredding, which also takes the request hashes,
// so that a retry is refused from then on.
func TestSharedKeysLeaveWithTheErasure(t *testing.T) {
	ctx := context.Background()
	e := newSharedEnv(t)
	svc := e.service(nil)
	req := submitReq(rid(1), "1234", customer("ABC-123"))
	req.Aliases = []Subject{{Kind: SubjectEmail, Value: "jane@example.com"}}
	first := mustSubmit(t, svc, req)
	joined := submitReq(rid(2), "1234", customer("ABC-123"))
	joined.Aliases = []Subject{{Kind: SubjectPhone, Value: "+44 20 7946 0000"}}
	if res := mustSubmit(t, svc, joined); !res.Deduplicated {
		t.Fatalf("join = %+v, want deduplicated", res)
	}
	if got := indexKeys(t, e.db, string(schema.OpenSubjectPrefix)); len(got) != 3 {
		t.Errorf("open subject keys = %d, want 3 (subject, alias, joined alias)", len(got))
	}
	if got := indexKeys(t, e.db, "e/"); len(got) != 1 {
		t.Errorf("erasure keys = %d, want 1", len(got))
	}
	for _, k := range indexKeys(t, e.db, "") {
		for _, pd := range []string{"ABC-123", "jane", "7946"} {
			if bytes.Contains([]byte(k), []byte(pd)) {
				t.Errorf("key %q holds an identifier", k)
			}
		}
	}

	if _, err := svc.Cancel(ctx, first.Erasure.Name(), "test"); err != nil {
		t.Fatal(err)
	}
	if got := append(indexKeys(t, e.db, string(schema.OpenSubjectPrefix)), indexKeys(t, e.db, "e/")...); len(got) != 0 {
		t.Errorf("keys of the cancelled erasure left: %q", got)
	}
	svc.index = newSubmitIndex()
	if again := mustSubmit(t, svc, req); again.Erasure.ID != first.Erasure.ID {
		t.Errorf("retry after the cancel = %s, want %s", again.Erasure.ID, first.Erasure.ID)
	}
	byPhone := mustSubmit(t, svc, submitReq(rid(3), "1234", Subject{Kind: SubjectPhone, Value: "+442079460000"}))
	if byPhone.Deduplicated || byPhone.Erasure.ID == first.Erasure.ID {
		t.Fatalf("Submit of the joined alias after the cancel = %s dedup=%v, want a new erasure", byPhone.Erasure.ID, byPhone.Deduplicated)
	}

	// Keys that outlived their erasure (left by a failure to remove them): the next Submit of
	// the subject removes them and creates.
	if _, err := svc.Cancel(ctx, byPhone.Erasure.Name(), "test"); err != nil {
		t.Fatal(err)
	}
	fp := svc.keys.Fingerprint("1234", Subject{Kind: SubjectPhone, Value: "+442079460000"})
	if err := e.db.Update(ctx, func(tx store.Tx) error {
		return storeOpen(tx, byPhone.Erasure.ID, "1234", []string{fp})
	}); err != nil {
		t.Fatal(err)
	}
	svc.index = newSubmitIndex()
	fresh := mustSubmit(t, svc, submitReq(rid(4), "1234", Subject{Kind: SubjectPhone, Value: "+442079460000"}))
	if fresh.Deduplicated {
		t.Errorf("Submit over keys of an ended erasure was deduplicated onto %s", fresh.Erasure.ID)
	}
	if got := indexKeys(t, e.db, "e/"+byPhone.Erasure.ID); len(got) != 0 {
		t.Errorf("keys of the ended erasure left after a Submit met them: %q", got)
	}

	// The same for the shredding, and the request hashes go with it.
	if err := e.db.Update(ctx, func(tx store.Tx) error {
		return storeOpen(tx, first.Erasure.ID, "1234", []string{svc.keys.Fingerprint("1234", customer("ZZZ-999"))})
	}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Hour) // past the retention of the cancelled ones
	st, err := svc.Keep(ctx)
	if err != nil || st.Shredded != 2 {
		t.Fatalf("Keep = %+v, %v; want 2 erasures shredded", st, err)
	}
	if got := indexKeys(t, e.db, "e/"+first.Erasure.ID); len(got) != 0 {
		t.Errorf("keys of the shredded erasure left: %q", got)
	}
	for _, r := range []string{rid(1), rid(2)} {
		err := e.db.View(func(tx store.Tx) error {
			s, err := getStoredRequest(tx, r)
			switch {
			case err != nil:
				return err
			case s == nil:
				t.Errorf("request_id %s forgotten by the shredding", r)
			case s.SealedHash != nil || s.PayloadHash != "":
				t.Errorf("request_id %s keeps its hash after the shredding", r)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	svc.index = newSubmitIndex()
	for _, r := range []SubmitRequest{req, joined} {
		if _, err := svc.Submit(ctx, r); KindOf(err) != KindConflict {
			t.Errorf("retry of %s after the shredding: %v, want REQUEST_ID_REUSED", r.RequestID, err)
		}
	}
}

// TestSharedReplicasOnOneStore: two replicas, each with its own memory, over one store.DB. The
// same request_id sent to both at once yields one erasure, the other answer its retry; the same
// subject under two request_ids yields one erasure, the other deduplicated.
func TestSharedReplicasOnOneStore(t *testing.T) {
	e := newSharedEnv(t)
	replicas := []*Service{e.service(nil), e.service(nil)}
	const rounds = 20
	for i := range rounds {
		sameID := submitReq(rid(2*i), "1234", customer(fmt.Sprintf("ID-%d", i)))
		sameSubject := [2]SubmitRequest{
			submitReq(rid(1000+2*i), "1234", customer(fmt.Sprintf("SUBJ-%d", i))),
			submitReq(rid(1001+2*i), "1234", customer(fmt.Sprintf("SUBJ-%d", i))),
		}
		var byID, bySubject [2]SubmitResult
		var wg sync.WaitGroup
		for j, svc := range replicas {
			wg.Go(func() { byID[j] = mustSubmit(t, svc, sameID) })
			wg.Go(func() { bySubject[j] = mustSubmit(t, svc, sameSubject[j]) })
		}
		wg.Wait()
		if byID[0].Erasure.ID != byID[1].Erasure.ID || byID[0].Deduplicated || byID[1].Deduplicated {
			t.Errorf("round %d, one request_id on two replicas: %s and %s (dedup %v, %v), want one erasure and its retry",
				i, byID[0].Erasure.ID, byID[1].Erasure.ID, byID[0].Deduplicated, byID[1].Deduplicated)
		}
		if bySubject[0].Erasure.ID != bySubject[1].Erasure.ID || bySubject[0].Deduplicated == bySubject[1].Deduplicated {
			t.Errorf("round %d, one subject on two replicas: %s and %s (dedup %v, %v), want one erasure, the other Submit deduplicated",
				i, bySubject[0].Erasure.ID, bySubject[1].Erasure.ID, bySubject[0].Deduplicated, bySubject[1].Deduplicated)
		}
	}
	if n := erasureCount(t, e.db); n != 2*rounds {
		t.Errorf("%d erasures stored, want %d", n, 2*rounds)
	}
}

// TestSharingRefusesAStoreWrittenAlone: a store holding erasures that a process which did not
// share it wrote lacks their keys, so New refuses to share it; one shared from its first erasure
// opens again, but only for processes that share it.
func TestSharingRefusesAStoreWrittenAlone(t *testing.T) {
	keys, err := NewKeyring("test", testKey)
	if err != nil {
		t.Fatal(err)
	}
	e := newSharedEnv(t)
	mustSubmit(t, e.service(nil), submitReq(rid(1), "1234", customer("ABC-123"))) // marks the empty store
	e.service(nil)                                                                // and opens it again
	// A process not configured to share it is refused the shared store: its Submits would
	// neither read nor write the shared index, and could open a second erasure of a subject.
	if _, err := New(e.db, keys, Config{Now: e.clock.Now}); !errors.Is(err, errSharedStore) {
		t.Errorf("New not sharing a shared store = %v, want %v", err, errSharedStore)
	}

	alone := newSharedEnv(t)
	svc, err := New(alone.db, keys, Config{Now: alone.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	mustSubmit(t, svc, submitReq(rid(1), "1234", customer("ABC-123")))
	if _, err := New(alone.db, keys, Config{Now: alone.clock.Now, Shared: true}); !errors.Is(err, errUnsharedStore) {
		t.Errorf("New sharing a store written alone = %v, want %v", err, errUnsharedStore)
	}
}
