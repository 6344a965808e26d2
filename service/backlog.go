package service

import (
	"time"

	"github.com/erasured/erasured/service/model"
	"github.com/erasured/erasured/service/pipeline"
	"github.com/erasured/erasured/store"
)

// countBacklog keeps the pipeline's count of the account's erasures on their way to its queue
// (pipeline.CountBacklog) in the transaction of every change transition stores: old is the
// erasure as stored before the change (nil: the change creates it), r as it will be stored.
func countBacklog(tx store.Tx, old, r *record, now time.Time) error {
	var was *model.Erasure
	if old != nil {
		was = &old.Erasure
	}
	return pipeline.CountBacklog(tx, was, &r.Erasure, now)
}
