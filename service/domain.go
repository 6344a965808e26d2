package service

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"strconv"
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/service/pipeline"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// domain is the Service's side of pipeline.Domain: what the pipeline needs of the erasure
// domain. Both sides work on the same stored record, model.Record (this package's record).
type domain struct{ s *Service }

var (
	_ pipeline.Domain = domain{}
	_ pipeline.Linker = domain{}
)

// linkLabel derives the key of the batches' links from the fingerprint key: a key of its own,
// so that a link hash (of a record id) can never be compared with a subject's fingerprint. It
// comes from the root secret, as the fingerprint key does, so it is the same after a restart
// and after the master key is rotated (the root secret is re-sealed, not replaced).
const linkLabel = "erasured/record-link/v1"

// LinkHash is the keyed HMAC-SHA256 of a LivePerson record id of a kind within an account:
// what the pipeline's links are keyed by, so that no record id is stored in the clear.
func (d domain) LinkHash(account string, kind TargetKind, id string) []byte {
	m := hmac.New(sha256.New, derive(d.s.keys.fpKey, linkLabel))
	m.Write([]byte(account))
	m.Write([]byte{0})
	m.Write(strconv.AppendInt(nil, int64(kind), 10))
	m.Write([]byte{0})
	m.Write([]byte(id))
	return m.Sum(nil)
}

func (d domain) Targets(tx store.Tx, m *model.Record) ([]Target, error) {
	return d.s.targetsOf(tx, m)
}

func (d domain) Search(tx store.Tx, m *model.Record) ([]Subject, []string, error) {
	sub, err := d.s.unsealSubject(tx, m)
	if err != nil {
		return nil, nil, err
	}
	followed, err := d.s.consumersOf(tx, m)
	if err != nil {
		return nil, nil, err
	}
	return append([]Subject{sub.Subject}, sub.Aliases...), followed, nil
}

func (d domain) AddConsumers(tx store.Tx, m *model.Record, found []string) error {
	return d.s.addConsumers(tx, m, found)
}

func (d domain) TargetSealer(tx store.Tx, m *model.Record) (func([]Target) ([]byte, error), error) {
	key, err := d.s.dataKeyOf(tx, m)
	if err != nil {
		return nil, err
	}
	id := m.ID
	return func(ts []Target) ([]byte, error) {
		plain, err := json.Marshal(ts)
		if err != nil {
			return nil, err
		}
		return seal(key, plain, targetsAAD(id))
	}, nil
}

func (d domain) SealBatchIDs(id uint64, ids []string) (sealed, wrapped []byte, err error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, nil, err
	}
	plain, err := json.Marshal(ids)
	if err != nil {
		return nil, nil, err
	}
	if sealed, err = seal(key, plain, batchAAD(id)); err != nil {
		return nil, nil, err
	}
	wrapped, err = d.s.keys.wrapKey(string(schema.BatchKeyName(id)), key)
	return sealed, wrapped, err
}

func (d domain) Committable(tx store.Tx, w []byte) bool { return d.s.keys.committableIn(tx, w) }

func (d domain) BatchIDs(tx store.Tx, b *batch) ([]string, error) { return d.s.batchIDs(tx, b) }

func (d domain) Transition(tx store.Tx, m *model.Record, from State, ts []Target, now time.Time) error {
	err := d.s.transition(tx, m, erasureChange{from: from, targets: ts, now: now})
	if transitionRefused(err) {
		return refusal{err}
	}
	return err
}

func (d domain) Complete(tx store.Tx, m *model.Record, ts []Target, now time.Time) error {
	err := d.s.complete(tx, m, ts, now)
	return err
}

func (d domain) Fail(tx store.Tx, m *model.Record, reason string) error {
	err := d.s.failErasure(tx, m, reason)
	return err
}

func (d domain) Describe(err error) string { return describe(err) }

func (d domain) ReportRefusal(account, step string, err error, attrs ...any) {
	d.s.reportRefusal(account, step, err, attrs...)
}

func (d domain) ReportRefusedMove(account, step string, attrs ...any) {
	d.s.report(Incident{Kind: IncidentTransitionRefused, Account: account, Step: step, Reason: "state_transition_not_allowed"}, attrs...)
}

func (d domain) Maintenance(now time.Time) func(ctx context.Context) { return d.s.keeperDue(now) }

// refusal is a transition refusal (an *Error with reason STATE_TRANSITION_NOT_ALLOWED) as the
// pipeline sees it: it also matches pipeline.ErrTransitionRefused, which the pipeline tells a
// refusal by, as it knows nothing of this package's Error.
type refusal struct{ err error }

func (e refusal) Error() string   { return e.err.Error() }
func (e refusal) Unwrap() []error { return []error{e.err, pipeline.ErrTransitionRefused} }
