package service

import (
	"encoding/json"
	"strconv"

	"github.com/erasured/erasured/service/pipeline"
	"github.com/erasured/erasured/service/schema"
	"github.com/erasured/erasured/store"
)

// batch is the pipeline's record of one LivePerson deletion request (see pipeline.Batch).
type batch = pipeline.Batch

// Batch states of our own, besides LivePerson's statuses (see package pipeline).
const (
	batchIntent    = pipeline.BatchIntent
	batchRejected  = pipeline.BatchRejected
	batchDissolved = pipeline.BatchDissolved
	batchHeld      = pipeline.BatchHeld
)

func batchAAD(id uint64) []byte { return []byte("batch\x00" + strconv.FormatUint(id, 10)) }

// batchIDs unseals a batch's ids (sorted).
func (s *Service) batchIDs(tx store.Tx, b *batch) ([]string, error) {
	wrapped := tx.Get(schema.Keys, schema.BatchKeyName(b.ID))
	if wrapped == nil {
		return nil, errShredded
	}
	key, err := s.keys.unwrapIn(tx, string(schema.BatchKeyName(b.ID)), wrapped)
	if err != nil {
		return nil, err
	}
	plain, err := open(key, b.Sealed, batchAAD(b.ID))
	if err != nil {
		return nil, err
	}
	var ids []string
	return ids, json.Unmarshal(plain, &ids)
}

// QuotaLeft is how many deletion requests the account may still create this month.
func (s *Service) QuotaLeft(account string, limit int) (int, error) {
	var left int
	err := s.db.View(func(tx store.Tx) error {
		q, err := pipeline.GetQuota(tx, account, pipeline.Month(s.now()))
		left = q.Left(limit)
		return err
	})
	return left, err
}
