package service

import (
	"context"
	"slices"
	"testing"

	"github.com/erasured/erasured/store"
)

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

func (s *stallStore) Update(ctx context.Context, fn func(tx *store.Tx) error) error {
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
