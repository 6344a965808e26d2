package service

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/erasured/erasured/service/pipeline"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// TestKeeperGoesOnPastUnreadableKeys: a data key the keyring cannot open any more (a database
// restored from a backup older than the retention, next to the current key directory, holds
// keys wrapped by period keys destroyed since) cannot be re-wrapped. The keeper counts it and
// goes on: the other erasures are still shredded after their retention, and unused period keys
// destroyed.
func TestKeeperGoesOnPastUnreadableKeys(t *testing.T) {
	e := newKeyEnv(t)
	e.seedCustomer()
	req := submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123"))
	req.Confirmation = ConfirmationManual // stays open
	e.submit(req)
	e.settle()
	e.close()
	backup := filepath.Join(t.TempDir(), "backup.db")
	copyFile(t, e.path, backup)
	e.reopen()
	for range 13 { // past retention and a period: the key of the backup's time is destroyed
		e.advance(testPeriod)
		e.keep()
	}
	e.close()
	copyFile(t, backup, e.path)
	e.reopen()
	// Another account: the first one refuses new Submits while an open erasure of it cannot be
	// read (TestLostPeriodKeyRefusesNewSubmitsOfTheAccount).
	other := e.submit(submitReq("00000000-0000-4000-8000-000000000002", "5678", customer("NOBODY-1")))
	if _, err := e.svc.Cancel(context.Background(), other.Erasure.Name(), "test"); err != nil {
		t.Fatal(err)
	}
	before := e.keys.PeriodKeys()
	for range 13 {
		e.advance(testPeriod)
		st, err := e.svc.Keep(context.Background())
		if err != nil {
			t.Fatalf("the keeper stops at a data key it cannot open: %v", err)
		}
		if st.Unreadable != 1 {
			t.Errorf("keeper run: %d unreadable data keys, want 1", st.Unreadable)
		}
	}
	if r := e.record(other.Erasure.ID); r.ShredTime.IsZero() || r.DataKey != nil {
		t.Error("an erasure final for longer than the retention was not shredded")
	}
	if slices.Contains(e.keys.PeriodKeys(), before[len(before)-1]) {
		t.Errorf("period key %s, unused for longer than the retention, was not destroyed", before[len(before)-1])
	}
}

// TestInFlightWrapSurvivesTheKeeper: a data key wrapped by the current period key just before
// the keeper runs, but not committed yet, is not seen by the keeper's look for keys in use. The
// key that wraps it must not be destroyed then, even when the clock has moved on by more than
// the retention (a clock step, a long pause).
func TestInFlightWrapSurvivesTheKeeper(t *testing.T) {
	e := newKeyEnv(t)
	dk, err := e.keys.newDataKey("in-flight")
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(testRetention + 2*testPeriod)
	e.keep()
	if _, err := e.keys.unwrap("in-flight", dk.wrapped); err != nil {
		t.Errorf("the key an uncommitted data key is wrapped by was destroyed: %v", err)
	}
}

// stallStore runs before once, ahead of the first Update after it is set: a transaction that
// waits long in the commit queue.
type stallStore struct {
	Store
	before func()
}

func (s *stallStore) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	if b := s.before; b != nil {
		s.before = nil
		b()
	}
	return s.Store.Update(ctx, fn)
}

// TestSubmitStalledPastTheKeyDestruction: a Submit wraps its data key before its transaction.
// Should the period key that wraps it be destroyed before that transaction runs, the Submit
// wraps the key again by the current one: the erasure it commits can be worked on.
func TestSubmitStalledPastTheKeyDestruction(t *testing.T) {
	e := newKeyEnv(t)
	e.seedCustomer()
	db := &stallStore{Store: e.db}
	svc, err := New(db, e.keys, Config{Now: e.clock.Now, Retention: testRetention})
	if err != nil {
		t.Fatal(err)
	}
	first := e.keys.PeriodKeys()[0]
	db.before = func() {
		e.clock.Advance(testRetention + 2*testPeriod)
		for range 2 { // the second run comes more than a keeper interval after the first
			if _, err := svc.Keep(context.Background()); err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(testPeriod)
		}
		if slices.Contains(e.keys.PeriodKeys(), first) {
			t.Fatalf("period key %s was not destroyed while the Submit waited", first)
		}
	}
	res, err := svc.Submit(context.Background(), submitReq("00000000-0000-4000-8000-000000000001", "1234", customer("ABC-123")))
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	ids, err := svc.identities(res.Erasure.ID)
	if err != nil || len(ids) == 0 || ids[0].Value != "ABC-123" {
		t.Errorf("the erasure a stalled Submit committed does not unseal: %v", err)
	}
}

// TestBatchIdsShreddedOnceNoLongerNeeded: a batch's sealed LivePerson record ids are read only
// to send the batch and to reconcile a send whose outcome is unknown (INTENT), and to settle a
// held batch (HELD), which may then be sent again. In any other state its key and sealed ids are
// destroyed at the keeper's next run, however long its erasures stay open.
func TestBatchIdsShreddedOnceNoLongerNeeded(t *testing.T) {
	for _, tc := range []struct {
		state string
		keep  bool
	}{
		{batchIntent, true},
		{batchHeld, true},
		{LPNotStarted, false},
		{LPInProgress, false},
		{LPDone, false},
		{LPCanceled, false},
		{batchRejected, false},
		{batchDissolved, false},
	} {
		t.Run(tc.state, func(t *testing.T) {
			e := newKeyEnv(t)
			now := e.clock.Now()
			key := bytes.Repeat([]byte{9}, 32)
			wrapped, err := e.keys.wrapKey(string(schema.BatchKeyName(7)), key)
			if err != nil {
				t.Fatal(err)
			}
			sealed, err := seal(key, []byte(`["conv-1","conv-2"]`), batchAAD(7))
			if err != nil {
				t.Fatal(err)
			}
			done := &record{Erasure: Erasure{ID: "x", State: StateCompleted, UpdateTime: now}, Private: private{FinalTime: now}}
			open := &record{Erasure: Erasure{ID: "y", State: StateScheduled, UpdateTime: now}}
			b := &batch{ID: 7, State: tc.state, Sealed: sealed, Erasures: []string{"x", "y"}, LPID: 99}
			if err := e.db.Update(context.Background(), func(tx store.Tx) error {
				for _, r := range []*record{done, open} {
					if err := putQuiet(tx, r); err != nil {
						return err
					}
				}
				if err := tx.Put(schema.Keys, schema.BatchKeyName(7), wrapped); err != nil {
					return err
				}
				return pipeline.PutBatch(tx, b)
			}); err != nil {
				t.Fatal(err)
			}
			e.advance(time.Minute)
			e.keep()
			var w []byte
			if err := e.db.View(func(tx store.Tx) (err error) {
				w = tx.Get(schema.Keys, schema.BatchKeyName(7))
				b, err = pipeline.GetBatch(tx, 7)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if kept := w != nil || b.Sealed != nil; kept != tc.keep {
				t.Errorf("batch in state %s: key and sealed ids kept %v, want %v", tc.state, kept, tc.keep)
			}
		})
	}
}
