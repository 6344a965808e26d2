package service

import (
	"encoding/json"

	"github.com/erasured/erasured/store"
)

// Stats is a summary of the erasures for metrics: no identifiers, only counts.
type Stats struct {
	ByState map[State]int
	AtRisk  int // open erasures that may miss their deadline
}

// Stats counts erasures by state. It reads every erasure record once (no decryption).
func (s *Service) Stats() (Stats, error) {
	st := Stats{ByState: map[State]int{}}
	err := s.db.View(func(tx *store.Tx) error {
		return tx.Scan(store.Erasures, nil, func(_, v []byte) (bool, error) {
			var e struct {
				State  State `json:"state"`
				AtRisk bool  `json:"at_risk"`
			}
			if err := json.Unmarshal(v, &e); err != nil {
				return false, err
			}
			st.ByState[e.State]++
			if e.AtRisk && !e.State.Final() {
				st.AtRisk++
			}
			return true, nil
		})
	})
	return st, s.storeError(err)
}
