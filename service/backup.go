package service

import (
	"github.com/erasured/erasured/store"
)

// Backup hands fn a consistent snapshot of the whole store, taken while the service keeps
// serving (see store.DB.Backup). The snapshot holds personal data only sealed: the keys that
// open it live in the key directory, which is not part of it. An error of fn (a client gone
// away) is returned as it is; only the store's own failures become service errors.
func (s *Service) Backup(fn func(snap store.Snapshot) error) error {
	var fnErr error
	err := s.db.Backup(func(snap store.Snapshot) error {
		fnErr = fn(snap)
		return fnErr
	})
	if fnErr != nil {
		return fnErr
	}
	return s.storeError(err)
}
