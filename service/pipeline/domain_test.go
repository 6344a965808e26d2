package pipeline

import (
	"context"
	"encoding/json"
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// fakeDomain is a Domain with no keys and no transition table, for tests of the steps alone:
// targets and batch ids are "sealed" as plain JSON, and a transition stores the record as it is
// (with a new revision) and writes no event.
type fakeDomain struct{ rev uint64 }

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

func (d *fakeDomain) Transition(tx store.Tx, r *model.Record, _ model.State, ts []model.Target, now time.Time) error {
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

func (d *fakeDomain) Complete(store.Tx, *model.Record, []model.Target, time.Time) error { return nil }

func (d *fakeDomain) Fail(_ store.Tx, r *model.Record, _ string) error {
	r.State = model.StateFailed
	return nil
}

func (d *fakeDomain) Describe(error) string                       { return "failed" }
func (d *fakeDomain) ReportRefusal(string, string, error, ...any) {}
func (d *fakeDomain) ReportRefusedMove(string, string, ...any)    {}
func (d *fakeDomain) Maintenance(time.Time) func(context.Context) { return nil }

// putRecord stores r in the Erasures bucket as the service would.
func putRecord(tx store.Tx, r *model.Record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Put(schema.Erasures, []byte(r.ID), v)
}
