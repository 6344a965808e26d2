package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

func TestSubmitIdempotentAcrossRestart(t *testing.T) {
	e := newEnv(t)
	req := submitReq("4a7c1f62-0d5e-4f3b-9b7e-1c2d3e4f5a6b", "1234", customer("ABC-123"))
	first := e.submit(req)
	if first.Erasure.State != StateReceived || first.Deduplicated {
		t.Fatalf("first Submit = %+v, want a new RECEIVED erasure", first)
	}
	again := e.submit(req)
	if again.Erasure.ID != first.Erasure.ID {
		t.Errorf("retry returned %s, want %s", again.Erasure.ID, first.Erasure.ID)
	}
	e.restart()
	afterRestart := e.submit(req)
	if afterRestart.Erasure.ID != first.Erasure.ID {
		t.Errorf("retry after restart returned %s, want %s", afterRestart.Erasure.ID, first.Erasure.ID)
	}
	if got, err := e.svc.Status(context.Background(), first.Erasure.Name()); err != nil || got.Revision != first.Erasure.Revision {
		t.Errorf("Status after restart = %+v, %v; want revision %d", got, err, first.Erasure.Revision)
	}
}

func TestSubmitSameRequestIDOtherPayload(t *testing.T) {
	e := newEnv(t)
	rid := "4a7c1f62-0d5e-4f3b-9b7e-1c2d3e4f5a6b"
	e.submit(submitReq(rid, "1234", customer("ABC-123")))
	variants := map[string]SubmitRequest{
		"other subject":  submitReq(rid, "1234", customer("ABC-124")),
		"other account":  submitReq(rid, "9999", customer("ABC-123")),
		"other channels": {RequestID: rid, AccountID: "1234", Subject: customer("ABC-123"), Channels: []Channel{ChannelChat}},
		"received time":  {RequestID: rid, AccountID: "1234", Subject: customer("ABC-123"), ReceivedTime: e.clock.Now().Add(-time.Hour)},
		"manual":         {RequestID: rid, AccountID: "1234", Subject: customer("ABC-123"), Confirmation: ConfirmationManual},
	}
	for name, req := range variants {
		_, err := e.svc.Submit(context.Background(), req)
		if KindOf(err) != KindConflict {
			t.Errorf("%s: Submit error = %v, want kind Conflict", name, err)
		}
	}
}

func TestSubmitConcurrentDuplicates(t *testing.T) {
	e := newEnv(t)
	req := submitReq("4a7c1f62-0d5e-4f3b-9b7e-1c2d3e4f5a6b", "1234", customer("ABC-123"))
	const n = 32
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			res, err := e.svc.Submit(context.Background(), req)
			if err != nil {
				t.Errorf("Submit: %v", err)
				return
			}
			ids[i] = res.Erasure.ID
		})
	}
	wg.Wait()
	for i, id := range ids {
		if id != ids[0] {
			t.Errorf("Submit #%d returned %s, want %s (one erasure for one request_id)", i, id, ids[0])
		}
	}
	list, err := e.svc.List(context.Background(), ListRequest{})
	if err != nil || len(list.Erasures) != 1 {
		t.Errorf("List = %d erasures, %v; want exactly 1", len(list.Erasures), err)
	}
}

func TestSubjectDedup(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	email := func(v string) Subject { return Subject{Kind: SubjectEmail, Value: v} }
	first := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", email("Jane.Doe@Example.com")))

	dup := e.submit(submitReq("00000000-0000-4000-8000-000000000002", "1234", email("jane.doe@example.com")))
	if !dup.Deduplicated || dup.Erasure.ID != first.Erasure.ID {
		t.Errorf("same subject, other spelling: got %s dedup=%v, want %s dedup=true", dup.Erasure.ID, dup.Deduplicated, first.Erasure.ID)
	}
	// The dedup answer is itself idempotent.
	if again := e.submit(submitReq("00000000-0000-4000-8000-000000000002", "1234", email("jane.doe@example.com"))); !again.Deduplicated || again.Erasure.ID != first.Erasure.ID {
		t.Errorf("retry of deduplicated Submit = %s dedup=%v", again.Erasure.ID, again.Deduplicated)
	}
	other := e.submit(submitReq("00000000-0000-4000-8000-000000000003", "5678", email("jane.doe@example.com")))
	if other.Deduplicated {
		t.Errorf("same subject in another account was deduplicated; accounts are separate")
	}
	if _, err := e.svc.Cancel(ctx, first.Erasure.Name(), "test"); err != nil {
		t.Fatal(err)
	}
	after := e.submit(submitReq("00000000-0000-4000-8000-000000000004", "1234", email("jane.doe@example.com")))
	if after.Deduplicated || after.Erasure.ID == first.Erasure.ID {
		t.Errorf("after the open erasure was cancelled, Submit = %s dedup=%v, want a new erasure", after.Erasure.ID, after.Deduplicated)
	}
}

func TestSubmitValidation(t *testing.T) {
	e := newEnv(t)
	future := e.clock.Now().Add(time.Hour)
	tests := map[string]SubmitRequest{
		"no subject":      {RequestID: "00000000-0000-4000-8000-000000000001", AccountID: "1"},
		"empty targets":   {RequestID: "00000000-0000-4000-8000-000000000001", AccountID: "1", Subject: Subject{Kind: SubjectTargets}},
		"future received": {RequestID: "00000000-0000-4000-8000-000000000001", AccountID: "1", Subject: customer("x"), ReceivedTime: future},
	}
	for name, req := range tests {
		if _, err := e.svc.Submit(context.Background(), req); KindOf(err) != KindInvalid {
			t.Errorf("%s: Submit error = %v, want kind Invalid", name, err)
		}
	}
}

func TestDueTimeAndAtRisk(t *testing.T) {
	e := newEnv(t)
	fresh := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1", customer("a")))
	if want := AddMonth(e.clock.Now()); !fresh.Erasure.DueTime.Equal(want) || fresh.Erasure.AtRisk {
		t.Errorf("fresh erasure: due %v at_risk %v; want due %v, not at risk", fresh.Erasure.DueTime, fresh.Erasure.AtRisk, want)
	}
	// Received 10 days ago: 5 + 20 days of LivePerson windows no longer fit before the deadline.
	old := e.submit(SubmitRequest{RequestID: "00000000-0000-4000-8000-000000000002", AccountID: "1", Subject: customer("b"),
		ReceivedTime: e.clock.Now().Add(-10 * 24 * time.Hour)})
	if !old.Erasure.AtRisk || !old.Erasure.AtRiskTime.Equal(e.clock.Now()) {
		t.Errorf("erasure received 10 days ago: at_risk = %v since %v, want true since its Submit (%v)",
			old.Erasure.AtRisk, old.Erasure.AtRiskTime, e.clock.Now())
	}
	if !fresh.Erasure.AtRiskTime.IsZero() {
		t.Errorf("fresh erasure: at_risk_time %v, want unset", fresh.Erasure.AtRiskTime)
	}
}

// TestNoPlaintextIdentifierOnDisk scans the database file for the subject's identifier: it must
// only ever be stored sealed.
func TestNoPlaintextIdentifierOnDisk(t *testing.T) {
	e := newEnv(t)
	canaries := []Subject{
		customer("CANARY-CUST-7f3a9"),
		{Kind: SubjectEmail, Value: "canary.7f3a9@example.org"},
		{Kind: SubjectPhone, Value: "+44 7700 900123"},
	}
	for i, s := range canaries {
		e.submit(submitReq(fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1), "1234", s))
	}
	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(e.path)
	if err != nil {
		t.Fatal(err)
	}
	for _, needle := range []string{"CANARY-CUST-7f3a9", "canary.7f3a9", "7700 900123", "7700900123"} {
		if bytes.Contains(raw, []byte(needle)) {
			t.Errorf("database file contains %q in plaintext", needle)
		}
	}
	e.open()
}

func TestSealedSubjectRoundTrip(t *testing.T) {
	e := newEnv(t)
	s := Subject{Kind: SubjectTargets, ConversationIDs: []string{"c1"}, EngagementIDs: []string{"123"}}
	res := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1", s))
	ids, err := e.svc.identities(res.Erasure.ID)
	if err != nil || len(ids) != 1 {
		t.Fatalf("identities = %+v, %v; want the subject alone", ids, err)
	}
	got := ids[0]
	if got.Kind != s.Kind || got.ConversationIDs[0] != "c1" || got.EngagementIDs[0] != "123" {
		t.Errorf("subject = %+v, want %+v", got, s)
	}
}

func TestSubmitAfterCloseIsUnavailable(t *testing.T) {
	e := newEnv(t)
	e.db.Close()
	_, err := e.svc.Submit(context.Background(), submitReq("00000000-0000-4000-8000-000000000001", "1", customer("a")))
	var se *Error
	if !errors.As(err, &se) || se.Kind != KindUnavailable {
		t.Errorf("Submit on a closed store = %v, want kind Unavailable", err)
	}
	e.open()
}

// TestSubmitConcurrentSameSubject sends one subject under many request ids at once: exactly one
// erasure is created, every other Submit is answered with it as deduplicated, and each answer
// holds after a restart, which rebuilds the index from the store.
func TestSubmitConcurrentSameSubject(t *testing.T) {
	e := newEnv(t)
	const n = 32
	rid := func(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }
	res := make([]SubmitResult, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := e.svc.Submit(context.Background(), submitReq(rid(i), "1234", customer("ABC-123")))
			if err != nil {
				t.Errorf("Submit: %v", err)
			}
			res[i] = r
		})
	}
	wg.Wait()
	var created []int
	for i, r := range res {
		if !r.Deduplicated {
			created = append(created, i)
		}
	}
	if len(created) != 1 {
		t.Fatalf("%d Submits created an erasure (%v), want exactly 1", len(created), created)
	}
	want := res[created[0]].Erasure.ID
	for i, r := range res {
		if r.Erasure.ID != want {
			t.Errorf("Submit #%d returned %s, want %s", i, r.Erasure.ID, want)
		}
	}

	e.restart()
	for i := range n {
		again := e.submit(submitReq(rid(i), "1234", customer("ABC-123")))
		if again.Erasure.ID != want || again.Deduplicated != res[i].Deduplicated {
			t.Errorf("retry of #%d after restart = %s dedup=%v, want %s dedup=%v", i, again.Erasure.ID, again.Deduplicated, want, res[i].Deduplicated)
		}
	}
	if late := e.submit(submitReq(rid(n), "1234", customer("ABC-123"))); !late.Deduplicated || late.Erasure.ID != want {
		t.Errorf("new request for the subject after restart = %s dedup=%v, want %s dedup=true", late.Erasure.ID, late.Deduplicated, want)
	}
}

// TestSubjectDedupChecksStoredState makes the in-memory subject index point at an erasure that
// has ended: Submit must check the stored state and create a new erasure, not attach to it.
func TestSubjectDedupChecksStoredState(t *testing.T) {
	e := newEnv(t)
	first := e.submit(submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123")))
	if _, err := e.svc.Cancel(context.Background(), first.Erasure.Name(), "test"); err != nil {
		t.Fatal(err)
	}
	e.svc.index.openSubject(first.Erasure.ID, subjectKey("1234", e.svc.keys.Fingerprint("1234", customer("ABC-123")))) // a stale hint
	next := e.submit(submitReq("00000000-0000-4000-8000-000000000002", "1234", customer("ABC-123")))
	if next.Deduplicated || next.Erasure.ID == first.Erasure.ID {
		t.Fatalf("Submit after the erasure was cancelled = %s dedup=%v, want a new erasure", next.Erasure.ID, next.Deduplicated)
	}
	if dup := e.submit(submitReq("00000000-0000-4000-8000-000000000003", "1234", customer("ABC-123"))); !dup.Deduplicated || dup.Erasure.ID != next.Erasure.ID {
		t.Errorf("next Submit = %s dedup=%v, want %s dedup=true", dup.Erasure.ID, dup.Deduplicated, next.Erasure.ID)
	}
}

// TestNewRefusesAnotherSchema: a store of the first layout or of a newer one is refused at New
// rather than converted or misread, and is left as it was.
func TestNewRefusesAnotherSchema(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version []byte // nil: delete the version
	}{
		{"first layout", store.U64(1)},
		{"newer", store.U64(schema.Version + 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			first := e.submit(submitReq("4a7c1f62-0d5e-4f3b-9b7e-1c2d3e4f5a6b", "1234", customer("ABC-123")))
			err := e.db.Update(context.Background(), func(tx store.Tx) error {
				if tc.version == nil {
					return tx.Delete(schema.Meta, []byte("version"))
				}
				return tx.Put(schema.Meta, []byte("version"), tc.version)
			})
			if err != nil {
				t.Fatal(err)
			}
			keys, err := NewKeyring("test", testKey)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := New(e.db, keys, Config{Now: e.clock.Now}); !errors.Is(err, schema.ErrVersion) {
				t.Fatalf("New over a store of %s = %v, want %v", tc.name, err, schema.ErrVersion)
			}
			var rec []byte
			e.db.View(func(tx store.Tx) error { rec = tx.Get(schema.Erasures, []byte(first.Erasure.ID)); return nil })
			if rec == nil {
				t.Errorf("the refused store lost erasure %s", first.Erasure.ID)
			}
		})
	}
}

// TestNewOpensAStoreOfTheReleasesBefore: a store written before the schema version was kept in
// it (data, no version) opens, and its erasures are there.
func TestNewOpensAStoreOfTheReleasesBefore(t *testing.T) {
	e := newEnv(t)
	first := e.submit(submitReq("4a7c1f62-0d5e-4f3b-9b7e-1c2d3e4f5a6b", "1234", customer("ABC-123")))
	if err := e.db.Update(context.Background(), func(tx store.Tx) error {
		return tx.Delete(schema.Meta, []byte("version"))
	}); err != nil {
		t.Fatal(err)
	}
	keys, err := NewKeyring("test", testKey)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(e.db, keys, Config{Now: e.clock.Now})
	if err != nil {
		t.Fatalf("New over a store of the releases before = %v", err)
	}
	if got, err := s.Status(context.Background(), first.Erasure.Name()); err != nil || got.ID != first.Erasure.ID {
		t.Errorf("Get(%s) = %v, %v; want the erasure submitted before", first.Erasure.ID, got.ID, err)
	}
}

// TestEncodedChangeRoundTrip checks that a record encoded before its transaction and given its
// revision inside it decodes to the record with that revision, and that its event carries none.
func TestEncodedChangeRoundTrip(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	r := &record{Erasure: Erasure{ID: "0190d7a4-0000-7000-8000-000000000001", RequestID: "r", AccountID: "1234",
		State: StateReceived, Channels: []Channel{ChannelChat}, ReceivedTime: now, UpdateTime: now, Revision: 99},
		Private: private{Sealed: []byte{1, 2, 3}, PayloadHash: "ab", Failures: 2}}
	c, err := encodeChange(r, StateUnspecified, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, rev := range []uint64{1, 18446744073709551615} {
		var got record
		if err := json.Unmarshal(withRevision(c.record, rev), &got); err != nil {
			t.Fatalf("decode record with revision %d: %v", rev, err)
		}
		want := *r
		want.Revision = rev
		if diff := cmp.Diff(want, got, cmp.AllowUnexported(record{})); diff != "" {
			t.Errorf("record with revision %d mismatch (-want +got):\n%s", rev, diff)
		}
	}
	if bytes.Contains(c.event, []byte(`"revision"`)) {
		t.Errorf("event %s carries a revision; readers take the event's own", c.event)
	}
	pub := r.Erasure
	pub.Revision = 0
	wantEvent, err := json.Marshal(Event{Erasure: pub, PreviousState: StateUnspecified, Time: now})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.event, wantEvent) {
		t.Errorf("event = %s\nwant json.Marshal of the Event: %s", c.event, wantEvent)
	}
	// A record with no private field set is the public view alone.
	bare := &record{Erasure: r.Erasure}
	cb, err := encodeChange(bare, StateReceived, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	var got record
	if err := json.Unmarshal(withRevision(cb.record, 7), &got); err != nil || got.ID != r.ID || got.Revision != 7 || got.Sealed != nil {
		t.Errorf("bare record decodes to %+v, %v", got, err)
	}
}

// TestDataKeyInRecordOrKeysBucket checks where the subject's data key is looked up: in the record,
// or for erasures stored before it moved there, in the Keys bucket; with neither the subject is
// reported destroyed.
func TestDataKeyInRecordOrKeysBucket(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	res := e.submit(submitReq("4a7c1f62-0d5e-4f3b-9b7e-1c2d3e4f5a6b", "1234", customer("ABC-123")))
	id := res.Erasure.ID
	if got, err := e.svc.identities(id); err != nil || got[0].Value != "ABC-123" {
		t.Fatalf("identities() = %+v, %v; want ABC-123", got, err)
	}
	rewrite := func(f func(tx store.Tx, r *record) error) {
		t.Helper()
		err := e.db.Update(ctx, func(tx store.Tx) error {
			r, err := getRecord(tx, id)
			if err != nil {
				return err
			}
			if err := f(tx, r); err != nil {
				return err
			}
			v, err := json.Marshal(r)
			if err != nil {
				return err
			}
			return tx.Put(schema.Erasures, []byte(id), v)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	rewrite(func(tx store.Tx, r *record) error { // as stored before the key moved into the record
		k := r.DataKey
		r.DataKey = nil
		return tx.Put(schema.Keys, []byte(id), k)
	})
	if got, err := e.svc.identities(id); err != nil || got[0].Value != "ABC-123" {
		t.Errorf("identities() with the key in the Keys bucket = %+v, %v; want ABC-123", got, err)
	}
	rewrite(func(tx store.Tx, _ *record) error { return tx.Delete(schema.Keys, []byte(id)) })
	if _, err := e.svc.identities(id); !errors.Is(err, errShredded) {
		t.Errorf("identities() with no key = %v, want %v", err, errShredded)
	}
}
