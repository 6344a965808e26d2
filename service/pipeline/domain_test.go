package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// fakeDomain is a Domain with no keys, for tests of the steps alone: targets and batch ids are
// "sealed" as plain JSON, and a transition checks its previous state against the one stored and
// the move against a small table (fakeMoves), then stores the record as it is (with a new
// revision) and writes no event. Tests call the steps in their own goroutine.
type fakeDomain struct {
	rev          uint64
	refusedMoves []string // "account step attrs…" of each ReportRefusedMove
}

func (d *fakeDomain) Targets(_ store.Tx, r *model.Record) ([]model.Target, error) {
	var ts []model.Target
	if len(r.SealedTargets) == 0 {
		return nil, nil
	}
	return ts, json.Unmarshal(r.SealedTargets, &ts)
}

func (d *fakeDomain) Search(store.Tx, *model.Record) ([]model.Subject, []string, error) {
	return nil, nil, nil
}

func (d *fakeDomain) AddConsumers(store.Tx, *model.Record, []string) error { return nil }
func (d *fakeDomain) Committable(store.Tx, []byte) bool                    { return true }

func (d *fakeDomain) TargetSealer(store.Tx, *model.Record) (func([]model.Target) ([]byte, error), error) {
	return func(ts []model.Target) ([]byte, error) { return json.Marshal(ts) }, nil
}

func (d *fakeDomain) SealBatchIDs(_ uint64, ids []string) ([]byte, []byte, error) {
	v, err := json.Marshal(ids)
	return v, []byte("key"), err
}

func (d *fakeDomain) BatchIDs(_ store.Tx, b *Batch) ([]string, error) {
	var ids []string
	return ids, json.Unmarshal(b.Sealed, &ids)
}

func (d *fakeDomain) Transition(tx store.Tx, r *model.Record, from model.State, ts []model.Target, now time.Time) error {
	stored := model.StateUnspecified
	old, err := model.GetRecord(tx, r.ID)
	if err != nil {
		return err
	}
	if old != nil {
		stored = old.State
	}
	if stored != from {
		return fmt.Errorf("fake: a change from %s of an erasure stored %s: %w", from, stored, ErrTransitionRefused)
	}
	if from != r.State && !fakeMoves[[2]model.State{from, r.State}] {
		return fmt.Errorf("fake: %s → %s: %w", from, r.State, ErrTransitionRefused)
	}
	if ts != nil {
		v, err := json.Marshal(ts)
		if err != nil {
			return err
		}
		r.SealedTargets, r.TargetCounts = v, model.CountTargets(ts)
	}
	d.rev++
	r.Revision, r.UpdateTime = d.rev, now
	return putRecord(tx, r)
}

// fakeMoves are the moves between states fakeDomain allows: a creation straight in the state a
// test needs, and the single steps the tests make. It has no skip, so that a poll's DONE for a
// SUBMITTED erasure (SUBMITTED → VERIFYING) is refused.
var fakeMoves = map[[2]model.State]bool{
	{model.StateUnspecified, model.StateScheduled}: true,
	{model.StateUnspecified, model.StateSubmitted}: true,
	{model.StateScheduled, model.StateSubmitted}:   true,
	{model.StateScheduled, model.StateCancelled}:   true,
	{model.StateSubmitted, model.StateDeleting}:    true,
	{model.StateDeleting, model.StateVerifying}:    true,
	{model.StateVerifying, model.StateCompleted}:   true,
}

func (d *fakeDomain) Complete(_ store.Tx, r *model.Record, _ []model.Target, _ time.Time) error {
	if r.State != model.StateCompleted {
		return fmt.Errorf("fake: a receipt for an erasure %s", r.State)
	}
	return nil
}

func (d *fakeDomain) Fail(_ store.Tx, r *model.Record, _ string) error {
	r.State = model.StateFailed
	return nil
}

func (d *fakeDomain) Describe(error) string                       { return "failed" }
func (d *fakeDomain) ReportRefusal(string, string, error, ...any) {}
func (d *fakeDomain) Maintenance(time.Time) func(context.Context) { return nil }

func (d *fakeDomain) ReportRefusedMove(account, step string, attrs ...any) {
	d.refusedMoves = append(d.refusedMoves, strings.TrimSpace(fmt.Sprintln(append([]any{account, step}, attrs...)...)))
}

// putRecord stores r in the Erasures bucket as the service would.
func putRecord(tx store.Tx, r *model.Record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Put(schema.Erasures, []byte(r.ID), v)
}

// seed stores r with targets ts as a new erasure, straight in the state the test needs.
func (d *fakeDomain) seed(t *testing.T, db DB, r *model.Record, ts []model.Target) {
	t.Helper()
	err := db.Update(context.Background(), func(tx store.Tx) error {
		return d.Transition(tx, r, model.StateUnspecified, ts, r.UpdateTime)
	})
	if err != nil {
		t.Fatal(err)
	}
}
