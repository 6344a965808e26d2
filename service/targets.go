package service

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// Targets are sealed with the erasure's data key, like the subject: LivePerson record ids are
// personal data too. The associated data binds them to the erasure and to their purpose.

func targetsAAD(id string) []byte { return []byte(id + "\x00targets") }

func consumersAAD(id string) []byte { return []byte(id + "\x00consumers") }

// dataKeyOf unwraps an erasure's data key inside a transaction.
func (s *Service) dataKeyOf(tx store.Tx, r *record) ([]byte, error) {
	wrapped := wrappedKey(tx, r)
	if wrapped == nil {
		return nil, errShredded
	}
	return s.keys.unwrapIn(tx, r.ID, wrapped)
}

// wrappedKey is r's wrapped data key: in the record, or for erasures stored before it moved
// there, in the Keys bucket. nil when it was destroyed.
func wrappedKey(tx store.Tx, r *record) []byte {
	if r.DataKey != nil {
		return r.DataKey
	}
	return tx.Get(schema.Keys, []byte(r.ID))
}

// targetsOf unseals an erasure's targets inside a transaction.
func (s *Service) targetsOf(tx store.Tx, r *record) ([]Target, error) {
	if len(r.SealedTargets) == 0 {
		return nil, nil
	}
	key, err := s.dataKeyOf(tx, r)
	if err != nil {
		return nil, err
	}
	plain, err := open(key, r.SealedTargets, targetsAAD(r.ID))
	if err != nil {
		return nil, fmt.Errorf("unseal targets: %w", err)
	}
	var ts []Target
	if err := json.Unmarshal(plain, &ts); err != nil {
		return nil, err
	}
	return ts, nil
}

// setTargets seals ts into r and refreshes the public counts derived from them.
func (s *Service) setTargets(tx store.Tx, r *record, ts []Target) error {
	key, err := s.dataKeyOf(tx, r)
	if err != nil {
		return err
	}
	plain, err := json.Marshal(ts)
	if err != nil {
		return err
	}
	r.TargetCounts = model.CountTargets(ts)
	// Unchanged targets keep their sealed bytes, so that a step that changed nothing leaves the
	// record as it was (putChange then writes no event).
	if len(r.SealedTargets) > 0 {
		if cur, err := open(key, r.SealedTargets, targetsAAD(r.ID)); err == nil && bytes.Equal(cur, plain) {
			return nil
		}
	}
	if r.SealedTargets, err = seal(key, plain, targetsAAD(r.ID)); err != nil {
		return err
	}
	return nil
}

// hasStatus reports whether any target is in one of the statuses.
func hasStatus(ts []Target, statuses ...TargetStatus) bool { return model.HasStatus(ts, statuses...) }

// consumersOf unseals the consumers earlier searches of r followed, inside a transaction.
func (s *Service) consumersOf(tx store.Tx, r *record) ([]string, error) {
	if len(r.SealedConsumers) == 0 {
		return nil, nil
	}
	key, err := s.dataKeyOf(tx, r)
	if err != nil {
		return nil, err
	}
	plain, err := open(key, r.SealedConsumers, consumersAAD(r.ID))
	if err != nil {
		return nil, fmt.Errorf("unseal consumers: %w", err)
	}
	var ids []string
	return ids, json.Unmarshal(plain, &ids)
}

// addConsumers seals into r the union of the consumers it has followed and found.
func (s *Service) addConsumers(tx store.Tx, r *record, found []string) error {
	known, err := s.consumersOf(tx, r)
	if err != nil {
		return err
	}
	all := slices.Compact(slices.Sorted(slices.Values(append(known, found...))))
	if len(all) == len(known) {
		return nil // nothing new (known is kept sorted)
	}
	key, err := s.dataKeyOf(tx, r)
	if err != nil {
		return err
	}
	plain, err := json.Marshal(all)
	if err != nil {
		return err
	}
	r.SealedConsumers, err = seal(key, plain, consumersAAD(r.ID))
	return err
}

// followedConsumers reads the consumers earlier searches of an erasure followed.
func (s *Service) followedConsumers(id string) ([]string, error) {
	var ids []string
	err := s.viewRecord(id, func(tx store.Tx, r *record) (err error) {
		ids, err = s.consumersOf(tx, r)
		return err
	})
	return ids, err
}
