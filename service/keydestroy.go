package service

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// Destroying period keys (the keeper's last step; see shred.go).
//
// A period key is destroyed when it stopped being current at least the retention ago and no
// wrapped data key in the database names it. The look for keys in use races with data keys on
// their way into the database: Submit wraps an erasure's data key by the current key before its
// transaction, so a key found unused may wrap a data key that is about to be committed. Two
// things close that race:
//
//   - The key that is current, and one that was current less than a keeper interval ago (by the
//     service's clock, which also moves when the clock is stepped), are never destroyed: a
//     Submit's wrap and its commit are normally far closer together than that.
//   - Before it destroys anything, the keeper dooms the keys it found unused (Keyring.doom):
//     from then on, a transaction about to commit a data key wrapped by a doomed key wraps it
//     again by the current key (Submit), so no such key gets in. Then it waits until every
//     transaction that may have run before the doom is committed (an empty transaction: the
//     committer runs and commits them in order), looks again, spares a key found in use after
//     all, and destroys the rest. Destroying in the transaction itself is not an option: a
//     transaction function may run more than once and must have no effect outside it.
//
// A batch's data key is wrapped when its plan is sealed, by the key current then, and committed
// a moment later: the rule of the keeper interval covers it.
//
// On a store shared with other processes, the keeper runs on one of them (the leader), and the
// doom is its own: the others' transactions are covered by the rule that a data key committed
// there is wrapped by the newest period key of the store, checked inside the transaction
// (committableIn, keystore_shared.go). The newest key is never destroyed, and a transaction that
// read a key as the newest before a newer one was made is run again by the store.

// destroyUnused destroys each period key that no wrapped data key in the database names, that
// stopped being current at least the retention ago, and that was not current within the last
// keeper interval.
func (s *Service) destroyUnused(ctx context.Context, now time.Time, st *KeepStats) error {
	var candidates []string
	for _, p := range s.keys.pastPeriods() {
		if now.Before(p.end.Add(s.cfg.Retention)) || (!p.retired.IsZero() && now.Before(p.retired.Add(s.cfg.KeepInterval))) {
			continue
		}
		candidates = append(candidates, p.name)
	}
	if len(candidates) == 0 {
		return nil
	}
	used, err := s.keysInUse()
	if err != nil {
		return err
	}
	candidates = slices.DeleteFunc(candidates, func(n string) bool { return used[n] })
	if len(candidates) == 0 {
		return nil
	}
	doomed := s.keys.doom(candidates)
	if err := s.db.Update(ctx, func(store.Tx) error { return nil }); err != nil {
		s.keys.spare(doomed)
		return s.storeError(err)
	}
	if used, err = s.keysInUse(); err != nil {
		s.keys.spare(doomed)
		return err
	}
	for i, name := range doomed {
		if used[name] {
			s.keys.spare([]string{name})
			continue
		}
		if err := s.keys.destroyPeriod(ctx, name); err != nil {
			s.keys.spare(doomed[i:])
			return err
		}
		st.Destroyed = append(st.Destroyed, name)
	}
	return nil
}

// keysInUse names the period keys that wrap a data key in the database (of an erasure, of a
// batch, or still in the Keys bucket); "" stands for the master key.
func (s *Service) keysInUse() (map[string]bool, error) {
	used := map[string]bool{}
	err := s.db.View(func(tx store.Tx) error {
		return eachDataKey(tx, func(_ string, wrapped []byte) { used[wrappedBy(wrapped)] = true })
	})
	return used, err
}

// eachDataKey calls fn with every wrapped data key the database holds: each erasure's (named by
// the erasure id) and each in the Keys bucket (batches, and erasures stored before their record
// held their key; named by the bucket's key).
func eachDataKey(tx store.Tx, fn func(purpose string, wrapped []byte)) error {
	err := tx.Scan(schema.Erasures, nil, func(k, v []byte) (bool, error) {
		var r struct {
			DataKey []byte `json:"data_key"`
		}
		if err := json.Unmarshal(v, &r); err != nil {
			return false, fmt.Errorf("decode erasure %s: %w", k, err)
		}
		if r.DataKey != nil {
			fn(string(k), r.DataKey)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	return tx.Scan(schema.Keys, nil, func(k, v []byte) (bool, error) {
		fn(string(k), v)
		return true, nil
	})
}

// doom marks the period keys names as about to be destroyed. The current key is never doomed.
func (k *Keyring) doom(names []string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.doomed == nil {
		k.doomed = map[string]bool{}
	}
	var out []string
	for _, n := range names {
		if k.current == nil || n != k.current.name {
			k.doomed[n] = true
			out = append(out, n)
		}
	}
	return out
}

// spare undoes doom for names: a data key wrapped by them was found after all.
func (k *Keyring) spare(names []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, n := range names {
		delete(k.doomed, n)
	}
}

// committable reports whether the wrapped data key w may be committed: the key that wraps it is
// loaded and not about to be destroyed (or it is the master key). Inside a transaction on a
// shared store, committableIn also asks the store.
func (k *Keyring) committable(w []byte) bool {
	name := wrappedBy(w)
	if name == "" {
		return true
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	return !k.doomed[name] && slices.ContainsFunc(k.periods, func(pk *periodKey) bool { return pk.name == name })
}

// KeyCheck counts the wrapped data keys of a database by whether the keyring opens them.
type KeyCheck struct {
	Open       int // data keys the keyring unwraps
	Unreadable int // data keys it does not (destroyed period keys, another master key)
	Master     int // of the open ones, keys the master key wraps directly
}

// CheckKeys tries to unwrap every data key the database holds (of erasures and of batches).
func (s *Service) CheckKeys() (KeyCheck, error) {
	var c KeyCheck
	err := s.db.View(func(tx store.Tx) error {
		return eachDataKey(tx, func(purpose string, w []byte) {
			if _, err := s.keys.unwrapIn(tx, purpose, w); err != nil {
				c.Unreadable++
				return
			}
			c.Open++
			if wrappedBy(w) == "" {
				c.Master++
			}
		})
	})
	return c, err
}
